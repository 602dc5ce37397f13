"""LM training step: tokens per second of ``trainables/lm.py``'s step vs a nanoGPT-style loop.

Both train the same freshly seeded :class:`trainables.gpt.GPT` with the same AdamW (``lm.py``'s
parameter groups: weight decay on weight matrices only; betas 0.9/0.95, clip 1.0) at the same
batch and context on the train split of the embedded ``pydoc`` byte corpus:

- ours: exactly ``trainables.lm.fit``'s step: ``random_windows`` from the device-resident token
  stream (one index op), ``lm_loss``, ``zero_grad(set_to_none=True)``, backward, clip,
  ``optimizer.step()`` (with the lr hook a ``Trial`` registers), ``scheduler.step()`` of
  ``make_schedule("knee", ...)``, the loss summed on the device;
- nanoGPT-style (karpathy/nanoGPT train.py): the split written to a temporary uint16 ``.bin``
  as prepare.py does, ``np.memmap``-ed afresh every batch, ``get_batch`` = ``torch.randint``
  offsets and ``torch.stack`` of one ``from_numpy(data[i:i+ctx].astype(np.int64))`` per window
  (``pin_memory().to(device, non_blocking=True)`` on CUDA), the next batch fetched between
  forward and backward, ``F.cross_entropy(logits.view(-1, V), y.view(-1))``, the LR set by hand
  (warmup + cosine), ``loss.item()`` every 10 iterations (its log interval).

bf16 autocast on CUDA in both, fp32 on a CPU (as a trial trains). Rounds are interleaved and
the figure is the median ratio of round times (many short rounds: on a shared machine that pairs
the contenders best). After them, ours is timed phase by phase (data, forward, backward, clip,
AdamW step + schedule; synchronised on CUDA) to show where its time goes, and nanoGPT's
``get_batch`` alone; on a CPU, where the loops differ in the data path only, those parts give
the ratio to expect without the rounds' noise.

- CPU (always), torch on ``--threads`` threads (default 1, as a trial runs): the quick study's
  size (``GPT(256, context=64, layers=2, heads=4, width=64)``, batch 16) and ``lm.py``'s default
  (width 128, context 128, batch 32). Target: ours >= 1.0x (the data path must not cost).
- CUDA (when available): 6 layers, width 384, 6 heads, context 256, batch 64; tokens/s and MFU
  (``trainables.gpt.flops_per_token`` over the device's dense bf16 peak).

    .venv/bin/python benchmarks/lm_tokens.py [--quick] [--threads N] [--fused]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from measure import machine, side_by_side, skipped, verdict
from torch import nn
from torch.nn import functional as F

from trainables.corpus import eval_windows, load_corpus, random_windows
from trainables.gpt import GPT, count_parameters, flops_per_token, parameter_groups
from trainables.lm import evaluate, lm_loss
from trainables.schedules import make_schedule

CPU_TARGET = 1.0
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets; --peak-tflops overrides.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
LR, BETAS, EPS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.95), 1e-8, 0.1, 1.0
LOG_INTERVAL = 10  # nanoGPT reads the loss back every log_interval iterations


@dataclass(frozen=True)
class Size:
    name: str
    layers: int
    heads: int
    width: int
    context: int
    batch: int
    steps: int  # per round: short rounds, many of them, pair the contenders under load
    quick_steps: int
    profile_steps: int  # ours timed phase by phase


CPU_SIZES = (
    Size("quick study", 2, 4, 64, context=64, batch=16, steps=20, quick_steps=10, profile_steps=60),
    Size("lm default", 2, 4, 128, context=128, batch=32, steps=4, quick_steps=2, profile_steps=20),
)
GPU_SIZE = Size("GPT-small-ish", 6, 6, 384, 256, 64, steps=50, quick_steps=20, profile_steps=50)


def autocast(device: torch.device):
    """What ``trainables.train.autocast`` does (bf16 on CUDA, nothing on a CPU)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def adamw(model: nn.Module, fused: bool = False) -> torch.optim.AdamW:
    groups = parameter_groups(model, WEIGHT_DECAY)
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, **extra)


