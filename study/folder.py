"""A study's output folder: the resolved config it ran, where its MLflow runs are, Ray's state.

<output>/study.yaml   the exact config (after --set overrides)
<output>/study.json   tracking URI, MLflow experiment and parent run ids, Ray address, storage;
                      the study's own store (a sqlite file inside the folder) by its path in
                      the folder, so that a moved folder finds it and a copy uses its own
<output>/tune/        Ray Tune's experiment state and checkpoints: <output>/<tune_name> for a
                      study on a shared Ray cluster, <--storage>/<tune_name> with --storage
<output>/mlflow.db    the embedded MLflow store (unless --tracking-uri named another)
<output>/mlartifacts  the embedded store's artifacts (the study's report, attached to its run)
<output>/report/      the study's report

A study folder is a thing a person copies and moves: nothing in it names the folder itself.
A copy is a study of its own (its own store, its own report); see :meth:`study.study.Study.open`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from study.config import StudyConfig, load_config
from study.errors import BadInput
from study.storage import DEFAULT_NAME
from study.stores import sqlite_uri, store_in

CONFIG_FILE = "study.yaml"
META_FILE = "study.json"
REPORT_DIR = "report"  # the study's own report, also attached to its MLflow run


class StudyFolderError(BadInput):
    """The folder is not a study, or already holds one."""


@dataclass(frozen=True)
class StudyMeta:
    """What study.json records. ``tracking_uri`` is where the store is now: for the study's own
    store, the one in the folder it was read from."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    address: str | None = None
    # Ray Tune's storage_path (absolute path or URI; None: this study folder) and the experiment's
    # folder name in it: resume restores from <storage>/<tune_name>.
    storage: str | None = None
    tune_name: str = DEFAULT_NAME
    # Trials in that Tune experiment: 0 for the study's grid; an extension's runs its new points.
    tune_trials: int = 0


def check_new(path: Path) -> None:
    """Refuse a folder that already holds a study: its runs would be mixed with the new ones."""
    path = path.resolve()
    if (path / META_FILE).exists() or (path / CONFIG_FILE).exists():
        raise StudyFolderError(
            f"{path} already holds a study: continue it with `knee-study resume {path}` "
            "or choose another --output"
        )


def create(path: Path, cfg: StudyConfig) -> Path:
    """Make a new study folder holding the resolved config."""
    check_new(path)
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(cfg.to_yaml())
    return path


def write_config(path: Path, cfg: StudyConfig) -> None:
    """Rewrite the study's config (an extension grew it): written whole, then moved over."""
    partial = path / (CONFIG_FILE + ".partial")
    partial.write_text(cfg.to_yaml())
    os.replace(partial, path / CONFIG_FILE)


@contextlib.contextmanager
def undone_on_error(path: Path) -> Iterator[None]:
    """Around setting up a study :func:`create` made: should it fail, the folder stops being a
    study (its study files removed; anything else in it is left alone)."""
    try:
        yield
    except BaseException:
        for name in (META_FILE, CONFIG_FILE):
            (path / name).unlink(missing_ok=True)
        raise


def write_meta(path: Path, meta: StudyMeta) -> bool:
    """Write study.json (unless it holds that already); returns whether it wrote.

    Beside ``tracking_uri`` (absolute, as of this write) it records ``store``: the path in the
    folder of the study's own store, None for any other. Read back, ``store`` is what counts.
    """
    record = {**asdict(meta), "store": store_in(path, meta.tracking_uri)}
    text = json.dumps(record, indent=2) + "\n"
    with contextlib.suppress(OSError):
        if (path / META_FILE).read_text() == text:
            return False
    (path / META_FILE).write_text(text)
    return True


def open_study(path: Path, check_files: bool = True) -> tuple[StudyConfig, StudyMeta]:
    """The config and tracking ids of an existing study folder.

    ``check_files=False`` skips what the config checks on this machine's disk (the CIFAR root):
    a report needs the study's runs, not its data.
    """
    path = path.resolve()
    if not (path / META_FILE).is_file() or not (path / CONFIG_FILE).is_file():
        raise StudyFolderError(
            f"{path} is not a study folder (no {CONFIG_FILE} and {META_FILE}; "
            "`knee-study run --output DIR` makes one)"
        )
    try:
        record = _Record.model_validate_json((path / META_FILE).read_bytes()).model_dump()
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(map(str, problem["loc"])) or "the file"
        what = f"{problem['msg'][0].lower()}{problem['msg'][1:]}"
        if problem["type"] != "missing":
            what += f", got {problem.get('input')!r}"
        raise StudyFolderError(f"{path / META_FILE} is damaged: {where}: {what}") from None
    store = record.pop("store")
    if store is not None:  # the study's own store: where the folder is now
        record["tracking_uri"] = sqlite_uri(path / store)
    return load_config(path / CONFIG_FILE, check_files=check_files), StudyMeta(**record)


class _Record(BaseModel):
    """study.json as :func:`write_meta` writes it: every key there, nothing else."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    address: str | None
    storage: str | None
    tune_name: str
    tune_trials: int = 0
    store: str | None
