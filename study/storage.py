"""Where Ray Tune keeps a study's experiment state and trial checkpoints (``--storage``).

By default that is the study folder itself (``<output>/tune``). On a cluster it must be storage
every node sees: a shared (NFS) path or an object store URI, which Ray reaches through pyarrow's
filesystems. Nothing here imports Ray, and nothing touches the network: a URI is checked for its
form only, so a bad one fails before anything starts and a good one is not probed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from study.errors import BadInput

# pyarrow.fs.FileSystem.from_uri schemes that Ray's storage_path accepts (gcs is gs's alias).
URI_SCHEMES = ("s3", "gs", "gcs", "hdfs")
DEFAULT_NAME = "tune"  # Tune's folder in the study folder of a study on its own local Ray


class StorageError(BadInput):
    """An unusable ``--storage`` value (the message names the option)."""


def resolve_storage(value: str) -> str:
    """``--storage`` as Ray's ``storage_path``: an absolute local path or a checked URI.

    A local path (or ``file://`` URI) is made absolute; its parent must be an existing folder
    (the storage folder itself is made by Ray). A URI needs a supported scheme and a bucket.
    Creates nothing.
    """
    if "://" not in value:
        return _local(value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _local(parts.path)
    if scheme not in URI_SCHEMES:
        raise StorageError(
            f"--storage: unsupported scheme {scheme + '://'!r} in {value} (use a local or shared "
            f"path, or {', '.join(s + '://BUCKET/PATH' for s in URI_SCHEMES)})"
        )
    if not parts.netloc:
        raise StorageError(f"--storage: {value} names no bucket ({scheme}://BUCKET/PATH)")
    return value.rstrip("/")


def experiment_path(output: Path, storage: str | None, name: str = DEFAULT_NAME) -> str:
    """Ray's experiment folder of a study: ``<storage>/<name>`` (``None``: the study folder)."""
    root = storage if storage is not None else str(output.resolve())
    return f"{root.rstrip('/')}/{name}"


def _local(value: str) -> str:
    path = Path(value).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise StorageError(f"--storage: {path} is a file, not a folder")
    if not path.parent.is_dir():
        raise StorageError(
            f"--storage: {path.parent} does not exist (create it, or mount the shared storage "
            "there)"
        )
    return str(path)
