"""MLflow tracking stores by their URI: which kind a URI names, where a local one is on disk, and
whether MLflow can use it, checked before anything starts.

Nothing here writes to a store. MLflow and SQLAlchemy are imported only by the checks that need
them, so a URI's form is judged without either.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from study.errors import BadInput, one_line

STORE_FILE = "mlflow.db"  # the embedded store: a sqlite file in the study folder


class TrackingError(BadInput):
    """The MLflow tracking URI cannot be used."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def is_local_store(uri: str) -> bool:
    """Whether ``uri`` is a store in files on this machine (sqlite, a file store) rather than a
    server or a database other machines read too."""
    if uri == "databricks":  # MLflow's name for a Databricks workspace, not a path
        return False
    return urlsplit(uri).scheme in ("", "file", "sqlite")


def sqlite_uri(path: Path) -> str:
    """The URI of a sqlite store at ``path`` (made absolute, as MLflow 3 wants)."""
    return f"sqlite:///{path.resolve()}"


def default_tracking_uri(output: Path) -> str:
    """The embedded store: a sqlite file in the study folder ``output``."""
    return sqlite_uri(output / STORE_FILE)


# MLflow 3's UI opens an experiment on its GenAI overview (traces, tokens: empty for a study)
# unless the link asks for the model-training view of its runs.
RUNS_PAGE = "#/experiments/{id}/runs?workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def runs_page(server: str, experiment_id: str, view: str | None = None) -> str:
    """The experiment's Runs page on ``server``, in the model-training view; ``view``: opened
    in that saved view (``study.study_run.save_runs_view``)."""
    page = f"{server.rstrip('/')}/{RUNS_PAGE.format(id=experiment_id)}"
    return f"{page}&viewStateShareKey={view}" if view else page


def browse_hint(uri: str, experiment_id: str, view: str | None = None) -> str:
    """How to look at the study's runs: the server's Runs page of the experiment (in ``view``),
    or the command that serves a local store and the page to open then."""
    if is_server(uri):
        return runs_page(uri, experiment_id, view)
    return f"mlflow ui --backend-store-uri {uri}, then {runs_page(LOCAL_UI, experiment_id, view)}"


def check_tracking_uri(
    uri: str, must_exist: bool = False, timeout: float = 5.0, missing: str = ""
) -> None:
    """Fail fast, before anything starts, on a tracking URI MLflow cannot use: a server that
    does not answer, a scheme MLflow has no store for, a database without its driver, and with
    ``must_exist`` (commands that read or continue a study) a local store that is not there,
    where MLflow would quietly make an empty one (``missing``: what to do then, said after)."""
    if is_server(uri):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                pass
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingError(
                f"--tracking-uri: no MLflow server answers at {uri} ({reason})"
            ) from None
        return
    scheme = urlsplit(uri).scheme
    if scheme and not _has_store(uri):  # ("databricks" alone has no scheme: MLflow's own)
        raise TrackingError(
            f"--tracking-uri: MLflow has no store for {scheme}: URIs, got {uri} (use "
            "sqlite:///PATH, a folder, http(s)://SERVER or a database URI)"
        )
    if scheme.partition("+")[0] in ("postgresql", "mysql", "mssql"):  # is the driver here?
        from sqlalchemy.engine import make_url  # MLflow's own database layer

        try:
            make_url(uri).get_dialect().import_dbapi()
        except Exception as error:  # no driver installed, a malformed URL
            first = one_line(error, expected=True)
            raise TrackingError(f"--tracking-uri: cannot use {scheme}: {first}") from None
    path = local_path(uri)
    if must_exist and path is not None and not path.exists():
        raise TrackingError(f"no MLflow store at {path}{missing}")


def _has_store(uri: str) -> bool:
    """Whether MLflow has a tracking store for ``uri``'s scheme (its own or a plugin's)."""
    from mlflow.exceptions import MlflowException

    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # moved in some MLflow release: let MLflow judge the URI itself
        return True
    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException:
        return False
    return True


def local_path(uri: str) -> Path | None:
    """The file or folder of a local store (a sqlite file, a file store); None for other URIs
    and for sqlite databases that are no plain file (in memory, SQLite's own file: URIs)."""
    if not is_local_store(uri):
        return None
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(uri).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)
    return Path(url2pathname(parts.path) if parts.scheme == "file" else uri)


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative local path made absolute: a study's URI must mean the same store
    from wherever it is resumed or reported."""
    path = local_path(uri)
    if path is None or path.is_absolute():
        return uri
    if urlsplit(uri).scheme == "sqlite":
        from sqlalchemy.engine import make_url

        url = make_url(uri).set(database=str(path.resolve()))
        return url.render_as_string(hide_password=False)
    return path.resolve().as_uri() if uri.startswith("file:") else str(path.resolve())


def store_in(folder: Path, uri: str) -> str | None:
    """The path, relative to ``folder``, of the sqlite store ``uri`` names when that store is a
    plain file inside ``folder`` (the study's own store travels with it); None otherwise."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = local_path(uri)
    if path is None or not path.is_absolute():
        return None
    try:
        return path.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None
