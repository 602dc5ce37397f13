"""Keep a last complete copy of Ray Tune's experiment snapshot, for ``knee-study resume``.

Tune rewrites ``experiment_state-*.json`` in place (truncate, then write) after every result; a
driver killed in between leaves it empty or cut short, and ``Tuner.restore`` then cannot tell
which trials exist or finished. This callback copies each complete version beside it
(``experiment_state-*.json.last-good``, written atomically); resume puts it back when the
snapshot is damaged (:func:`study.checkpoints.check_resumable`). Object stores need none of
this: an object is replaced whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

from study.checkpoints import BACKUP_SUFFIX, SNAPSHOT_GLOB


class SnapshotBackup(tune.Callback):
    """After a complete new snapshot appears, copy it to ``<snapshot>.last-good`` atomically.

    Looked for after every step of Tune's loop (a ``stat`` unless the snapshot changed), so the
    copy is normally one snapshot behind at most, and the checkpoints it names are still kept
    (``CheckpointConfig(num_to_keep=2)`` deletes a trial's checkpoint two reports later); a
    copy taken only every few seconds named deleted checkpoints and could not be resumed.
    """

    def __init__(self) -> None:
        self._forget()

    # Pickled with Tune's state: only the (empty) configuration travels.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._forget()

    def _forget(self) -> None:
        self._copied: dict[str, tuple[int, int]] = {}  # snapshot name -> (mtime, size) copied

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not trials:
            return
        storage = trials[0].storage
        if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
            return
        for snapshot in Path(storage.experiment_fs_path).glob(SNAPSHOT_GLOB):
            self._copy_if_complete(snapshot)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.on_step_end(0, trials)

    def _copy_if_complete(self, snapshot: Path) -> None:
        try:
            stat = snapshot.stat()
            version = (stat.st_mtime_ns, stat.st_size)
            if self._copied.get(snapshot.name) == version:
                return
            content = snapshot.read_bytes()
            json.loads(content)
        except (OSError, ValueError):
            return  # being written: the next look gets it
        partial = snapshot.with_name(snapshot.name + BACKUP_SUFFIX + ".partial")
        partial.write_bytes(content)
        os.replace(partial, snapshot.with_name(snapshot.name + BACKUP_SUFFIX))
        self._copied[snapshot.name] = version
