"""Real servers for the integration tests, each on 127.0.0.1 in a session of its own and stopped
with every process it started: an MLflow tracking server, a Ray head node started with
``ray start --head`` (token auth on), the same with Ray's autoscaler, and a two-node Ray
cluster."""

import contextlib
import json
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import BIN, environment, stop_session, wait_for
from ports import free_port


@dataclass(frozen=True)
class RayCluster:
    address: str  # host:port of its GCS, for --address
    env: dict[str, str]  # what a driver needs to join it: loopback-only Ray and the token
    session: int  # the session id of all its processes


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a sqlite store in ``root``: started, stopped (every
    process of it) and started again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._server: subprocess.Popen | None = None

    def start(self) -> None:
        command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(self.root / "artifacts")]
        log_file = self.root / "server.log"
        with open(log_file, "a") as log:
            server = subprocess.Popen(
                command,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Without MLflow's GenAI job runner: eight Python processes fewer (its huey
                # consumers) beside the studies on 2 cores; knee-study runs no server jobs.
                env=environment(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
            )
        self._server = server
        wait_for(
            lambda: server.poll() is not None or _healthy(f"{self.uri}/health"),
            120,
            "mlflow server",
        )
        assert server.poll() is None, log_file.read_text()[-3000:]

    def stop(self) -> None:
        if self._server is not None:
            stop_session(self._server.pid, grace=15)
            self._server.wait()
            self._server = None


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a free 127.0.0.1 port with a sqlite store; yields its URI."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def own_mlflow_server(tmp_path_factory):
    """An :class:`MlflowServer` of the test's own, started: the test may stop and restart it."""
    server = MlflowServer(tmp_path_factory.mktemp("own-mlflow-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _cluster_env(folder: Path) -> dict[str, str]:
    """Token auth with a token of the test's own: ~/.ray/auth_token is left alone."""
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    return environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))


@pytest.fixture(scope="module")
def ray_head():
    """``ray start --head`` bound to 127.0.0.1 (2 CPUs, no dashboard, token auth, its own temp
    dir); stopped by its session, never with ``ray stop`` (which ends every Ray on the machine)."""
    # Short: Ray's unix socket paths under it must fit in 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="knee-ray-", dir="/tmp"))
    env = _cluster_env(folder)
    port = free_port()
    command = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += ["--num-cpus=2", "--include-dashboard=false", f"--temp-dir={folder / 'ray'}"]
    command += ["--disable-usage-stats"]
    with open(folder / "start.log", "w") as log:
        start = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        assert start.wait(120) == 0, (folder / "start.log").read_text()[-3000:]
        yield RayCluster(f"127.0.0.1:{port}", env, start.pid)
    finally:
        stop_session(start.pid, grace=2)
        shutil.rmtree(folder, ignore_errors=True)


def _autoscaling_config(gcs_port: int) -> dict:
    """Ray's fake multi-node provider: nodes it "launches" are Ray nodes on this machine. The
    head has one CPU and no GPU; up to two GPU nodes (one CPU, one fake GPU each) are added for
    pending work and kept for the module (removed after 10 idle minutes; the fixture ends first)."""
    return {
        "cluster_name": "knee-autoscaling",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 10,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": f"127.0.0.1:{gcs_port}",  # else it assumes port 6379
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu": {
                "resources": {"CPU": 1, "GPU": 1},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 2,
            },
        },
        "auth": {"ssh_user": "unused"},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture(scope="module")
def autoscaling_cluster():
    """``ray start --head`` with Ray's autoscaler on its fake multi-node provider (127.0.0.1,
    token auth): a cluster with no GPU until pending trials ask for one."""
    folder = Path(tempfile.mkdtemp(prefix="knee-ray-", dir="/tmp"))
    env = _cluster_env(folder)
    port = free_port()
    config = folder / "autoscaling.json"
    config.write_text(json.dumps(_autoscaling_config(port)))
    command = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += ["--num-cpus=1", "--include-dashboard=false", f"--temp-dir={folder / 'ray'}"]
    command += ["--disable-usage-stats", f"--autoscaling-config={config}"]
    # The provider refuses to run outside a head started so; the autoscaler looks every second.
    autoscaler_env = {**env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    with open(folder / "start.log", "w") as log:
        start = subprocess.Popen(
            command,
            env=autoscaler_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert start.wait(120) == 0, (folder / "start.log").read_text()[-3000:]
        yield RayCluster(f"127.0.0.1:{port}", env, start.pid)
    finally:
        stop_session(start.pid, grace=2)  # the nodes it added too: they are in its session
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def two_node_cluster():
    """Two Ray nodes of one CPU each on 127.0.0.1 (``ray.cluster_utils.Cluster``)."""
    folder = Path(tempfile.mkdtemp(prefix="knee-ray-", dir="/tmp"))
    env = _cluster_env(folder)
    script = Path(__file__).with_name("two_node_cluster.py")
    with open(folder / "cluster.log", "w") as log:
        harness = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    try:
        ready, _, _ = select.select([harness.stdout], [], [], 180)
        line = harness.stdout.readline() if ready else ""  # both nodes up, or the script died
        assert line.startswith("ADDRESS "), (folder / "cluster.log").read_text()[-3000:]
        yield RayCluster(line.split()[1], env, harness.pid)
    finally:
        harness.stdin.close()  # the script shuts the cluster down ...
        with contextlib.suppress(subprocess.TimeoutExpired):
            harness.wait(60)
        stop_session(harness.pid, grace=2)  # ... and whatever is left goes with its session
        shutil.rmtree(folder, ignore_errors=True)
