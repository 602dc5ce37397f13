"""``load_history`` against a real ``mlflow server``: requests in flight, 8 vs 1.

MLflow has no bulk call for metric histories: ``load_history`` makes one request per run and
metric. This starts ``mlflow server`` (127.0.0.1, a free port, sqlite in a temporary folder),
logs ``--runs`` trial runs with ``--epochs`` epochs of the five per-epoch metrics, then times
``load_history`` over those runs with 8 requests in flight (its default) and with one at a
time, interleaved (``measure.side_by_side``). Both must return the same frame. Target: >= 2x.
On these 2-core machines the server shares the cores with the client; a server of its own
answers more requests at once.

    .venv/bin/python benchmarks/history_load.py [--runs 300] [--epochs 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
from measure import machine, side_by_side, verdict
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from analysis.runs import load_history, load_runs
from trainables.results import EPOCH_METRICS, PARENT_RUN_TAG

TARGET = 2.0
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a line per run else


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    log = open(folder / "server.log", "w")  # noqa: SIM115 - open for the server's life
    server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")


def log_runs(uri: str, runs: int, epochs: int) -> None:
    """One study: a parent and ``runs`` children, each one log_batch of its whole history."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("history")
    parent = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(experiment, tags={PARENT_RUN_TAG: parent}).info.run_id
        params = {"explore_fraction": i % 5 / 4, "peak_lr": 0.1, "seed": i // 5}
        metrics = [
            Metric(key, 0.5 + 0.01 * step, now, step)
            for key in EPOCH_METRICS
            for step in range(1, epochs + 1)
        ]
        client.log_batch(run, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
        client.set_terminated(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        server, uri = start_server(Path(tmp))
        try:
            started = time.perf_counter()
            log_runs(uri, args.runs, args.epochs)
            print(
                f"{args.runs} runs x {len(EPOCH_METRICS)} metrics x {args.epochs} epochs logged "
                f"in {time.perf_counter() - started:.1f} s"
            )
            runs = load_runs("history", uri)
            frames = {}

            def fetch(name: str, in_flight: int) -> None:
                frames[name] = load_history(None, uri, runs=runs, requests_in_flight=in_flight)

            timed = side_by_side(
                [
                    ("one at a time", lambda: fetch("one", 1)),
                    ("8 in flight", lambda: fetch("8", 8)),
                ],
                args.rounds,
            )
        finally:
            server.terminate()
            server.wait(30)
    pd.testing.assert_frame_equal(frames["one"], frames["8"])
    assert len(frames["8"]) == args.runs * args.epochs
    requests = args.runs * len(EPOCH_METRICS)
    for name in timed.names:
        print(f"  {name}: {timed.median(name):.2f} s for {requests} history requests")
    verdict(
        "load_history, 8 requests in flight vs 1",
        timed.ratio("one at a time", "8 in flight"),
        TARGET,
    )


if __name__ == "__main__":
    main()