class Ours:
    """``trainables.lm.fit``'s training step, state carried across rounds."""

    def __init__(self, model, tokens, size: Size, total_steps: int, device, fused=False) -> None:
        self.model, self.tokens, self.size, self.device = model, tokens, size, device
        self.optimizer = adamw(model, fused)
        # Trial.schedule registers this hook on the loop's optimizer: one float read a step.
        self.optimizer.register_step_pre_hook(self._record_step_lr)
        self.scheduler = make_schedule(
            "knee", self.optimizer, total_steps, LR, explore_fraction=0.5, warmup_fraction=0.05
        )
        self.generator = torch.Generator(device).manual_seed(0)
        self.loss_sum, self.losses = torch.zeros((), device=device), 0
        self.last_lr = 0.0

    def _record_step_lr(self, optimizer, *_) -> None:
        self.last_lr = float(optimizer.param_groups[0]["lr"])

    def steps(self, count: int) -> None:
        model, optimizer, size = self.model, self.optimizer, self.size
        model.train()
        for _ in range(count):
            inputs, targets = random_windows(self.tokens, size.context, size.batch, self.generator)
            with autocast(self.device):
                loss = lm_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            self.scheduler.step()
            self.loss_sum, self.losses = self.loss_sum + loss.detach(), self.losses + 1

    def phases(self, count: int) -> dict[str, list[float]]:
        """The same steps, each phase timed on its own (synchronised on CUDA), seconds a step."""
        model, optimizer, size, device = self.model, self.optimizer, self.size, self.device
        cuda = device.type == "cuda"
        times: dict[str, list[float]] = {
            k: [] for k in ("data", "forward", "backward", "clip", "AdamW step + schedule")
        }

        def mark() -> float:
            if cuda:
                torch.cuda.synchronize(device)
            return time.perf_counter()

        model.train()
        for _ in range(count):
            t0 = mark()
            inputs, targets = random_windows(self.tokens, size.context, size.batch, self.generator)
            t1 = mark()
            with autocast(device):
                loss = lm_loss(model(inputs), targets)
            t2 = mark()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = mark()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            t4 = mark()
            optimizer.step()
            self.scheduler.step()
            self.loss_sum, self.losses = self.loss_sum + loss.detach(), self.losses + 1
            t5 = mark()
            spans = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
            for key, seconds in zip(times, spans, strict=True):
                times[key].append(seconds)
        return times


