"""The Ray a study runs on: which cluster an address names, whether anything answers there,
and the connection itself (Ray's environment, ``ray.init`` and the log lines a study filters).

Ray reads its environment when it is imported, so nothing imports Ray before :func:`connect`
has set it (:func:`study.ray_env.prepare_ray_env`); everything else here works without Ray.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from study.errors import BadInput, one_line
from study.ray_env import prepare_ray_env


class AddressError(BadInput):
    """A Ray address that names no cluster a study can join."""


def address_of(given: str | None, recorded: str | None = None) -> str | None:
    """The cluster a command joins: ``--address``, else ``RAY_ADDRESS``, else the address a
    resumed study recorded; None: a Ray of its own."""
    return given or os.environ.get("RAY_ADDRESS") or recorded


def own_ray(address: str | None) -> bool:
    """Whether the study starts a Ray of its own (no other driver can join it)."""
    return address in (None, "local")


def is_local(address: str | None) -> bool:
    """A local Ray, or a head on this machine's loopback: either way Ray must stay on 127.0.0.1.

    A driver that joins ``127.0.0.1:PORT`` without that setting swaps in the machine's outward
    address and waits forever for a head that listens on loopback only.
    """
    if own_ray(address):
        return True
    return _as_url(address).hostname in ("127.0.0.1", "localhost", "::1")


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a cluster address that is malformed or where nothing listens: Ray raises a
    many-line ValueError on the one and waits minutes on the other."""
    if own_ray(address) or address == "auto":  # "auto": Ray finds the head, or says it cannot
        return
    scheme = address.split("://", 1)[0] if "://" in address else ""
    if scheme in ("http", "https"):  # RAY_ADDRESS as `ray job submit` wants it
        raise AddressError(
            f"--address: {address} is the dashboard's (jobs) address; a study joins the head at "
            "HOST:6379, ray://HOST:10001 or auto"
        )
    if scheme not in ("", "ray"):  # another kind of Ray address (a plugin's): Ray judges it
        return
    parts = _as_url(address)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host = port = None
    if not host or port is None:
        raise AddressError(
            f"--address: expected HOST:PORT, ray://HOST:PORT or auto, got {address!r}"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise AddressError(
            f"--address: nothing answers at {host}:{port} ({error.strerror or error}): is the "
            "cluster's head running?"
        ) from None


def check_autoscaling(autoscaling: bool, address: str | None) -> None:
    if autoscaling and own_ray(address):
        raise AddressError(
            "resources.autoscaling: a study's own local Ray never grows (trials would wait "
            "forever); join an autoscaling cluster with --address"
        )


def _as_url(address: str) -> SplitResult:
    """A Ray address as a URL, so a bare ``HOST:PORT`` parses like ``ray://HOST:PORT``."""
    return urlsplit(address if "://" in address else f"ray://{address}")


class Cluster:
    """A connected Ray: what it holds, and the end of the connection."""

    def resources(self) -> Mapping[str, float]:
        import ray

        return ray.cluster_resources()

    def shutdown(self) -> None:
        import ray

        ray.shutdown()


def connect(address: str | None) -> Cluster:
    """Set Ray's environment, then start a Ray of the study's own (``None``, ``"local"``) or
    join the cluster at ``address``."""
    prepare_ray_env(local=is_local(address))
    if own_ray(address):
        from study.preflight import find_local_modules  # before Ray starts its workers

        find_local_modules()
    import ray

    # Tune looks for the per-trial result files we turn off (MLflow is the record) and warns
    # once per trial when it restores a study or builds its result grid; nothing is missing.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Tune's "Resume experiment with: Tuner.restore(...)": knee-study says how to continue.
    logging.getLogger("ray.tune.tune").addFilter(
        lambda record: not record.getMessage().startswith("Experiment has been interrupted")
    )
    if own_ray(address):  # Ray says it turned token auth on: on a loopback-only Ray, as it should
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    try:
        # "local": a study without --address gets its own Ray, never one that happens to run
        # on this machine (a plain ray.init() joins the last `ray start` head it finds here).
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING)
    except ValueError as error:  # an address Ray cannot parse
        raise AddressError(f"--address: {one_line(error, expected=True)}") from None
    except ConnectionError as error:
        # A head that is down, or one with token auth (Ray's default) asked without the token.
        raise AddressError(
            f"{error}: is its head running? With token auth (Ray's default) set "
            "RAY_AUTH_MODE=token and give its token (~/.ray/auth_token, RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH)"
        ) from None
    return Cluster()
