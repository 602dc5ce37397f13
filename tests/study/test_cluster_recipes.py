"""The cluster recipes (configs/cluster/rayjob.yaml, the README's `ray job submit`) hold commands
the CLI accepts for a config that validates: checked here without Kubernetes or a cluster."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from study.cli import _parser, main, run

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "configs" / "cluster"


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())


def _readme_submit_command() -> list[str]:
    """The `ray job submit ...` line (continuations joined) of the README's marked code block."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- cluster-submit -->\s*```bash\n(.*?)```", readme, re.S)
    assert block, "README.md lost its <!-- cluster-submit --> code block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    (submit,) = [line for line in lines if line.startswith("ray job submit")]
    return shlex.split(submit, comments=True)


def _check_run_command(argv: list[str], monkeypatch) -> None:
    """``argv`` (after ``knee-study``) parses as `run` and names a config that validates."""
    assert argv[0] == "run", argv
    args = _parser().parse_args(argv)  # argparse exits (SystemExit) on anything it refuses
    assert args.command is run
    assert args.address == "auto"
    assert args.tracking_uri.startswith("http://")
    assert args.storage.startswith(("s3://", "gs://")) or args.storage.startswith("/")
    assert args.output.startswith("/")  # a cluster's study folder is not relative to a pod's cwd
    config = ROOT / args.config
    assert config.is_file(), config
    # The driver validates on the head, which has no CIFAR copy: data.download=true is what lets
    # the config pass there, so the check runs with the command's own overrides.
    assert "data.download=true" in args.set
    monkeypatch.chdir(ROOT)
    overrides = [arg for item in args.set for arg in ("--set", item)]
    assert main(["validate", args.config, *overrides]) == 0


def test_rayjob_is_a_kuberay_rayjob(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1"
    assert rayjob["kind"] == "RayJob"
    assert rayjob["metadata"]["name"]
    spec = rayjob["spec"]
    for key in ("entrypoint", "rayClusterSpec", "runtimeEnvYAML"):
        assert spec[key], key
    assert spec["shutdownAfterJobFinishes"] is True  # GPUs are not left running
    assert yaml.safe_load(spec["runtimeEnvYAML"])["working_dir"]


def test_rayjob_entrypoint_is_a_run_the_cli_accepts(rayjob, monkeypatch):
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[0] == "knee-study"
    _check_run_command(argv[1:], monkeypatch)


def test_readme_ray_job_submit_is_a_run_the_cli_accepts(monkeypatch):
    argv = _readme_submit_command()
    assert argv[:3] == ["ray", "job", "submit"]
    assert "--working-dir" in argv
    command = argv[argv.index("--") + 1 :]
    assert command[0] == "knee-study"
    _check_run_command(command[1:], monkeypatch)


def test_rayjob_cluster_shape(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    # Trials go to the GPU workers, and the dashboard is not exposed outside Kubernetes.
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert cluster["authOptions"]["mode"] == "token"
    (worker,) = cluster["workerGroupSpecs"]
    (container,) = worker["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_rayjob_paths_are_mounted_where_the_command_uses_them(rayjob):
    args = _parser().parse_args(shlex.split(rayjob["spec"]["entrypoint"])[1:])
    cluster = rayjob["spec"]["rayClusterSpec"]

    def mounts(group) -> list[str]:
        (container,) = group["template"]["spec"]["containers"]
        return [mount["mountPath"] for mount in container.get("volumeMounts", [])]

    # The study folder outlives the head pod (resume needs it); each worker has a data folder.
    assert any(args.output.startswith(m + "/") for m in mounts(cluster["headGroupSpec"]))
    data_root = next(s.split("=", 1)[1] for s in args.set if s.startswith("data.root="))
    (worker,) = cluster["workerGroupSpecs"]
    assert data_root in mounts(worker)


def test_image_and_ray_version_agree(rayjob):
    """The manifest's rayVersion is the Ray of the image the Dockerfile builds on."""
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM rayproject/ray:(\S+)", dockerfile, re.M)
    assert base.startswith(rayjob["spec"]["rayClusterSpec"]["rayVersion"] + "-")
    # The working_dir the runtime env uploads is where the image holds the repository.
    working_dir = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["working_dir"]
    assert f"WORKDIR {working_dir}" in dockerfile
