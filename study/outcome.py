"""How a study's run ended: what :meth:`study.study.Study.fit` and ``resume`` return, the CLI
turns into an exit status, and the study's parent run is marked with. Imports nothing heavy."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from trainables.results import is_failed, is_final


class Ending(enum.Enum):
    FINISHED = "finished"  # every trial finished, or was stopped early by the scheduler
    TRIALS_FAILED = "failed"  # some trials failed (after tune.max_failures retries, or at once)
    STOPPED = "stopped"  # interrupted (Ctrl-C, the tracking store lost): resume it
    ALREADY_FINISHED = "already finished"  # resume of a finished study: nothing ran


# The parent run's status as a run ends: MLflow's words.
_MLFLOW_STATUS = {
    Ending.FINISHED: "FINISHED",
    Ending.TRIALS_FAILED: "FAILED",
    Ending.STOPPED: "KILLED",
    Ending.ALREADY_FINISHED: "FINISHED",
}


@dataclass(frozen=True)
class Outcome:
    """How a fit or resume ended, with Tune's count of the trials when it ended (all zero when
    nothing ran, or Tune gave no results)."""

    ending: Ending
    trials: int = 0
    finished: int = 0
    stopped: int = 0  # by the scheduler (ASHA): done, not interrupted
    failed: int = 0

    @property
    def mlflow_status(self) -> str:
        return _MLFLOW_STATUS[self.ending]


def outcome_of(results: Any, num_trials: int) -> Outcome:
    """The outcome of Tune's results (a ResultGrid: each result's ``error`` and ``metrics``,
    and ``num_errors``) for a study of ``num_trials`` trials."""
    grid = list(results)
    # A trial that failed at once (bad data, a bad plug-in) ended without an error in Tune:
    # its final report says why.
    failed = results.num_errors + sum(1 for r in grid if r.error is None and is_failed(r.metrics))
    finished = sum(
        1 for r in grid if r.error is None and is_final(r.metrics) and not is_failed(r.metrics)
    )
    # Trials the scheduler (ASHA) stopped are done too, not interrupted: Tune marked their last
    # result done; their runs are KILLED and tagged stopped_early by the tracker.
    stopped = sum(
        1 for r in grid if r.error is None and r.metrics.get("done") and not is_final(r.metrics)
    )
    if failed:
        ending = Ending.TRIALS_FAILED
    elif finished + stopped < num_trials:
        ending = Ending.STOPPED
    else:
        ending = Ending.FINISHED
    return Outcome(ending, len(grid), finished, stopped, failed)
