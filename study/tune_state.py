"""What knee-study knows about how Ray Tune stores an experiment: the one module that reads it.

Why read Tune's internals at all: restoring damaged Tune state really fails. ``Tuner.restore``
over an experiment snapshot that a killed driver left empty or cut short raises, and a trial
restored from a damaged checkpoint fails only inside its worker, ``max_failures`` times, minutes
into the resumed study. So :mod:`study.checkpoints` repairs and checks Tune's state before
``resume`` starts Ray, :mod:`study.snapshot_backup` keeps a last complete copy of it while a
study runs, and the integration tests watch a running study through it. They all ask this module;
nothing else in knee-study knows Tune's layout.

None of this is Tune's public API. The layout below was checked against Ray 2.60.0
(:data:`CHECKED_RAY`); pyproject.toml caps ``ray[tune]`` below the next minor version.
tests/study/test_tune_state.py runs a real Tune experiment and checks every fact read here:
run it before raising the cap, and update this module where it fails.

What is assumed:

- Tune's experiment folder holds ``tuner.pkl`` (what ``Tuner.restore`` reads first) and, for
  each driver session ``<S>`` (a time stamp, which sorts in time order), the experiment snapshot
  ``experiment_state-<S>.json`` and the search and callback states of that session
  (``basic-variant-state-<S>.json``, ``searcher-state-<S>.pkl``, ``search_gen_state-<S>.json``,
  ``callback-states-<S>.pkl``). Each is JSON or a pickle, whatever its extension says
  (``basic-variant-state-<S>.json`` is a pickle). Tune resumes from the newest session.
- The snapshot is JSON whose ``trial_data`` holds one pair of JSON strings per trial: the trial
  (``trial_id``; ``status``, ``TERMINATED`` once it finished; ``relative_logdir``, its folder in
  the experiment folder) and its run metadata (``num_failures``, ``start_time``,
  ``last_result``, and ``checkpoint_manager``: Ray Train's ``_CheckpointManager``, cloudpickled
  and hex-encoded, which names the paths of the checkpoints the trial keeps and has a
  ``_latest_checkpoint_result``).
- A trial's checkpoints are folders ``checkpoint_<index>`` in its folder, numbered in the order
  saved. With no ``checkpoint_score_attribute`` (knee-study sets none) the checkpoint Tune
  restores a trial from is the highest-numbered one its snapshot names.
- The driver writes a session's files to a staging folder, ``Trial.storage``'s
  ``experiment_driver_staging_path`` (Ray Train's private ``StorageContext``), in the step of
  Tune's loop that saves its state, before the callbacks' ``on_step_end``. It then copies them
  in the background over the experiment folder (``experiment_fs_path``), file by file, in place.
- A function trainable's worker is a process titled ``ray::ImplicitFunc...``, and its working
  directory is named like the trial's folder.

Nothing here imports Ray: :mod:`study.checkpoints` calls this module before Ray's environment is
settled. No pickle is loaded either: the pickles in a snapshot are only walked
(:mod:`pickletools`), so no code from Tune's state runs.
"""

from __future__ import annotations

import json
import pickletools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

CHECKED_RAY = "2.60.0"  # the Ray version this layout was checked against

TUNER_FILE = "tuner.pkl"  # what Tuner.restore reads first
SNAPSHOT_PREFIX = "experiment_state-"
SNAPSHOT_GLOB = SNAPSHOT_PREFIX + "*.json"  # Tune's experiment snapshots, one per session
SESSION_EXTENSIONS = (".json", ".pkl")  # Tune's state files (all that Tune reads back)
FINISHED = "TERMINATED"  # a trial's status once it finished
CHECKPOINT_GLOB = "checkpoint_*"
TRIAL_WORKER_TITLE = "ray::ImplicitFunc"  # how a function trainable's worker process starts
_CHECKPOINT_NAME = re.compile(r"checkpoint_\d+")
_MANAGER_MARK = "_latest_checkpoint_result"  # an attribute of Ray Train's _CheckpointManager


