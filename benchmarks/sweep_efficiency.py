"""Target 3: how much of a study's wall time the trials spend computing.

Runs the default study (``knee-study run``, configs/digits_quick.yaml) as a subprocess and reads
its MLflow store back:

    efficiency = sum of trial_seconds / (process wall time x concurrent trials)

``trial_seconds`` is compute only (training, evaluation, sharpness), so everything else -- Python
and Ray start-up, scheduling, reports, checkpoints, MLflow logging, shutdown -- is overhead.
The profile splits the wall time: before the first trial's run opens, inside the trials' runs
(compute vs the rest), between runs, and after the last one closes. Target: >= 0.8.

    .venv/bin/python benchmarks/sweep_efficiency.py [--quick] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from measure import machine, verdict

TARGET = 0.8
KNEE_STUDY = str(Path(sys.executable).parent / "knee-study")


@dataclass(frozen=True)
class StudyRun:
    output: Path
    started: float  # time.time() when the command started
    wall: float  # seconds, the whole `knee-study run` process
    returncode: int
    lines: list[tuple[float, str]]  # (time.time(), line) of its output, as it came


def run_study(output: Path, overrides: list[str], watch=None) -> StudyRun:
    """``knee-study run`` into ``output``, its output lines time-stamped as they arrive;
    ``watch(process)``, when given, runs in a thread of its own while the study runs."""
    args = [arg for item in overrides for arg in ("--set", item)]
    command = [KNEE_STUDY, "run", *args, "--output", str(output)]
    started, start = time.time(), time.perf_counter()
    lines = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        if watch is not None:
            threading.Thread(target=watch, args=(process,), daemon=True).start()
        for line in process.stdout:
            lines.append((time.time(), line.rstrip("\n")))
    wall = time.perf_counter() - start
    if process.returncode != 0:
        print("\n".join(line for _, line in lines[-40:]))
    return StudyRun(output, started, wall, process.returncode, lines)


def trial_runs(output: Path) -> list:
    """The study's child runs (one per trial) from its sqlite MLflow store."""
    from mlflow import MlflowClient

    from study.stores import default_tracking_uri
    from trainables.results import PARENT_RUN_TAG

    client = MlflowClient(default_tracking_uri(output))
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=50_000
    )
    return [run for run in runs if PARENT_RUN_TAG in run.data.tags]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 10-trial study (2 seeds, 1 peak LR)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", help="study folder to write (default: a temporary one)")
    args = parser.parse_args()
    overrides = list(args.set)
    if args.quick:
        overrides += ["sweep.seed=[0, 1]", "sweep.peak_lr=[0.1]"]

    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(args.keep or Path(tmp) / "study").resolve()
        study = run_study(output, overrides)
        if study.returncode != 0:
            sys.exit(f"knee-study run failed (exit {study.returncode})")
        runs = trial_runs(output)
    # The CLI says "knee-study: N trials, K at a time -> FOLDER".
    plan = next(line for _, line in study.lines if " at a time -> " in line)
    concurrent = int(plan.split(" at a time")[0].rsplit(",", 1)[1])
    compute = sum(run.data.metrics["trial_seconds"] for run in runs)
    efficiency = compute / (study.wall * concurrent)
    print(
        f"{len(runs)} trials, wall {study.wall:.1f} s, sum of trial_seconds {compute:.1f} s, "
        f"{concurrent} concurrent"
    )
    _profile(runs, study, compute, concurrent)
    for _, line in study.lines:
        if line.startswith("verdict:"):
            print(f"  the study's own {line}")
    verdict("sweep efficiency", efficiency, TARGET, unit="")


def _profile(runs: list, study: StudyRun, compute: float, concurrent: int) -> None:
    """Where the wall time went, from the runs' start and end times (written by the driver) and
    the time the command printed its report line."""
    starts = sorted(run.info.start_time / 1000 for run in runs)
    ends = sorted(run.info.end_time / 1000 for run in runs)
    inside = sum(run.info.end_time - run.info.start_time for run in runs) / 1000
    finished = study.started + study.wall
    before, span = starts[0] - study.started, ends[-1] - starts[0]
    said = [t for t, line in study.lines if "study finished" in line]
    shutdown = (said[0] if said else finished) - ends[-1]
    report = finished - ends[-1] - shutdown
    n = len(runs)
    print("  where the time went (seconds x concurrent slots)")
    print(f"    start-up, until the first trial's run opens:  {before:6.1f} s x {concurrent}")
    print(f"    trials running, compute (trial_seconds):      {compute:6.1f}")
    print(f"    trials running, not compute:                  {inside - compute:6.1f}")
    print(f"    slots idle between trials:                    {span * concurrent - inside:6.1f}")
    print(f"    closing runs, Ray shutdown:                   {shutdown:6.1f} s x {concurrent}")
    print(f"    the report written after the study:           {report:6.1f} s x {concurrent}")
    print(
        f"    per trial: {compute / n:.2f} s compute, {(inside - compute) / n:.2f} s else "
        f"inside its run, {(span * concurrent - inside) / n:.2f} s between runs"
    )


if __name__ == "__main__":
    main()
