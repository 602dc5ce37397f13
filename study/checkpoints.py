"""Make a stopped study's Ray state fit to resume, before ``resume`` starts anything.

Ray Tune restores each unfinished trial from its latest checkpoint, inside a trial worker: a
damaged file there (a disk that filled up, a copy cut short) would only show as that trial
failing ``tune.max_failures`` times, minutes into the resumed study. Reading each latest
checkpoint first turns that into a one-line error naming the file, before Ray starts.

Tune rewrites its experiment snapshot (``experiment_state-*.json``: which trials exist, which
finished) in place after every result; a driver killed during that write leaves it empty or cut
short, and Tune then cannot restore the study at all. :mod:`study.snapshot_backup` keeps the
last complete copy beside it (``...json.last-good``), and resume puts that copy back.

Nothing here imports Ray (it runs before Ray's environment is settled) or runs code from a
checkpoint: files are read with ``torch.load(weights_only=True)``, memory-mapped, so the cost is
the pickled structure, not the weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from study.folder import StudyFolderError

STATE_FILE = "state.pt"  # study.launch.STATE_FILE (that module imports Ray)
TUNER_FILE = "tuner.pkl"  # what Tuner.restore reads first
STATE_KEYS = frozenset({"model", "optimizer", "scheduler", "epoch", "history"})
SNAPSHOT_GLOB = "experiment_state-*.json"  # Tune's experiment snapshots, one per session
BACKUP_SUFFIX = ".last-good"  # beside a snapshot: its last complete copy
_CHECKPOINT_GLOB = "checkpoint_*"


class DamagedCheckpointError(StudyFolderError):
    """A trial's latest checkpoint cannot be read back."""


def check_resumable(experiment_dir: str | Path) -> None:
    """Raise :class:`DamagedCheckpointError` if an unfinished trial's latest checkpoint is bad,
    or Tune's experiment snapshot is damaged with no good copy; put a good copy back if there is.

    ``experiment_dir`` is Ray's experiment folder (``<output>/tune``, or a folder in ``--storage``).
    An object-store URI is not read here: Ray reads those itself.
    """
    if "://" in str(experiment_dir) and not str(experiment_dir).startswith("file://"):
        return
    root = Path(str(experiment_dir).removeprefix("file://"))
    if not (root / TUNER_FILE).is_file():
        raise StudyFolderError(
            f"{root} holds no Ray Tune state to resume from (no {TUNER_FILE}): the study stopped "
            "before it started; run it again"
        )
    _repair_snapshot(root)
    finished = _finished_trials(root)
    for trial_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if trial_dir.name in finished:
            continue  # never restored
        latest = max(trial_dir.glob(_CHECKPOINT_GLOB), key=_checkpoint_index, default=None)
        if latest is not None:
            _check_state(latest / STATE_FILE)


def _repair_snapshot(root: Path) -> None:
    snapshots = sorted(root.glob(SNAPSHOT_GLOB))
    if not snapshots or _is_json(snapshots[-1]):
        return
    newest = snapshots[-1]
    backup = newest.with_name(newest.name + BACKUP_SUFFIX)
    if not _is_json(backup):
        raise DamagedCheckpointError(
            f"{newest}: Ray Tune's experiment state is damaged (the driver stopped while writing "
            "it) and there is no good copy of it: the study cannot be resumed"
        )
    partial = newest.with_name(newest.name + ".partial")
    shutil.copyfile(backup, partial)
    os.replace(partial, newest)


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def _check_state(path: Path) -> None:
    if not path.is_file():
        raise DamagedCheckpointError(f"{path}: missing, the trial cannot resume from its folder")
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # any way of failing to read it back is the same damage
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DamagedCheckpointError(
            f"{path}: damaged checkpoint, the trial cannot resume from it ({reason})"
        ) from None
    missing = STATE_KEYS - set(state) if isinstance(state, dict) else STATE_KEYS
    if missing:
        raise DamagedCheckpointError(
            f"{path}: not a knee-study trial state (lacks {', '.join(sorted(missing))})"
        )


def _checkpoint_index(folder: Path) -> int:
    try:
        return int(folder.name.rpartition("_")[2])
    except ValueError:
        return -1


def _finished_trials(root: Path) -> set[str]:
    """Trial ids Tune's newest experiment snapshot records as TERMINATED (none if unreadable).

    The snapshot's trial entries are JSON strings with ``trial_id`` and ``status`` (Ray 2.x);
    should that layout change, every trial is checked, which only costs time.
    """
    snapshots = sorted(root.glob(SNAPSHOT_GLOB))
    if not snapshots:
        return set()
    try:
        trial_data = json.loads(snapshots[-1].read_text())["trial_data"]
        trials = [json.loads(entry[0]) for entry in trial_data]
        return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return set()