class TuneLayoutError(Exception):
    """Tune's state reads back but is not laid out as this module expects: a Ray version whose
    layout differs from the one checked here."""

    def __init__(self, assumption: str) -> None:
        super().__init__(
            f"{assumption}: Ray Tune's state is not laid out as study/tune_state.py expects "
            f"(checked against Ray {CHECKED_RAY}); update study/tune_state.py"
        )


# The files of an experiment folder (or of the driver's staging folder).


def snapshots(folder: Path) -> list[Path]:
    """The experiment snapshots in ``folder``, one per session, oldest first."""
    return sorted(folder.glob(SNAPSHOT_GLOB))


def newest_snapshot(folder: Path) -> Path | None:
    """The snapshot of the newest session in ``folder``: the one Tune resumes from."""
    found = snapshots(folder)
    return found[-1] if found else None


def session_of(snapshot: Path) -> str:
    """``<S>`` of ``experiment_state-<S>.json``: Tune's session (a time stamp)."""
    return snapshot.name.removeprefix(SNAPSHOT_PREFIX).removesuffix(".json")


def session_files(folder: Path, session: str) -> list[Path]:
    """The files of Tune's state of one session in ``folder``: ``experiment_state-<S>.json`` and
    the search and callback states (``basic-variant-state-<S>.json``, ``searcher-state-<S>.pkl``,
    ``search_gen_state-<S>.json``, ``callback-states-<S>.pkl``)."""
    ends = tuple(f"-{session}{extension}" for extension in SESSION_EXTENSIONS)
    return sorted(
        p
        for p in folder.iterdir()
        if p.name.endswith(ends) and not p.name.startswith("tmp-") and p.is_file()
    )


def reads_back_whole(content: bytes | None) -> bool:
    """Whether a file of Tune's state reads back whole: JSON that parses or a pickle whose opcodes
    run to its end (walked, not loaded)."""
    if not content:
        return False
    try:
        json.loads(content)
        return True
    except ValueError:
        pass
    try:
        for _ in pickletools.genops(content):
            pass
    except Exception:  # any way of failing to read it back is the same damage
        return False
    return True


def checkpoint_index(name: str) -> int:
    """The number of a checkpoint folder ``checkpoint_<index>`` (-1 for another name)."""
    if not _CHECKPOINT_NAME.fullmatch(name):
        return -1
    return int(name.rpartition("_")[2])


def checkpoint_folders(trial_dir: Path) -> list[str]:
    """The names of the checkpoint folders in a trial's folder, oldest first."""
    names = (p.name for p in trial_dir.glob(CHECKPOINT_GLOB) if p.is_dir())
    return sorted((n for n in names if checkpoint_index(n) >= 0), key=checkpoint_index)


# What a snapshot records of each trial.


@dataclass(frozen=True)
class TrialRecord:
    """One trial as an experiment snapshot records it. A field of the run metadata is None when
    the snapshot does not hold it where this module looks (a hand-made snapshot, or another
    layout: tests/study/test_tune_state.py asserts that a real one holds them all)."""

    trial_id: str
    status: str  # Tune's: PENDING, RUNNING, PAUSED, TERMINATED or ERROR
    folder: str | None  # the trial's folder in the experiment folder
    num_failures: int | None
    start_time: float | None
    last_result: Mapping[str, Any] | None
    checkpoints: frozenset[str] | None  # names of the checkpoint folders the trial keeps

    @property
    def finished(self) -> bool:
        """Tune never runs or restores the trial again."""
        return self.status == FINISHED

    @property
    def restores_from(self) -> str | None:
        """The checkpoint folder Tune restores the trial from (None: none, or not known)."""
        return max(self.checkpoints, key=checkpoint_index) if self.checkpoints else None

    @property
    def epoch(self) -> int | None:
        """The ``epoch`` of the trial's last result (knee-study's trials report one)."""
        return (self.last_result or {}).get("epoch")


