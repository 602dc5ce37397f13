"""Target 2: a training epoch, our loop vs a seed-style loop, same model, data and schedule.

- ours: ``trainables.train``'s epoch (the one ``train()`` runs): device-resident batches from
  ``train_batches`` (crop + flip), sums kept on the device; on CUDA channels_last + bf16 autocast.
- seed-style: the usual CIFAR loop (kuangliu/pytorch-cifar, the paper's seed): the torchvision
  ``DataLoader(num_workers=2)`` pipeline of ``data_path.py``, fp32, ``.to(device)`` per batch,
  ``loss.item()`` and the correct count read back every step.

Both train the same freshly seeded model with SGD (momentum 0.9, weight decay 5e-4) under the
Knee schedule on the same CIFAR-shaped uint8 images; rounds are interleaved and the figure is the
median ratio of epoch times.

- CPU (always): the ``cnn`` model, torch on ``--threads`` threads (default 1, as a trial with
  ``cpus_per_trial: 1`` runs; the DataLoader's two workers come on top), target >= 1.5x;
  ``--cpu-bf16`` also times ours under bf16 autocast (trials train fp32 on CPUs).
- GPU (when CUDA is available): ResNet-18 on 50,000 images, target >= 3x, with images/s and model
  FLOP utilisation (FLOPs of one training step counted by ``torch.utils.flop_counter``, over the
  device's dense bf16 peak); ``--compile`` also times ``torch.compile`` of our model.

    .venv/bin/python benchmarks/train_epoch.py [--quick] [--images N] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from data_path import CifarLikeDataset, torchvision_pipeline
from measure import machine, side_by_side, skipped, verdict
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from trainables.data import load_data, train_batches
from trainables.models import build_model
from trainables.schedules import make_schedule
from trainables.train import _train_epoch

CPU_TARGET, GPU_TARGET = 1.5, 3.0
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets; --peak-tflops overrides.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def seed_style_epoch(model, optimizer, scheduler, loader, device) -> tuple[float, float]:
    """The seed's loop: host batches moved per step, fp32, scalars read back every step."""
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = nn.functional.cross_entropy(outputs, targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(targets)
        correct += outputs.argmax(1).eq(targets).sum().item()
        count += len(targets)
    return loss_sum / count, correct / count


def compare(args, device: torch.device, model_name: str, target: float) -> None:
    options = {"num_train": args.images, "num_test": 16, "num_val": 16, "num_classes": 10}
    data = load_data("synthetic", options, device=device)
    host = load_data("synthetic", options)
    dataset = CifarLikeDataset(
        host.train.inputs.permute(0, 2, 3, 1).numpy(),
        host.train.labels.numpy(),
        torchvision_pipeline(host),
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=2)
    steps = math.ceil(args.images / args.batch_size)
    torch.manual_seed(0)
    initial = build_model(model_name, data.input_shape, data.num_classes)
    fast_format = torch.channels_last  # what trainables.train uses for its models

    def setup(memory_format):
        model = copy.deepcopy(initial).to(device, memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        # One epoch per round: a schedule long enough for every round.
        scheduler = make_schedule(
            "knee", optimizer, steps * (args.rounds + 2), peak_lr=args.lr, explore_fraction=0.5
        )
        return model, optimizer, scheduler

    ours_state = setup(fast_format)
    seed_state = setup(torch.contiguous_format)
    generator = torch.Generator(device).manual_seed(0)

    def ours() -> None:
        _train_epoch(*ours_state, train_batches(data, args.batch_size, generator, True), device)

    def seed() -> None:
        seed_style_epoch(*seed_state, loader, device)

    contenders = [("seed-style", seed), ("ours", ours)]
    if device.type == "cpu" and args.cpu_bf16:
        bf16_state = setup(fast_format)

        def ours_bf16() -> None:
            # Not what a trial does on a CPU (fp32 there): what bf16 autocast would buy.
            with torch.autocast("cpu", dtype=torch.bfloat16):
                batches = train_batches(data, args.batch_size, generator, True)
                _train_epoch(*bf16_state, batches, device)

        contenders.append(("ours+bf16", ours_bf16))
    if args.compile:
        compiled_state = setup(fast_format)
        compiled_state = (torch.compile(compiled_state[0]), *compiled_state[1:])

        def ours_compiled() -> None:
            batches = train_batches(data, args.batch_size, generator, True)
            _train_epoch(*compiled_state, batches, device)

        ours_compiled()  # compile outside the timed rounds (its cost: once per trial process)
        contenders.append(("ours+compile", ours_compiled))

    print(
        f"{model_name} on {device.type}, {args.images} CIFAR-shaped images, batch "
        f"{args.batch_size}, {steps} steps an epoch, {torch.get_num_threads()} torch threads"
    )
    ours()  # warm-up: kernel selection, allocator, first-touch
    result = side_by_side(contenders, args.rounds, device)
    for name in result.names:
        print(f"  {name}: {args.images / result.median(name):,.0f} images/s")
    if device.type == "cuda":
        flops = _step_flops(copy.deepcopy(initial), data, args.batch_size, device)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else _peak(device)
        for name in result.names:
            achieved = flops * steps / result.median(name)
            mfu = f"{achieved / peak:.1%} of {peak / 1e12:.0f} TFLOP/s" if peak else "peak unknown"
            print(f"  {name}: {achieved / 1e12:.1f} TFLOP/s achieved, MFU {mfu}")
    verdict(
        f"training epoch on {device.type} ({model_name}), ours vs seed-style",
        result.ratio("seed-style", "ours"),
        target,
    )


def _step_flops(model: nn.Module, data, batch_size: int, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward) at ``batch_size``, counted by torch."""
    inputs = torch.zeros(batch_size, *data.input_shape, device=device)
    targets = torch.zeros(batch_size, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(inputs), targets).backward()
    return counter.get_total_flops()


def _peak(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, 2 rounds")
    parser.add_argument("--images", type=int, help="CPU default 10,000; GPU 50,000")
    parser.add_argument("--batch-size", type=int, default=128, help="the seed's CIFAR batch")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (GPU)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak, for the MFU")
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU comparison")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads on the CPU (a trial's: 1)"
    )
    parser.add_argument(
        "--cpu-bf16", action="store_true", help="also time ours under CPU bf16 autocast"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2
    torch.set_num_threads(args.threads)
    print(machine())
    images = args.images
    if not args.skip_cpu:
        args.images = images or (2_560 if args.quick else 10_000)
        cpu_compile, args.compile = args.compile, False  # compile is timed on the GPU only
        compare(args, torch.device("cpu"), "cnn", CPU_TARGET)
        args.compile = cpu_compile
    if torch.cuda.is_available():
        args.images = images or (10_240 if args.quick else 50_000)
        compare(args, torch.device("cuda"), "resnet18", GPU_TARGET)
    else:
        skipped("training epoch on cuda (resnet18), ours vs seed-style", "no GPU")


if __name__ == "__main__":
    main()
