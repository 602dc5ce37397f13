"""A user's own code, as a study names it: a module written for one test, importable by name."""

import importlib
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

_numbers = itertools.count()


@pytest.fixture
def make_module(tmp_path, monkeypatch) -> Iterator[Callable[[str], str]]:
    """``make_module(source)`` writes ``source`` as a module in ``tmp_path`` (on sys.path for this
    test only) and returns its name, a fresh one each call so no test sees another's module."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: list[str] = []

    def make(source: str) -> str:
        name = f"knee_user_module_{next(_numbers)}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def user_loader(make_module) -> Callable[[object], str]:
    """``user_loader(found)``: the ``"module:callable"`` of a dataset loader returning ``found``
    (or, when ``found`` is callable, what it returns for the loader's options)."""

    def make(found: object) -> str:
        name = make_module(
            """
            FOUND = None

            def load(**options):
                return FOUND(**options) if callable(FOUND) else FOUND
            """
        )
        importlib.import_module(name).FOUND = found
        return f"{name}:load"

    return make
