"""Workloads named in a study: a built-in name or a user's ``"module:callable"``.

A study names its dataset, its model and its training loop the same way: a built-in name
(``digits``, ``mlp``, ``classifier``), which is itself only a registered ``module:callable``
string, or the ``module:callable`` of the user's own code. :func:`resolve` imports it;
:func:`check_call` says, before anything runs, whether it takes the arguments it will be given.

A problem is a :class:`WorkloadError`: one line that names the study key, and an error that
would repeat on every try, so a trial that meets one fails at once instead of being retried.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any


class WorkloadError(ValueError):
    """A dataset, model or training loop that cannot work, said in one line naming the study
    key (``data.dataset: ...``). It repeats on every try: never retried."""


def resolve(spec: str, builtins: Mapping[str, str], key: str) -> Callable[..., Any]:
    """The callable ``spec`` names: a key of ``builtins`` or ``"module:callable"``
    (``callable`` may be dotted: ``"pkg.mod:Factory.build"``)."""
    path = builtins.get(spec, spec)
    module_name, colon, attribute = path.partition(":")
    if not (colon and module_name and attribute):
        raise WorkloadError(
            f"{key}: {spec!r} is neither a built-in ({', '.join(builtins)}) nor "
            "'module:callable' (e.g. mypkg.data:load)"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise WorkloadError(
            f"{key}: cannot import {module_name} ({_first_line(error)}); it must be importable "
            "wherever trials run: an installed package, the study's working directory, or "
            "PYTHONPATH"
        ) from None
    except Exception as error:  # the module itself raised while importing
        raise WorkloadError(
            f"{key}: importing {module_name} failed: {type(error).__name__}: {_first_line(error)}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise WorkloadError(f"{key}: {module_name} has no {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise WorkloadError(f"{key}: {path} is a {type(found).__name__}, not a callable")
    return found


def check_call(function: Callable[..., Any], key: str, *args: Any, **kwargs: Any) -> None:
    """Refuse, naming ``key``, a ``function`` that cannot be called with these arguments (a
    missing option, one it does not take)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: its call will tell
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        given = ", ".join([*(["<positional>"] * len(args)), *kwargs]) or "no arguments"
        raise WorkloadError(
            f"{key}: {_name(function)}{signature} cannot be called with {given}: {error}"
        ) from None


def _first_line(error: BaseException) -> str:
    """An error's message as one line (its first): a WorkloadError is said in one line."""
    return (str(error).splitlines() or [""])[0]


def _name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", repr(function))
    return f"{module}:{qualname}" if module else qualname
