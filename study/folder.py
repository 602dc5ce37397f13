"""A study's output folder: the resolved config it ran, where its MLflow runs are, Ray's state.

<output>/study.yaml   the exact config (after --set overrides)
<output>/study.json   tracking URI, MLflow experiment and parent run ids, Ray address, storage
<output>/tune/        Ray Tune's experiment state and checkpoints: <output>/<tune_name> for a
                      study on a shared Ray cluster, <--storage>/<tune_name> with --storage
<output>/mlflow.db    the embedded MLflow store (unless --tracking-uri named another)
<output>/mlartifacts  the embedded store's artifacts (the study's report, attached to its run)
<output>/report/      the study's report
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ConfigDict, TypeAdapter, ValidationError

from study.config import StudyConfig, load_config
from study.storage import DEFAULT_NAME

CONFIG_FILE = "study.yaml"
META_FILE = "study.json"
REPORT_DIR = "report"  # the study's own report, also attached to its MLflow run


class StudyFolderError(ValueError):
    """The folder is not a study, or already holds one."""


@dataclass(frozen=True)
class StudyMeta:
    __pydantic_config__ = ConfigDict(extra="forbid")  # how open_study checks a study.json

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    address: str | None = None
    # Ray Tune's storage_path (absolute path or URI; None: this study folder) and the experiment's
    # folder name in it: resume restores from <storage>/<tune_name>.
    storage: str | None = None
    tune_name: str = DEFAULT_NAME


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


def write_meta(path: Path, meta: StudyMeta) -> None:
    (path / META_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")


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
        meta = _META.validate_json((path / META_FILE).read_bytes())
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(map(str, problem["loc"])) or "the file"
        raise StudyFolderError(
            f"{path / META_FILE} is damaged: {where}: {problem['msg'][0].lower()}"
            f"{problem['msg'][1:]}, got {problem.get('input')!r}"
        ) from None
    return load_config(path / CONFIG_FILE, check_files=check_files), meta


_META = TypeAdapter(StudyMeta)
