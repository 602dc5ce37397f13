"""Target 5: peak memory of the whole default study, the driver plus every Ray process.

Runs ``knee-study run`` (configs/digits_quick.yaml) and samples its process tree with psutil
every ``--interval`` seconds: the ``knee-study`` process and all its descendants (Ray's GCS,
raylet, dashboard agents, trial workers). Per sample it sums

- RSS: resident pages of each process; pages shared between processes (the Python and torch
  libraries every Ray worker maps, Ray's object store) count once per process, so the sum
  overstates what the study takes from the machine;
- PSS: each shared page divided among the processes that map it: the sum is the study's real
  footprint. **The target figure: peak summed PSS <= 3 GB.**
- USS: pages only that process maps (what killing it would free).

It also sums each process's CPU time by role, to show who competes with the trials for the cores.

    .venv/bin/python benchmarks/study_memory.py [--quick] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import psutil
from measure import machine, verdict
from sweep_efficiency import run_study

TARGET_GB = 3.0
GB = 1024**3


class TreeSampler:
    """Peak summed RSS / PSS / USS of a process tree, and CPU seconds by process role."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.peak = {"rss": 0, "pss": 0, "uss": 0}
        self.peak_processes = 0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, user + system seconds)
        self.stopped = threading.Event()

    def watch(self, process) -> None:
        root = psutil.Process(process.pid)
        while not self.stopped.is_set() and process.poll() is None:
            self.sample(root)
            self.stopped.wait(self.interval)

    def sample(self, root: psutil.Process) -> None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        totals = {"rss": 0, "pss": 0, "uss": 0}
        for proc in tree:
            try:
                with proc.oneshot():
                    info = proc.memory_full_info()
                    times = proc.cpu_times()
                    role = _role(proc, root)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for key in totals:
                totals[key] += getattr(info, key)
            self.cpu[proc.pid] = (role, times.user + times.system)
        for key, value in totals.items():
            self.peak[key] = max(self.peak[key], value)
        self.peak_processes = max(self.peak_processes, len(tree))

    def cpu_by_role(self) -> dict[str, float]:
        seconds: dict[str, float] = defaultdict(float)
        for role, value in self.cpu.values():
            seconds[role] += value
        return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def _role(proc: psutil.Process, root: psutil.Process) -> str:
    if proc.pid == root.pid:
        return "driver (knee-study)"
    command = " ".join(proc.cmdline())
    for marker, role in [
        ("gcs_server", "Ray GCS"),
        ("raylet", "Ray raylet"),
        ("dashboard", "Ray dashboard / agents"),
        ("log_monitor", "Ray log monitor"),
        ("monitor.py", "Ray monitor"),
    ]:
        if marker in command:
            return role
    name = proc.name()
    if name.startswith("ray::"):
        return "Ray workers (trials, idle)"
    return f"other ({name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10-trial study (2 seeds, 1 LR)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()
    overrides = list(args.set)
    if args.quick:
        overrides += ["sweep.seed=[0, 1]", "sweep.peak_lr=[0.1]"]

    print(machine())
    sampler = TreeSampler(args.interval)
    with tempfile.TemporaryDirectory() as tmp:
        study = run_study(Path(tmp) / "study", overrides, watch=sampler.watch)
    sampler.stopped.set()
    if study.returncode != 0:
        sys.exit(f"knee-study run failed (exit {study.returncode})")
    print(f"study wall {study.wall:.1f} s, up to {sampler.peak_processes} processes")
    for key in ("rss", "pss", "uss"):
        print(f"  peak summed {key.upper()}: {sampler.peak[key] / GB:.2f} GB")
    print("  CPU seconds by role (user + system, as last sampled):")
    for role, seconds in sampler.cpu_by_role().items():
        print(f"    {role:30} {seconds:7.1f}")
    verdict("study memory, peak summed PSS", sampler.peak["pss"] / GB, TARGET_GB, " GB", False)


if __name__ == "__main__":
    main()
