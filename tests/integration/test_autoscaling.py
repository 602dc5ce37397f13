"""A study on a cluster that grows: Ray's autoscaler (its fake multi-node provider: the nodes it
adds are Ray nodes on 127.0.0.1) starts GPU nodes only for pending trials. Sized from the nodes
up at start, a GPU study is refused there; with resources.autoscaling it runs on the nodes the
autoscaler adds for it."""

import pytest
from harness import (
    LOOPBACK,
    Study,
    assert_complete_picture,
    listening_sockets,
    session_processes,
    study_args,
)

pytestmark = pytest.mark.slow

EPOCHS = 3
SWEEP = {"explore_fraction": [0.5], "peak_lr": [0.05], "seed": [0, 1]}


def _study(tmp, name, cluster, *sets):
    args = study_args(tmp / name, name, EPOCHS, SWEEP, "resources.gpus_per_trial=1", *sets)
    study = Study([*args, "--address", cluster.address], tmp / f"{name}.log", cluster.env)
    try:
        code = study.wait(300)
    finally:
        assert study.stop() == []  # the driver left nothing running
    return code, study.output()


def test_gpu_trials_run_on_the_nodes_the_autoscaler_adds_for_them(tmp_path, autoscaling_cluster):
    # The head has no GPU: a plan sized from the nodes up now refuses, and says what to set.
    code, log = _study(tmp_path, "fixed", autoscaling_cluster)
    assert code == 2, log[-3000:]
    assert "a trial needs 1.0 GPUs, the cluster has 0" in log
    assert "an autoscaling cluster: set resources.autoscaling=true" in log
    assert not (tmp_path / "fixed").exists()

    code, log = _study(tmp_path, "grown", autoscaling_cluster, "resources.autoscaling=true")
    assert code == 0, log[-3000:]
    assert "2 trials, up to 2 at a time as the cluster grows" in log
    # Each trial held a GPU, and only nodes the autoscaler added have one.
    assert_complete_picture(tmp_path / "grown", trials=2, epochs=EPOCHS)
    assert "node(s) of type gpu" in log  # the autoscaler's own line, relayed to the driver
    # Whatever the autoscaler started stays on loopback too: the head's raylet and one per node
    # it added (they outlive the study: idle nodes go after 10 minutes).
    processes = session_processes(autoscaling_cluster.session)
    raylets = [p for p in processes if p.name() == "raylet"]
    assert len(raylets) >= 2, [p.name() for p in processes]
    listening = listening_sockets(processes)
    for process, address, port in listening:
        assert address in LOOPBACK, f"{process} listens on {address}:{port}"
