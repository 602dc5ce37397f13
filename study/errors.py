"""Input a person can fix, and how any error is said in one line.

Every module of the study package that refuses its input raises a subclass of :class:`BadInput`
(a config key, a tracking store, a Ray address, ``--storage``, a study folder, a cluster that
cannot place a trial, a report's options). The CLI catches it in one place: one line on
stderr, exit status 2. Nothing here imports anything heavy: every module may use it.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input that must not run, said in one line that names the setting and what to change."""


def one_line(error: BaseException, expected: bool = False) -> str:
    """An error's first line; an unexpected one with its type, for whoever reports it."""
    text = str(error) if expected else f"{type(error).__name__}: {error}"
    return (text.splitlines() or [""])[0]
