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

Nothing here imports Ray (it runs before Ray's environment is settled) or runs code from a
checkpoint or a snapshot: files are read with ``torch.load(weights_only=True)``, memory-mapped,
so the cost is the pickled structure, not the weights; pickles in a snapshot are only walked
(:mod:`pickletools`), never loaded.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from study.folder import StudyFolderError
from trainables.train import STATE_KEYS

STATE_FILE = "state.pt"  # a trial checkpoint's one file (written by study.launch)
TUNER_FILE = "tuner.pkl"  # what Tuner.restore reads first
SNAPSHOT_PREFIX = "experiment_state-"
SNAPSHOT_GLOB = SNAPSHOT_PREFIX + "*.json"  # Tune's experiment snapshots, one per session
SESSION_EXTENSIONS = (".json", ".pkl")  # Tune's state files (all that Tune reads back)
BACKUP_SUFFIX = ".last-good"  # beside a snapshot: its session's last complete set of files
DAMAGED_SUFFIX = ".damaged"  # a session's file set aside: damaged, with no complete copy
_CHECKPOINT_GLOB = "checkpoint_*"
_CHECKPOINT_NAME = re.compile(r"checkpoint_\d+")


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
    if not (root / TUNER_FILE).is_file():
        raise StudyFolderError(
            f"{root} holds no Ray Tune state to resume from (no {TUNER_FILE}): the study stopped "
            "before it started; run it again"
        )
    _repair_snapshot(root)
    trials = _snapshot_trials(root)
    for trial_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        trial = trials.get(trial_dir.name)
        if trial is not None and trial.finished:
            continue  # never restored
        if trial is not None and trial.checkpoints is not None:
            if trial.checkpoints:  # the one Tune restores from
                _check_state(trial_dir / max(trial.checkpoints, key=_index) / STATE_FILE)
            continue
        # Which one the snapshot names is unknown (a layout this does not read): Tune restores
        # the newest it recorded, which is normally the newest kept.
        newest = max((p.name for p in trial_dir.glob(_CHECKPOINT_GLOB)), key=_index, default=None)
        if newest is not None:
            _check_state(trial_dir / newest / STATE_FILE)


def session_of(snapshot: Path) -> str:
    """``<S>`` of ``experiment_state-<S>.json``: Tune's session (a timestamp)."""
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


def backup_of(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + BACKUP_SUFFIX)


def read_backup(snapshot: Path) -> dict[str, bytes] | None:
    """File name -> content of the last complete set of ``snapshot``'s session (None if there is
    no usable copy). A copy made before sets were kept holds the snapshot alone, as plain JSON."""
    backup = backup_of(snapshot)
    try:
        content = backup.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(content)):
            json.loads(content)
            return {snapshot.name: content}
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            files = {name: bundle.read(name) for name in bundle.namelist()}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if snapshot.name not in files or not all(map(_complete, files.values())):
        return None
    return files


def _repair_snapshot(root: Path) -> None:
    """Make the newest session Tune will find complete: its last complete set put back; or, with
    none, its own files if they are complete; or else set them aside, for the session before it
    made complete the same way. Nothing is changed when no session is usable."""
    snapshots = sorted(root.glob(SNAPSHOT_GLOB), reverse=True)
    if not snapshots:
        return
    damaged: list[Path] = []  # files of newer sessions, none of them usable
    for snapshot in snapshots:
        backup = read_backup(snapshot)
        files = session_files(root, session_of(snapshot))
        if backup is None and not all(_complete(_read(p)) for p in files):
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


def _complete(content: bytes | None) -> bool:
    """Whether a file of Tune's state reads back whole: JSON that parses or a pickle whose opcodes
    run to its end (walked, not loaded). Tune pickles the search state whatever the file's
    extension (``basic-variant-state-<S>.json`` is a pickle)."""
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


def _index(name: str) -> int:
    try:
        return int(name.rpartition("_")[2])
    except ValueError:
        return -1


@dataclass(frozen=True)
class _Trial:
    finished: bool
    checkpoints: frozenset[str] | None  # checkpoint folders it records (None: could not tell)


def _snapshot_trials(root: Path) -> dict[str, _Trial]:
    """Trial folder name (and trial id) -> what Tune's newest snapshot records of the trial
    (nothing if unreadable).

    The snapshot's trial entries are pairs of JSON strings (Ray 2.x): the trial (``trial_id``,
    ``status``, ``relative_logdir``) and its run metadata, whose ``checkpoint_manager`` is a
    hex cloudpickle naming the trial's kept checkpoints, newest highest. Should that layout
    change, every trial is checked as if nothing were known, which only costs time.
    """
    snapshots = sorted(root.glob(SNAPSHOT_GLOB))
    if not snapshots:
        return {}
    try:
        trial_data = json.loads(snapshots[-1].read_text())["trial_data"]
        entries = [(json.loads(entry[0]), entry[1]) for entry in trial_data]
        trials = {}
        for trial, runtime in entries:
            record = _Trial(trial.get("status") == "TERMINATED", _named_checkpoints(runtime))
            trials[trial["trial_id"]] = record
            if isinstance(trial.get("relative_logdir"), str):
                trials[trial["relative_logdir"]] = record
        return trials
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def _named_checkpoints(runtime_json: str) -> frozenset[str] | None:
    try:
        blob = bytes.fromhex(json.loads(runtime_json)["checkpoint_manager"]["value"])
        strings = [arg for _, arg, _ in pickletools.genops(blob) if isinstance(arg, str)]
    except Exception:  # not the layout this reads: unknown
        return None
    if "_latest_checkpoint_result" not in strings:
        return None
    names = (Path(s).name for s in strings)
    return frozenset(n for n in names if _CHECKPOINT_NAME.fullmatch(n))