def read_trials(content: bytes | str) -> dict[str, TrialRecord]:
    """Trial id -> what the experiment snapshot ``content`` records of it, in the snapshot's order.

    Raises ValueError when ``content`` is not JSON (empty or cut short: a snapshot being rewritten
    or damaged), :class:`TuneLayoutError` when it is JSON not laid out as Tune's snapshots are.
    """
    snapshot = json.loads(content)
    trial_data = snapshot.get("trial_data") if isinstance(snapshot, dict) else None
    if not isinstance(trial_data, list):
        raise TuneLayoutError("an experiment snapshot no longer holds its trials in 'trial_data'")
    records = {}
    for entry in trial_data:
        if not (
            isinstance(entry, list | tuple)
            and len(entry) == 2
            and all(isinstance(part, str) for part in entry)
        ):
            raise TuneLayoutError(
                "a trial of an experiment snapshot's 'trial_data' is no longer a pair of JSON "
                "strings (the trial, its run metadata)"
            )
        trial, metadata = (_json_object(part) for part in entry)
        if not (isinstance(trial.get("trial_id"), str) and isinstance(trial.get("status"), str)):
            raise TuneLayoutError(
                "a trial of an experiment snapshot no longer has a 'trial_id' and a 'status'"
            )
        folder = trial.get("relative_logdir")
        failures, start, last = (
            metadata.get(k) for k in ("num_failures", "start_time", "last_result")
        )
        records[trial["trial_id"]] = TrialRecord(
            trial_id=trial["trial_id"],
            status=trial["status"],
            folder=folder if isinstance(folder, str) else None,
            num_failures=failures if isinstance(failures, int) else None,
            start_time=float(start) if isinstance(start, int | float) else None,
            last_result=last if isinstance(last, dict) else None,
            checkpoints=_kept_checkpoints(metadata.get("checkpoint_manager")),
        )
    return records


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise TuneLayoutError(
            "a trial or its run metadata in an experiment snapshot is no longer a JSON object"
        )
    return value


def _kept_checkpoints(manager: Any) -> frozenset[str] | None:
    """The checkpoint folders a trial's pickled ``_CheckpointManager`` names (None: not that)."""
    try:
        blob = bytes.fromhex(manager["value"])
        strings = [arg for _, arg, _ in pickletools.genops(blob) if isinstance(arg, str)]
    except Exception:  # not the layout this reads: unknown
        return None
    if _MANAGER_MARK not in strings:
        return None
    names = (PurePosixPath(s).name for s in strings)
    return frozenset(n for n in names if _CHECKPOINT_NAME.fullmatch(n))


# Where a running experiment keeps its state (read from Tune's Trial objects, in a callback).


@dataclass(frozen=True)
class StateFolders:
    staging: Path  # where the driver writes each save of Tune's state, whole
    experiment: Path  # Tune's experiment folder, where those files are copied in place


def local_state_folders(trials: Sequence[Any]) -> StateFolders | None:
    """The folders of the running experiment that ``trials`` (Tune's Trial objects, as a
    callback gets them) belong to; None without trials or when the experiment is stored in an
    object store (Tune replaces each object there whole)."""
    if not trials:
        return None
    import pyarrow.fs  # not at import: study.checkpoints, which needs none of this, stays light

    try:
        storage = trials[0].storage
        filesystem = storage.storage_filesystem
        staging = storage.experiment_driver_staging_path
        experiment = storage.experiment_fs_path
    except AttributeError:
        raise TuneLayoutError(
            "a Tune trial's 'storage' no longer has 'storage_filesystem', "
            "'experiment_driver_staging_path' and 'experiment_fs_path'"
        ) from None
    if not isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return StateFolders(Path(staging), Path(experiment))


def is_trial_worker(command: Sequence[str], cwd: str | Path, trial_folder: str) -> bool:
    """Whether a process (its command line and working directory) is the Ray worker training the
    trial whose folder is named ``trial_folder``."""
    return (
        bool(command)
        and command[0].startswith(TRIAL_WORKER_TITLE)
        and (Path(cwd).name == trial_folder)
    )
