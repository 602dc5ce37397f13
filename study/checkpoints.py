"""Make a stopped study's Ray state fit to resume, before ``resume`` starts anything.

Ray Tune restores each unfinished trial from the latest checkpoint its snapshot records, inside a
trial worker: a damaged file there (a disk that filled up, a copy cut short) would only show as
that trial failing ``tune.max_failures`` times, minutes into the resumed study. Reading that
checkpoint first turns that into a one-line error naming the file, before Ray starts.

Tune keeps its experiment state in a set of files per session (``experiment_state-<S>.json``:
which trials exist, which finished, which checkpoint each restores from; beside it the search
state, ``basic-variant-state-<S>.json`` and the like), written on the driver and copied over
the experiment folder's ones in place, file by file, after every result; a driver killed during
that copy leaves one empty, cut short, or from another step than the rest, and Tune then cannot
restore the study. :mod:`study.snapshot_backup` keeps the last complete set of each session as
one file beside it (``experiment_state-<S>.json.last-good``), and resume puts that set back.
A newest session with no such copy whose files are damaged (the driver of a resumed study died
before its first copy) is set aside (``.damaged``), so that Tune resumes from the session
before it.

How Tune lays these files out, and what a snapshot records of each trial, is read through
:mod:`study.tune_state` (the one module that knows Ray's internals); the last good copies and
the files set aside are knee-study's own.

Nothing here imports Ray (it runs before Ray's environment is settled) or runs code from a
checkpoint or a snapshot: files are read with ``torch.load(weights_only=True)``, memory-mapped,
so the cost is the pickled structure, not the weights; pickles in a snapshot are only walked
(:mod:`pickletools`, in :mod:`study.tune_state`), never loaded.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import torch

from study import tune_state
from study.folder import StudyFolderError
from study.trial import STATE_FILE
from trainables.handle import ENVELOPE_KEYS

BACKUP_SUFFIX = ".last-good"  # beside a snapshot: its session's last complete set of files
DAMAGED_SUFFIX = ".damaged"  # a session's file set aside: damaged, with no complete copy


class DamagedCheckpointError(StudyFolderError):
    """A trial's latest checkpoint cannot be read back."""


def check_resumable(experiment_dir: str | Path) -> None:
    """Raise :class:`DamagedCheckpointError` if the checkpoint Tune restores an unfinished trial
    from is bad, or Tune's experiment state is damaged with no good copy; put a good copy back
    (or set a damaged newest session aside) if there is one.

    ``experiment_dir`` is Ray's experiment folder (``<output>/tune``, or a folder in ``--storage``).
    An object-store URI is not read here: Ray reads those itself.
    """
    if "://" in str(experiment_dir) and not str(experiment_dir).startswith("file://"):
        return
    root = Path(str(experiment_dir).removeprefix("file://"))
    if not (root / tune_state.TUNER_FILE).is_file():
        raise StudyFolderError(
            f"{root} holds no Ray Tune state to resume from (no {tune_state.TUNER_FILE}): the "
            "study stopped before it started; run it again"
        )
    _repair_snapshot(root)
    trials = _snapshot_trials(root)
    for trial_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        trial = trials.get(trial_dir.name)
        if trial is not None and trial.finished:
            continue  # never restored
        if trial is not None and trial.checkpoints is not None:
            if trial.restores_from is not None:
                _check_state(trial_dir / trial.restores_from / STATE_FILE)
            continue
        # Which one the snapshot names is unknown (a layout this does not read): Tune restores
        # the newest it recorded, which is normally the newest kept.
        kept = tune_state.checkpoint_folders(trial_dir)
        if kept:
            _check_state(trial_dir / kept[-1] / STATE_FILE)


def backup_of(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + BACKUP_SUFFIX)


def read_backup(snapshot: Path) -> dict[str, bytes] | None:
    """File name -> content of the last complete set of ``snapshot``'s session (None if there is
    no usable copy)."""
    backup = backup_of(snapshot)
    try:
        content = backup.read_bytes()
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            files = {name: bundle.read(name) for name in bundle.namelist()}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if snapshot.name not in files or not all(map(tune_state.reads_back_whole, files.values())):
        return None
    return files


def _repair_snapshot(root: Path) -> None:
    """Make the newest session Tune will find complete: its last complete set put back; or, with
    none, its own files if they are complete; or else set them aside, for the session before it
    made complete the same way. Nothing is changed when no session is usable."""
    snapshots = tune_state.snapshots(root)[::-1]  # newest first
    if not snapshots:
        return
    damaged: list[Path] = []  # files of newer sessions, none of them usable
    for snapshot in snapshots:
        backup = read_backup(snapshot)
        files = tune_state.session_files(root, tune_state.session_of(snapshot))
        if backup is None and not all(tune_state.reads_back_whole(_read(p)) for p in files):
            damaged += files
            continue
        for path in damaged:  # moved, not deleted: Tune then takes this session
            os.replace(path, path.with_name(path.name + DAMAGED_SUFFIX))
        if backup is not None:
            # The whole set at once: as new as the experiment folder's, or newer (it is copied
            # from the driver's own files, which the folder's only follow), never a mix of steps.
            _restore(root, backup)
        return
    raise DamagedCheckpointError(
        f"{snapshots[0]}: Ray Tune's experiment state is damaged (the driver stopped while writing "
        "it) and there is no good copy of it: the study cannot be resumed"
    )


def _restore(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = root / name
        if _read(path) == content:
            continue
        partial = path.with_name(name + ".partial")
        partial.write_bytes(content)
        os.replace(partial, path)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


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
    missing = ENVELOPE_KEYS - set(state) if isinstance(state, dict) else ENVELOPE_KEYS
    if missing:
        raise DamagedCheckpointError(
            f"{path}: not a knee-study trial state (lacks {', '.join(sorted(missing))})"
        )


def _snapshot_trials(root: Path) -> dict[str, tune_state.TrialRecord]:
    """Trial folder name (and trial id) -> what Tune's newest snapshot records of the trial
    (nothing if unreadable). Should Tune's layout change, every trial is checked as if nothing
    were known, which only costs time (tests/study/test_tune_state.py is what notices)."""
    snapshot = tune_state.newest_snapshot(root)
    if snapshot is None:
        return {}
    try:
        records = tune_state.read_trials(snapshot.read_bytes())
    except (OSError, ValueError, tune_state.TuneLayoutError):
        return {}
    trials = {}
    for record in records.values():
        trials[record.trial_id] = record
        if record.folder is not None:
            trials[record.folder] = record
    return trials
