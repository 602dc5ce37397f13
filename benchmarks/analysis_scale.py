"""Target 6: ``knee-study report`` on a synthetic MLflow experiment of 5,000 trial runs.

Builds (once; reused from ``--cache``) a sqlite MLflow store holding one study laid out as
``knee-study run`` writes it: a parent run and ``--runs`` FINISHED child runs (tag
``mlflow.parentRunId``), each with the trial's params (explore_fraction, peak_lr, seed, schedule
and the rest of a digits trial's config), final metrics (test_acc, sharpness, trial_seconds and
the last epoch's) and ``--epochs`` epochs of per-epoch history. Building takes minutes (one
create / log_batch / terminate per run).

Then times ``knee-study report --experiment NAME --tracking-uri URI --out DIR`` as a subprocess:
wall time and its peak resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). Target: < 60 s.
The report includes the learning curves, so it loads the per-epoch history of the trials they
draw; the parts are then timed in this process (median of ``--rounds``): ``load_runs``,
``load_history`` of those trials and metrics, and ``write_report`` without and with that
history.

    .venv/bin/python benchmarks/analysis_scale.py [--runs 5000] [--cache PATH] [--quick]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import machine, verdict

from study.config import load_config, trial_label
from trainables.results import PARENT_RUN_TAG, TRIAL_ID_TAG

TARGET_S = 60.0
EXPERIMENT = "analysis-scale"
KNEE_STUDY = str(Path(sys.executable).parent / "knee-study")
EXPLORE = [0.0, 0.25, 0.5, 0.75, 1.0]
PEAK_LRS = [0.025, 0.05, 0.1, 0.2]
# The rest of a digits trial's config, as the tracker logs it: the default study's.
FIXED_PARAMS = {k: v for k, v in load_config(None).trial_base().items()}


def build_store(path: Path, runs: int, epochs: int) -> None:
    """A fresh sqlite store at ``path`` holding one study of ``runs`` trial runs."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(f"sqlite:///{path}")
    experiment_id = client.create_experiment(EXPERIMENT)
    parent = client.create_run(experiment_id, run_name=EXPERIMENT)
    seeds = -(-runs // (len(EXPLORE) * len(PEAK_LRS)))
    grid = list(itertools.islice(itertools.product(EXPLORE, PEAK_LRS, range(seeds)), runs))
    rng = np.random.default_rng(0)
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for i, (explore, peak_lr, seed) in enumerate(grid, 1):
        # Accuracy flat up to 75% explore, lower at 100%; sharpness falls with exploring.
        accuracy = 0.982 - 0.01 * (explore == 1.0) * peak_lr / 0.2 + rng.normal(0, 0.002)
        sharpness = 2.0 - explore + rng.gamma(2.0, 0.2)
        params = {"explore_fraction": explore, "peak_lr": peak_lr, "seed": seed}
        params |= {"schedule": "knee", **FIXED_PARAMS}
        curve = accuracy - 0.2 * np.exp(-np.arange(1, epochs + 1) / 3)
        history = [
            Metric(key, float(value), now, step)
            for step, acc in enumerate(curve, 1)
            for key, value in [
                ("train_loss", 1 - acc),
                ("train_acc", acc + 0.01),
                ("test_loss", 1.1 - acc),
                ("test_acc", acc),
                ("lr", peak_lr),
            ]
        ]
        final = {"test_acc": accuracy, "sharpness": sharpness, "trial_seconds": 2.0}
        metrics = history + [Metric(k, float(v), now, epochs) for k, v in final.items()]
        run = client.create_run(
            experiment_id,
            run_name=trial_label(params),
            tags={PARENT_RUN_TAG: parent.info.run_id, TRIAL_ID_TAG: f"synthetic_{i:05d}"},
        )
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch
            client.log_batch(
                run.info.run_id,
                metrics=metrics[start : start + 1000],
                params=[Param(k, str(v)) for k, v in params.items()] if start == 0 else [],
                tags=[RunTag("diverged", "false")] if start == 0 else [],
            )
        client.set_terminated(run.info.run_id, status="FINISHED")
        if i % 500 == 0:
            print(f"  {i}/{runs} runs logged, {time.perf_counter() - started:.0f} s", flush=True)
    client.set_terminated(parent.info.run_id, status="FINISHED")


def cached_store(cache: Path, runs: int, epochs: int) -> Path:
    """The store for (runs, epochs) under ``cache``, built the first time it is asked for."""
    path = cache / f"analysis-{runs}-runs-{epochs}-epochs.db"
    if path.exists():
        print(f"reusing {path}")
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    print(f"building {path} ({runs} runs, {epochs} epochs of history each; minutes)")
    build_store(partial, runs, epochs)
    partial.rename(path)  # only a complete store is ever reused
    return path


def time_parts(uri: str, rounds: int) -> None:
    """The report's parts in this process, each the median of ``rounds``: what the history
    adds, beside what the rest of the report costs."""
    from analysis import curves
    from analysis.report import write_report
    from analysis.runs import load_history, load_runs

    times: dict[str, list[float]] = {}

    def lap(name: str, started: float) -> None:
        times.setdefault(name, []).append(time.perf_counter() - started)

    for _ in range(rounds):
        started = time.perf_counter()
        runs = load_runs(EXPERIMENT, uri)
        lap("load_runs", started)
        started = time.perf_counter()
        needed = curves.needed(runs)
        history = load_history(None, uri, runs=needed, metrics=curves.METRICS)
        lap("load_history", started)
        for name, given in [("no history", None), ("with history", history)]:
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                write_report(runs, Path(out), EXPERIMENT, history=given)
                lap(f"write_report, {name}", started)
    requests = len(needed) * len(curves.METRICS)
    print(f"  in one process, median of {rounds} (each round's in brackets):")
    print(f"    history: {len(needed)} runs x {len(curves.METRICS)} metrics = {requests} requests")
    for name, values in times.items():
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"    {name}: {statistics.median(values):.1f} s ({each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=10, help="per-epoch history of each run")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "knee-study",
        help="folder keeping the built store between invocations",
    )
    parser.add_argument("--quick", action="store_true", help="500 runs")
    parser.add_argument("--rounds", type=int, default=3, help="of the in-process parts")
    args = parser.parse_args()
    if args.quick:
        args.runs = 500

    print(machine())
    store = cached_store(args.cache.expanduser().resolve(), args.runs, args.epochs)
    uri = f"sqlite:///{store}"
    with tempfile.TemporaryDirectory() as out:
        command = [KNEE_STUDY, "report", "--experiment", EXPERIMENT, "--tracking-uri", uri]
        start = time.perf_counter()
        proc = subprocess.run([*command, "--out", out], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        written = sorted(p.name for p in Path(out).iterdir())
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    if proc.returncode != 0:
        sys.exit(f"knee-study report failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(proc.stdout.strip())
    print(f"  wrote {', '.join(written)}")
    print(f"  {args.runs} runs: {wall:.1f} s, peak resident memory {peak_kb / 1024:.0f} MB")
    verdict(f"analysis report of {args.runs} runs, wall time", wall, TARGET_S, " s", False)
    time_parts(uri, args.rounds)


if __name__ == "__main__":
    main()
