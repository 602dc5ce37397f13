"""What every benchmark shares: contenders timed side by side, the machine, the verdict line.

These machines are shared and noisy, so a figure is never one absolute time: contenders run
interleaved (A B A B ...), each round gives a ratio, and the figure is the median over rounds.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def machine() -> str:
    """One line: cores, CPU model, GPU, torch version, load average, date."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), {gpu}, torch {torch.__version__}, "
        f"load {load}, {time.strftime('%Y-%m-%d %H:%M')}"
    )


def seconds(fn: Callable[[], object], device: torch.device | None = None) -> float:
    """Wall time of ``fn()``; on CUDA the queued work is included (synchronised both ends)."""
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@dataclass(frozen=True)
class SideBySide:
    """Per-round times of each contender, in the order they were given."""

    names: tuple[str, ...]
    times: tuple[tuple[float, ...], ...]  # times[round][contender], seconds

    def median(self, name: str) -> float:
        i = self.names.index(name)
        return statistics.median(round_[i] for round_ in self.times)

    def ratio(self, slow: str, fast: str) -> float:
        """Median over rounds of time(slow) / time(fast): how many times faster ``fast`` is."""
        i, j = self.names.index(slow), self.names.index(fast)
        return statistics.median(round_[i] / round_[j] for round_ in self.times)

    def spread(self, slow: str, fast: str) -> tuple[float, float]:
        i, j = self.names.index(slow), self.names.index(fast)
        ratios = [round_[i] / round_[j] for round_ in self.times]
        return min(ratios), max(ratios)


def side_by_side(
    contenders: Sequence[tuple[str, Callable[[], object]]],
    rounds: int,
    device: torch.device | None = None,
) -> SideBySide:
    """Run every contender once per round, alternating which goes first (no order advantage)."""
    names = tuple(name for name, _ in contenders)
    times = []
    for r in range(rounds):
        order = list(range(len(contenders)))
        if r % 2:
            order.reverse()
        round_times = [0.0] * len(contenders)
        for i in order:
            round_times[i] = seconds(contenders[i][1], device)
        times.append(tuple(round_times))
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {t:.3f} s" for n, t in zip(names, round_times, strict=True)),
            flush=True,
        )
    return SideBySide(names, tuple(times))


def verdict(label: str, figure: float, target: float, unit: str = "x", higher: bool = True) -> bool:
    """Print ``PASS``/``FAIL`` for a figure against its target; returns whether it passed."""
    passed = figure >= target if higher else figure <= target
    sign = ">=" if higher else "<="
    outcome = "PASS" if passed else "FAIL"
    print(f"{label}: {figure:.3g}{unit} (target {sign} {target:g}{unit}) {outcome}")
    return passed


def skipped(label: str, why: str) -> None:
    print(f"{label}: SKIPPED ({why})")
