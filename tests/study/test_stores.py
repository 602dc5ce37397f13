"""Tracking store URIs: which are local, the same path from anywhere once made absolute, the
study's own store found inside its folder, and the ones MLflow cannot use refused in one line."""

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from study.stores import (
    TrackingError,
    absolute_uri,
    check_tracking_uri,
    is_local_store,
    local_path,
    sqlite_uri,
    store_in,
)


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("sqlite:////data/study/mlflow.db", True),
        ("file:///data/study/mlruns", True),
        ("/data/study/mlruns", True),
        ("http://127.0.0.1:5000", False),
        ("https://mlflow.example.org", False),
        ("postgresql://user@db.example.org/mlflow", False),  # other machines read it too
        ("databricks", False),
    ],
)
def test_only_a_local_store_keeps_artifacts_in_the_study_folder(uri, local):
    assert is_local_store(uri) is local


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///runs/mlflow.db", "sqlite:///{cwd}/runs/mlflow.db"),
        ("sqlite:///runs/mlflow.db?timeout=30", "sqlite:///{cwd}/runs/mlflow.db?timeout=30"),
        ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
        ("mlruns", "{cwd}/mlruns"),
        ("file:mlruns", "file://{cwd}/mlruns"),
        ("file:///data/mlruns", "file:///data/mlruns"),
        ("file:my store", "file://{cwd}/my%20store"),
        ("sqlite://", "sqlite://"),  # in memory
        ("sqlite:///file:runs.db?mode=ro&uri=true", "sqlite:///file:runs.db?mode=ro&uri=true"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("databricks", "databricks"),
    ],
)
def test_a_relative_local_store_is_made_absolute(uri, expected, tmp_path, monkeypatch):
    """A study's URI must name the same store wherever resume or report run from."""
    monkeypatch.chdir(tmp_path)
    assert absolute_uri(uri) == expected.format(cwd=tmp_path.resolve())


def test_a_stores_own_path_is_found_again_from_its_absolute_uri(tmp_path, monkeypatch):
    """What run stores, report and resume read back: the same path, spaces and all."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path.resolve() / "my store"
    store.mkdir()
    (store / "x.db").touch()
    for uri, path in [
        ("file:my store", store),
        ("my store", store),
        ("sqlite:///my store/x.db?timeout=5", store / "x.db"),
    ]:
        assert local_path(absolute_uri(uri)) == path
        check_tracking_uri(absolute_uri(uri), must_exist=True)


@pytest.mark.parametrize("uri", ["databricks", "databricks://my-profile", "file:///data/mlruns"])
def test_stores_mlflow_knows_pass_the_check(uri):
    check_tracking_uri(uri)


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("bogus://x", "MLflow has no store for bogus: URIs"),
        ("mssql+nosuchdriver://knee@127.0.0.1/runs", "cannot use mssql+nosuchdriver: "),
    ],
)
def test_stores_mlflow_cannot_use_are_one_line(uri, words):
    with pytest.raises(TrackingError) as refused:
        check_tracking_uri(uri)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)


_PATH_PART = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -_.%#"), min_size=1
).filter(lambda part: part not in (".", ".."))


@settings(max_examples=50, deadline=None)
@given(parts=st.lists(_PATH_PART, min_size=1, max_size=3))
def test_every_local_store_uri_names_the_same_path_once_made_absolute(parts, tmp_path_factory):
    """Whatever a relative local store is called (spaces, %, #), the URI run stores names the
    path it meant from where it ran, and making it absolute again changes nothing."""
    cwd = tmp_path_factory.mktemp("cwd").resolve()
    relative = "/".join(parts)
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for uri in (relative, f"file:{quote(relative)}", f"sqlite:///{relative}"):
            stored = absolute_uri(uri)
            assert local_path(stored) == cwd / relative
            assert absolute_uri(stored) == stored
    finally:
        os.chdir(old)


def test_a_sqlite_store_inside_a_folder_is_named_by_its_path_there(tmp_path):
    study = tmp_path / "study"
    assert store_in(study, sqlite_uri(study / "mlflow.db")) == "mlflow.db"
    assert store_in(study, sqlite_uri(study / "stores" / "a b.db")) == "stores/a b.db"
    for elsewhere in (
        sqlite_uri(tmp_path / "mlflow.db"),  # beside it, not in it
        f"{sqlite_uri(study / 'mlflow.db')}?timeout=30",  # options a path cannot carry
        "sqlite:///relative.db",
        f"file://{study}/mlruns",
        "http://127.0.0.1:5000",
    ):
        assert store_in(study, elsewhere) is None, elsewhere
