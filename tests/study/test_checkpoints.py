"""Resume's checks on a fake Ray Tune experiment folder (no Ray run): the last complete set of a
session's state files put back whole, a damaged newest session with no copy set aside, and the
checkpoint a trial restores from being the one its snapshot names."""

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
import torch

from study.checkpoints import (
    DAMAGED_SUFFIX,
    STATE_FILE,
    DamagedCheckpointError,
    check_resumable,
)
from study.snapshot_backup import SnapshotBackup
from trainables.handle import ENVELOPE_KEYS

T1, T2 = "2026-01-01_10-00-00", "2026-01-01_11-00-00"


def _snapshot(*trials: tuple[str, str, list[str]]) -> bytes:
    """An experiment snapshot of (trial_id, status, checkpoint folders), laid out as Ray 2.x."""
    data = []
    for trial_id, status, checkpoints in trials:
        manager = {  # stands in for the cloudpickled _CheckpointManager: same strings
            "_checkpoint_results": [f"/elsewhere/tune/{trial_id}/{c}" for c in checkpoints],
            "_latest_checkpoint_result": None,
        }
        runtime = {"checkpoint_manager": {"_type": "CLOUDPICKLE_FALLBACK", "value": ""}}
        runtime["checkpoint_manager"]["value"] = pickle.dumps(manager).hex()
        trial = {"trial_id": trial_id, "status": status, "relative_logdir": trial_id}
        data.append([json.dumps(trial), json.dumps(runtime)])
    return json.dumps({"trial_data": data, "runner_data": {}}).encode()


def _session(folder: Path, session: str, snapshot: bytes, searcher: object) -> dict[str, bytes]:
    files = {
        f"experiment_state-{session}.json": snapshot,
        # Tune pickles its search state, whatever the name says.
        f"basic-variant-state-{session}.json": pickle.dumps({"variants": searcher}),
        f"searcher-state-{session}.pkl": pickle.dumps({"searcher": searcher}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def _back_up(staging: Path, root: Path) -> None:
    """What SnapshotBackup does after a step of Tune's loop that saved Tune's state."""
    storage = SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(),
        experiment_driver_staging_path=str(staging),
        experiment_fs_path=str(root),
    )
    SnapshotBackup().on_step_end(1, [SimpleNamespace(storage=storage)])


def _checkpoint(root: Path, trial_id: str, name: str, good: bool = True) -> Path:
    folder = root / trial_id / name
    folder.mkdir(parents=True)
    if good:
        torch.save({key: 0 for key in ENVELOPE_KEYS}, folder / STATE_FILE)
    else:
        (folder / STATE_FILE).write_bytes(b"PK\x03\x04 cut short")
    return folder


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "tune"
    root.mkdir()
    (root / "tuner.pkl").write_bytes(b"tuner")
    return root


def test_resume_puts_back_the_whole_last_complete_set_of_a_session(root, tmp_path):
    staging = tmp_path / "staging"
    good = _session(staging, T1, _snapshot(("a", "RUNNING", [])), searcher=2)
    _back_up(staging, root)
    # The background copy died midway: one file empty, one cut short, one from the step before.
    _session(root, T1, b"", searcher=1)
    (root / f"searcher-state-{T1}.pkl").write_bytes(good[f"searcher-state-{T1}.pkl"][:-3])

    check_resumable(root)

    assert {name: (root / name).read_bytes() for name in good} == good


def test_a_damaged_newest_session_without_a_copy_is_set_aside(root, tmp_path):
    staging = tmp_path / "staging"
    first = _session(staging, T1, _snapshot(("a", "RUNNING", [])), searcher=1)
    _back_up(staging, root)
    _session(root, T1, first[f"experiment_state-{T1}.json"], searcher=1)
    # Resumed, then killed while Tune wrote the new session's files, before their first copy.
    second = _session(root, T2, b"", searcher=2)

    check_resumable(root)

    assert {name: (root / name).read_bytes() for name in first} == first
    for name, content in second.items():  # moved, not deleted; Tune no longer finds them
        assert not (root / name).exists()
        assert (root / (name + DAMAGED_SUFFIX)).read_bytes() == content


def test_a_damaged_session_with_no_usable_snapshot_cannot_resume(root):
    _session(root, T1, b"", searcher=1)
    second = _session(root, T2, b"", searcher=2)
    before = sorted(p.name for p in root.iterdir())

    with pytest.raises(DamagedCheckpointError, match="no good copy"):
        check_resumable(root)
    assert sorted(p.name for p in root.iterdir()) == before  # refused: nothing moved
    assert (root / f"experiment_state-{T2}.json").read_bytes() == second[
        f"experiment_state-{T2}.json"
    ]


def test_the_checkpoint_the_snapshot_names_is_checked_not_a_newer_torn_one(root):
    _checkpoint(root, "a", "checkpoint_000001")
    _checkpoint(root, "a", "checkpoint_000002", good=False)  # written as the driver died
    snapshot = root / f"experiment_state-{T1}.json"
    snapshot.write_bytes(_snapshot(("a", "RUNNING", ["checkpoint_000000", "checkpoint_000001"])))

    check_resumable(root)  # Tune restores checkpoint_000001, which reads back

    snapshot.write_bytes(_snapshot(("a", "RUNNING", ["checkpoint_000001", "checkpoint_000002"])))
    with pytest.raises(DamagedCheckpointError, match="checkpoint_000002"):
        check_resumable(root)


def test_a_checkpoint_lacking_part_of_what_train_reads_back_is_refused(root):
    folder = _checkpoint(root, "a", "checkpoint_000001")
    torch.save({key: 0 for key in ENVELOPE_KEYS - {"torch_rng"}}, folder / STATE_FILE)
    (root / f"experiment_state-{T1}.json").write_bytes(
        _snapshot(("a", "RUNNING", ["checkpoint_000001"]))
    )

    with pytest.raises(DamagedCheckpointError, match="torch_rng"):
        check_resumable(root)
