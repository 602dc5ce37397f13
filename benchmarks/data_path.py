"""Target 1: training batches per second, our device-resident pipeline vs torchvision's usual one.

Both read the same 50,000 CIFAR-shaped uint8 images and produce normalised float batches with a
random 32x32 crop of the 4-pixel zero-padded image and a random horizontal flip:

- ours: ``trainables.data.train_batches`` (shuffle, crop + flip, normalise as tensor ops);
- torchvision: a CIFAR10-style Dataset (HWC uint8 -> PIL image per item) with
  ``RandomCrop(32, 4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, fed by
  ``DataLoader(num_workers=2, shuffle=True)`` (default, non-persistent workers).

Each round times one epoch (or ``--batches`` batches) of each, interleaved; the figure is the
median ratio of batches per second. Target: >= 10x on a CPU.

    .venv/bin/python benchmarks/data_path.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from measure import machine, side_by_side, verdict
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainables.data import load_data, train_batches

TARGET = 10.0
NUM_IMAGES = 50_000


class CifarLikeDataset(Dataset):
    """What ``torchvision.datasets.CIFAR10`` does per item: a PIL image, then the transform."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def torchvision_pipeline(data) -> transforms.Compose:
    """The usual CIFAR training transform, normalising with ``data``'s own channel statistics."""
    return transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((data.mean / 255).tolist(), (data.std / 255).tolist()),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 batches a round, 3 rounds")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--batches", type=int, help="batches per round (default: one epoch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, help="torch threads for ours (default: torch's, one per core)"
    )
    args = parser.parse_args()
    if args.quick:
        args.batches = args.batches or 20
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batches or -(-NUM_IMAGES // args.batch_size)

    data = load_data("synthetic", {"num_train": NUM_IMAGES, "num_test": 16, "num_val": 16})
    dataset = CifarLikeDataset(
        data.train.inputs.permute(0, 2, 3, 1).numpy(),
        data.train.labels.numpy(),
        torchvision_pipeline(data),
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=2)
    generator = torch.Generator().manual_seed(0)

    def ours() -> None:
        epoch = train_batches(data, args.batch_size, generator, augment=True)
        for _ in itertools.islice(epoch, batches):
            pass

    def torchvision() -> None:
        for _ in itertools.islice(loader, batches):
            pass

    print(machine())
    print(
        f"{NUM_IMAGES} images 3x32x32 uint8, batch {args.batch_size}, {batches} batches a round, "
        f"ours with {torch.get_num_threads()} torch thread(s)"
    )
    ours()  # warm-up: first-touch allocations
    result = side_by_side([("torchvision", torchvision), ("ours", ours)], args.rounds)
    for name in result.names:
        rate = batches / result.median(name)
        print(f"  {name}: {rate:.1f} batches/s, {rate * args.batch_size:,.0f} images/s")
    low, high = result.spread("torchvision", "ours")
    print(f"  ratio per round: {low:.1f}x .. {high:.1f}x")
    verdict("data path, ours vs torchvision", result.ratio("torchvision", "ours"), TARGET)


if __name__ == "__main__":
    main()
