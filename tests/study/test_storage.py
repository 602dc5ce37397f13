"""--storage: where Ray Tune keeps a study's state and checkpoints, recorded for resume."""

import json

import pytest

from study import folder
from study.cli import EXIT_BAD_INPUT, main
from study.storage import StorageError, experiment_path, resolve_storage
from study.study_run import set_study_status


def test_local_storage_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_storage("ray-state") == str(tmp_path / "ray-state")
    assert resolve_storage(f"file://{tmp_path}/ray-state/") == str(tmp_path / "ray-state")
    assert not (tmp_path / "ray-state").exists()  # Ray makes it, not the check


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/knee", "s3://bucket/knee"),
        ("s3://bucket/knee/", "s3://bucket/knee"),
        ("gs://bucket", "gs://bucket"),
        ("hdfs://namenode:8020/knee", "hdfs://namenode:8020/knee"),
    ],
)
def test_object_store_uris_pass_unprobed(uri, expected):
    assert resolve_storage(uri) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{tmp}/no-such-folder/state", "no-such-folder does not exist"),
        ("{tmp}/a-file", "is a file, not a folder"),
        ("ftp://host/knee", "unsupported scheme 'ftp://'"),
        ("s3:///knee", "names no bucket"),
    ],
)
def test_unusable_storage_is_refused(value, message, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StorageError, match=message):
        resolve_storage(value.format(tmp=tmp_path))


@pytest.mark.parametrize("value", ["{tmp}/missing/state", "ftp://host/knee"])
def test_run_with_unusable_storage_exits_2_and_makes_nothing(value, tmp_path, capsys):
    before = set(tmp_path.iterdir())
    argv = ["run", "--storage", value.format(tmp=tmp_path), "--output", str(tmp_path / "study")]

    assert main(argv) == EXIT_BAD_INPUT

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("knee-study: error: --storage: ")
    assert set(tmp_path.iterdir()) == before


def test_restore_path_is_the_recorded_storage_or_the_study_folder(tmp_path):
    assert experiment_path(tmp_path, None) == f"{tmp_path}/tune"
    assert experiment_path(tmp_path, "/nfs/knee", "s-1") == "/nfs/knee/s-1"
    assert experiment_path(tmp_path, "s3://bucket/knee", "s-1") == "s3://bucket/knee/s-1"


@pytest.mark.slow
def test_study_state_goes_to_storage_and_resume_finds_it(tmp_path, knee_study):
    output, shared = tmp_path / "study", tmp_path / "x" / "somewhere"
    shared.parent.mkdir()
    sets = {
        "name": "storage-e2e",
        "train.epochs": 2,
        "sharpness.steps": 5,
        "sweep.explore_fraction": "[0.5]",
        "sweep.peak_lr": "[0.05]",
        "sweep.seed": "[0, 1]",
    }

    proc = knee_study("run", "--output", str(output), "--storage", str(shared), sets=sets)

    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((output / folder.META_FILE).read_text())
    assert meta["storage"] == str(shared)
    state = shared / meta["tune_name"]
    assert meta["tune_name"].startswith("storage-e2e-")
    assert list(state.glob("experiment_state-*.json")), sorted(shared.rglob("*"))
    assert len([p for p in state.iterdir() if p.is_dir()]) == 2  # one folder per trial
    assert not (output / "tune").exists()  # nothing of Ray's in the study folder

    # The driver died after both trials finished, before it marked the study (its parent run
    # RUNNING): resume restores from the recorded storage (the study folder has no Ray state to
    # find), and nothing runs again.
    set_study_status(meta["tracking_uri"], meta["parent_run_id"], "RUNNING")
    proc = knee_study("resume", str(output))

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming {output}" in proc.stdout
    assert "study finished" in proc.stdout
    assert not (output / "tune").exists()