class NanoGPTStyle:
    """karpathy/nanoGPT train.py's loop (no DDP, no gradient accumulation), on our GPT."""

    def __init__(self, model, train_bin: Path, size: Size, total_steps: int, device) -> None:
        self.model, self.train_bin, self.size, self.device = model, train_bin, size, device
        self.optimizer = adamw(model)
        self.total_steps, self.warmup = total_steps, max(1, total_steps // 20)
        self.iter_num, self.logged = 0, []
        self.batch = self.get_batch()

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        # nanoGPT re-creates the memmap every batch (to avoid a memory leak, it says).
        data = np.memmap(self.train_bin, dtype=np.uint16, mode="r")
        block = self.size.context
        ix = torch.randint(len(data) - block, (self.size.batch,))
        x = torch.stack([torch.from_numpy(data[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(data[i + 1 : i + 1 + block].astype(np.int64)) for i in ix]
        )
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
            y = y.pin_memory().to(self.device, non_blocking=True)
        return x, y

    def get_lr(self, it: int) -> float:
        """nanoGPT's warmup then cosine decay to min_lr = lr / 10."""
        if it < self.warmup:
            return LR * (it + 1) / (self.warmup + 1)
        ratio = min(1.0, (it - self.warmup) / max(1, self.total_steps - self.warmup))
        return LR / 10 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - LR / 10)

    def steps(self, count: int) -> None:
        model, optimizer = self.model, self.optimizer
        model.train()
        x, y = self.batch
        for _ in range(count):
            lr = self.get_lr(self.iter_num)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(self.device):
                logits = model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            x, y = self.get_batch()  # prefetch while the device works on the forward pass
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if self.iter_num % LOG_INTERVAL == 0:
                self.logged.append(loss.item())
            self.iter_num += 1
        self.batch = x, y

    def batch_seconds(self, count: int) -> list[float]:
        """Seconds of ``get_batch`` alone (synchronised on CUDA), for the breakdown."""
        out = []
        for _ in range(count):
            start = time.perf_counter()
            self.get_batch()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            out.append(time.perf_counter() - start)
        return out


def compare(args, device: torch.device, size: Size, corpus, train_bin: Path) -> float:
    steps = size.quick_steps if args.quick else size.steps
    # The warm-up, the rounds and the breakdown all fit in the schedule.
    total = steps * (args.rounds + 1) + size.profile_steps
    torch.manual_seed(0)
    initial = GPT(corpus.vocab_size, size.context, size.layers, size.heads, size.width)
    tokens = corpus.train.to(device)
    ours = Ours(copy.deepcopy(initial).to(device), tokens, size, total, device)
    ref = NanoGPTStyle(copy.deepcopy(initial).to(device), train_bin, size, total, device)
    contenders = [("nanoGPT-style", lambda: ref.steps(steps)), ("ours", lambda: ours.steps(steps))]
    fused = None
    if args.fused:
        fused = Ours(copy.deepcopy(initial).to(device), tokens, size, total, device, fused=True)
        contenders.append(("ours+fused AdamW", lambda: fused.steps(steps)))
    tokens_per_step = size.batch * size.context
    print(
        f"\n{size.name} on {device.type}: GPT(vocab {corpus.vocab_size}, context {size.context}, "
        f"layers {size.layers}, heads {size.heads}, width {size.width}), "
        f"{count_parameters(initial):,} parameters, batch {size.batch} "
        f"({tokens_per_step:,} tokens a step), {steps} steps a round, "
        f"{torch.get_num_threads()} torch threads"
    )
    for _, run in contenders:  # warm-up: kernel selection, allocator, first touch
        run()
    result = side_by_side(contenders, args.rounds, device)
    for name in result.names:
        print(f"  {name}: {steps * tokens_per_step / result.median(name):,.0f} tokens/s")
    low, high = result.spread("nanoGPT-style", "ours")
    ratio = result.ratio("nanoGPT-style", "ours")
    print(f"  ours / nanoGPT-style: {ratio:.3f}x (per round {low:.3f}x .. {high:.3f}x)")
    if fused is not None:
        print(f"  ours+fused AdamW / ours: {result.ratio('ours', 'ours+fused AdamW'):.3f}x")
    val = corpus.val.to(device)
    val_losses = [
        evaluate(c.model, eval_windows(val, size.context, size.batch, 64), device)[0]
        for c in (ours, ref)
    ]
    print(
        f"  val loss after {ref.iter_num} steps (64 fixed windows): ours {val_losses[0]:.3f}, "
        f"nanoGPT-style {val_losses[1]:.3f} (the same model learns in both; not a figure)"
    )
    if device.type == "cuda":
        peak = args.peak_tflops * 1e12 if args.peak_tflops else _peak(device)
        per_token = flops_per_token(initial, size.context)
        print(f"  {torch.cuda.get_device_name(device)}: {per_token / 1e6:.1f} MFLOP a token")
        for name in result.names:
            achieved = per_token * steps * tokens_per_step / result.median(name)
            mfu = (
                f"MFU {achieved / peak:.1%} of {peak / 1e12:.0f} TFLOP/s dense bf16"
                if peak
                else "unknown peak (--peak-tflops)"
            )
            print(f"  {name}: {achieved / 1e12:.1f} TFLOP/s achieved, {mfu}")

    count = size.profile_steps
    phases = {key: statistics.median(v) * 1e3 for key, v in ours.phases(count).items()}
    step_ms = sum(phases.values())
    print(f"  where ours' step goes (median of {count} steps, each phase timed on its own):")
    for key, ms in phases.items():
        print(f"    {key:<22} {ms:8.3f} ms  {ms / step_ms:6.1%}")
    ref_batch = statistics.median(ref.batch_seconds(count)) * 1e3
    print(f"    {'(nanoGPT get_batch':<22} {ref_batch:8.3f} ms  {ref_batch / step_ms:6.1%})")
    if device.type == "cpu":
        # The loops differ in their data path only (and on a CPU nothing overlaps), so the
        # parts predict the ratio without the rounds' noise.
        expected = (step_ms - phases["data"] + ref_batch) / step_ms
        print(f"  ratio expected from the data paths alone: {expected:.3f}x")
    return ratio


def _peak(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps a round, 5 rounds")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads on the CPU (a trial's: 1)"
    )
    parser.add_argument(
        "--fused", action="store_true", help="also time ours with AdamW(fused=True)"
    )
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for the MFU")
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA comparison")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5
    torch.set_num_threads(args.threads)
    print(machine())
    corpus = load_corpus("pydoc", level="byte")
    with tempfile.TemporaryDirectory() as folder:
        train_bin = Path(folder) / "train.bin"  # nanoGPT's prepare.py: uint16 token ids
        corpus.train.numpy().astype(np.uint16).tofile(train_bin)
        print(f"corpus: {corpus.source}, {len(corpus.train):,} train tokens (bytes)")
        if not args.skip_cpu:
            ratios = [
                compare(args, torch.device("cpu"), size, corpus, train_bin) for size in CPU_SIZES
            ]
            for size, ratio in zip(CPU_SIZES, ratios, strict=True):
                verdict(
                    f"LM tokens/s on cpu ({size.name}), ours vs nanoGPT-style", ratio, CPU_TARGET
                )
        if torch.cuda.is_available():
            ratio = compare(args, torch.device("cuda"), GPU_SIZE, corpus, train_bin)
            print(f"LM tokens/s on cuda ({GPU_SIZE.name}), ours vs nanoGPT-style: {ratio:.3g}x")
        else:
            skipped(f"LM tokens/s on cuda ({GPU_SIZE.name}), ours vs nanoGPT-style", "no GPU")


if __name__ == "__main__":
    main()
