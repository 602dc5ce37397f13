"""A study folder is a thing a person copies and moves: its own store is recorded by its path
inside it, so a moved folder finds it and a copy reads its own; any other store stays as named."""

import json
import shutil

import pytest

from study import folder
from study.config import load_config
from study.folder import StudyFolderError, StudyMeta
from study.stores import sqlite_uri


def _study(path, uri=None):
    folder.create(path, load_config(None))
    meta = StudyMeta(uri or sqlite_uri(path / "mlflow.db"), "1", "a" * 32)
    folder.write_meta(path, meta)
    return meta


def test_the_own_store_is_recorded_by_its_path_in_the_folder(tmp_path):
    meta = _study(tmp_path / "study")

    record = json.loads((tmp_path / "study" / folder.META_FILE).read_text())

    assert record["store"] == "mlflow.db"
    assert record["tracking_uri"] == meta.tracking_uri  # as of the write, for people to read
    assert folder.open_study(tmp_path / "study")[1] == meta


def test_a_moved_folder_finds_its_store_where_it_is_now(tmp_path):
    _study(tmp_path / "study")
    (tmp_path / "study").rename(tmp_path / "moved")

    _, meta = folder.open_study(tmp_path / "moved")

    assert meta.tracking_uri == sqlite_uri(tmp_path / "moved" / "mlflow.db")


def test_a_copy_reads_its_own_store_not_the_originals(tmp_path):
    original = _study(tmp_path / "study")
    shutil.copytree(tmp_path / "study", tmp_path / "copy")

    _, copy = folder.open_study(tmp_path / "copy")

    assert copy.tracking_uri == sqlite_uri(tmp_path / "copy" / "mlflow.db")
    assert copy.tracking_uri != original.tracking_uri
    assert (copy.experiment_id, copy.parent_run_id) == (original.experiment_id, "a" * 32)


@pytest.mark.parametrize(
    "uri", ["sqlite:///{tmp}/elsewhere/mlflow.db", "http://127.0.0.1:5000", "file:///data/mlruns"]
)
def test_a_store_outside_the_folder_is_recorded_as_named(uri, tmp_path):
    uri = uri.format(tmp=tmp_path)
    _study(tmp_path / "study", uri)
    (tmp_path / "study").rename(tmp_path / "moved")

    record = json.loads((tmp_path / "moved" / folder.META_FILE).read_text())

    assert record["store"] is None
    assert folder.open_study(tmp_path / "moved")[1].tracking_uri == uri


def test_study_json_is_rewritten_only_when_it_changes(tmp_path):
    meta = _study(tmp_path / "study")
    assert folder.write_meta(tmp_path / "study", meta) is False
    shutil.copytree(tmp_path / "study", tmp_path / "copy")
    _, copy = folder.open_study(tmp_path / "copy")

    assert folder.write_meta(tmp_path / "copy", copy) is True  # it named the original's path

    record = json.loads((tmp_path / "copy" / folder.META_FILE).read_text())
    assert record["tracking_uri"] == sqlite_uri(tmp_path / "copy" / "mlflow.db")


@pytest.mark.parametrize("key", ["store", "storage", "tune_name"])
def test_a_study_json_without_one_of_its_keys_is_damaged(key, tmp_path):
    """No released version wrote a study.json without them: a missing key is damage, not an
    older format to guess at."""
    _study(tmp_path)
    record = json.loads((tmp_path / folder.META_FILE).read_text())
    del record[key]
    (tmp_path / folder.META_FILE).write_text(json.dumps(record))

    with pytest.raises(StudyFolderError, match=f"study.json is damaged: {key}: field required$"):
        folder.open_study(tmp_path)
