"""Target 7: four small trials sharing one GPU vs one trial per GPU, aggregate throughput.

Runs the same small study twice through ``knee-study run`` (synthetic CIFAR-shaped data, the
``cnn`` model, ``--trials`` trials): once with ``resources.gpus_per_trial=1`` (one trial per GPU
at a time) and once with ``0.25`` (four trials packed on each GPU, each capped to a quarter of
its memory). Aggregate throughput = training images of all trials / the time from the first
trial's run opening to the last one closing (from MLflow; Ray start-up is left out of both).
Target: packed >= 2x. Without CUDA it prints SKIPPED.

    .venv/bin/python benchmarks/gpu_packing.py [--trials 8] [--epochs 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from measure import machine, skipped, verdict
from sweep_efficiency import run_study, trial_runs

from trainables.data import load_data

TARGET = 2.0


def throughput(output: Path, gpus_per_trial: float, trials: int, epochs: int) -> float:
    """Images per second over the trials' span, for one packing."""
    seeds = list(range(trials // 2))
    overrides = [
        "data.dataset=synthetic",
        "model.name=cnn",
        f"train.epochs={epochs}",
        "train.batch_size=128",
        "train.device=cuda",
        "sweep.explore_fraction=[0.0, 0.5]",
        "sweep.peak_lr=[0.05]",
        f"sweep.seed={seeds}",
        "tune.checkpoint_every=1000",  # the last epoch only: measure training, not checkpoints
        f"resources.gpus_per_trial={gpus_per_trial}",
        "resources.cpus_per_trial=1",
        "resources.max_concurrent=null",
        f"name=packing-{gpus_per_trial}",
    ]
    study = run_study(output, overrides)
    if study.returncode != 0:
        sys.exit(f"knee-study run failed (exit {study.returncode})")
    runs = trial_runs(output)
    span = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    images = len(runs) * epochs * load_data("synthetic").num_train
    compute = sum(r.data.metrics["trial_seconds"] for r in runs)
    print(
        f"  gpus_per_trial {gpus_per_trial}: {len(runs)} trials in {span:.1f} s "
        f"(sum of trial_seconds {compute:.1f} s), {images / span:,.0f} images/s aggregate"
    )
    return images / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="even; half at 0%%, half at 50%%")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    print(machine())
    if not torch.cuda.is_available():
        skipped("GPU packing, 4 trials per GPU vs 1", "no GPU")
        return
    print(f"{torch.cuda.device_count()} GPU(s); {args.trials} cnn trials of {args.epochs} epochs")
    with tempfile.TemporaryDirectory() as tmp:
        alone = throughput(Path(tmp) / "alone", 1, args.trials, args.epochs)
        packed = throughput(Path(tmp) / "packed", 0.25, args.trials, args.epochs)
    verdict("GPU packing, aggregate throughput 4 per GPU vs 1", packed / alone, TARGET)


if __name__ == "__main__":
    main()
