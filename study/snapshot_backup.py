"""Keep a last complete copy of Ray Tune's experiment state, for ``knee-study resume``.

Tune writes its state for a session (``experiment_state-<S>.json``, and the search state beside
it: ``basic-variant-state-<S>.json``, ``searcher-state-<S>.pkl``, ...) to a staging folder on
the driver, then copies that folder over the experiment folder in the background, rewriting
each file in place; a driver killed during the copy leaves files there empty, cut short, or
from different steps, and ``Tuner.restore`` then fails. After each step this callback copies
the session's files from the staging folder, where Tune has just written them whole, into one
file beside the snapshot (``experiment_state-<S>.json.last-good``, a zip written atomically);
resume puts the whole set back (:func:`study.checkpoints.check_resumable`). Object stores need
none of this: an object is replaced whole.

Where the staging folder is, and which files make a session's set, is read through
:mod:`study.tune_state`, the one module that knows how Ray Tune stores an experiment.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

from ray import tune

from study import tune_state
from study.checkpoints import backup_of


class SnapshotBackup(tune.Callback):
    """After Tune saved a new version of its state, copy the session's set of files together.

    Tune saves them (``TuneController.save_to_dir``) in the same loop step, before the
    callbacks' ``on_step_end``, so the copy is of one step's files, never a mix, and as new as
    the experiment folder's or newer; the checkpoints it names are kept
    (``CheckpointConfig(num_to_keep=2)`` deletes a trial's checkpoint two reports later).
    Between saves a step costs one ``stat``.
    """

    def __init__(self) -> None:
        self._forget()

    # Pickled with Tune's state: only the (empty) configuration travels.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._forget()

    def _forget(self) -> None:
        self._copied: tuple[str, int, int] | None = None  # snapshot copied: (name, mtime, size)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        folders = tune_state.local_state_folders(trials)
        if folders is None:
            return  # no trials yet, or an object store
        snapshot = tune_state.newest_snapshot(folders.staging)  # this session's
        if snapshot is None:
            return
        try:
            stat = snapshot.stat()
        except OSError:
            return
        version = (snapshot.name, stat.st_mtime_ns, stat.st_size)
        if version == self._copied:
            return
        backup = backup_of(folders.experiment / snapshot.name)
        if not backup.parent.is_dir():
            return  # the experiment folder is made by Tune's first copy
        partial = backup.with_name(backup.name + ".partial")
        with zipfile.ZipFile(partial, "w") as bundle:
            for path in tune_state.session_files(folders.staging, tune_state.session_of(snapshot)):
                bundle.write(path, path.name)
        os.replace(partial, backup)
        self._copied = version

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._copied = None  # the final save: copy it whatever its time stamp
        self.on_step_end(0, trials)
