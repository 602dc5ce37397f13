"""Datasets as device-resident tensors, with on-device batching and augmentation.

A dataset is whatever a loader returns: a built-in one (:data:`DATASETS`) or a user's
``"module:callable"``, called with the study's ``data.options``. It returns a dict with
``train`` and ``test`` (and optionally ``val``), each an ``(inputs, labels)`` pair:

* inputs: float tensors of any shape ``[N, ...]``, used as they are; or uint8 images
  ``[N, C, H, W]``, kept as uint8 and normalised per channel in each batch (the train split's
  mean and std), randomly cropped and flipped when the dict says ``"augment": True``;
* labels: integer class labels in ``[0, num_classes)``; ``num_classes`` may be given in the dict,
  else it is the largest label plus one.

A loader gets the study's ``data.root`` / ``data.download`` as ``root`` / ``download`` whenever
the study sets them (one that does not take them is refused then).
Without a ``val`` split, a fixed ``val_fraction`` of the train split is held out (stratified, the
same for every trial seed): model selection (ASHA, Optuna) reads it, so the test split is only
ever reported. The whole dataset then lives on the training device; an epoch is a permutation
drawn from the trial's generator and augmentation is a few tensor ops on the whole batch. No
DataLoader workers, no per-image Python.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.nn import functional as F

from trainables.plugins import WorkloadError, check_call, resolve

# Built-in datasets, registered as any user's loader is: name -> "module:callable".
DATASETS = {
    "digits": "trainables.data:digits",
    "cifar10": "trainables.data:cifar10",
    "cifar100": "trainables.data:cifar100",
    "synthetic": "trainables.data:synthetic",
}
DATASET_NAMES = tuple(DATASETS)
# The folder torchvision's CIFAR classes create under their root.
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

# (train files, test files, label key, classes) of the CIFAR python-pickle releases.
_CIFAR_FORMATS = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": (["train"], ["test"], "fine_labels", 100),
}
CROP_PADDING = 4  # pixels of zeros around each image before the random crop
SPLIT_SEED = 0  # fixes the digits split, the validation split and the synthetic data
SPLITS = ("train", "val", "test")
KEY = "data.dataset"  # the study key a loader's problems are reported under


@dataclass(frozen=True, eq=False)
class Split:
    """One split on the device: ``inputs`` (float ``[N, ...]`` or uint8 ``[N, C, H, W]``) and
    int64 ``labels`` ``[N]``."""

    inputs: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


# eq=False: tensors compare element-wise, so a generated __eq__ would raise, not answer.
@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset on the training device: ``train``, ``val`` and ``test`` splits.

    ``mean`` and ``std`` are per-channel float32 tensors of shape (C,) in raw pixel units,
    measured on the train split, for uint8 images; None for float inputs (used as they are).
    ``augment``: random crops and flips of the training batches (uint8 images only).
    """

    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: Tensor | None = None
    std: Tensor | None = None
    augment: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape, as a model is built for it: ``(C, H, W)`` for images."""
        return tuple(self.train.inputs.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.train)

    def digest(self) -> str:
        """sha256 (hex) of every split's inputs and labels, in order: two datasets that differ
        in any example (another CIFAR folder, other options) differ here."""
        found = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for tensor in (split.inputs, split.labels):
                found.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return found.hexdigest()

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)


def load_data(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    root: str | Path | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    device: str | torch.device = "cpu",
) -> Dataset:
    """Load dataset ``name`` (a built-in name or ``"module:callable"``) onto ``device``.

    Built-ins and their ``options``:

    - ``digits``: scikit-learn's 1797 8x8 digits (pixels 0..16), a fixed stratified split;
      ``test_fraction`` (default 0.3).
    - ``cifar10`` / ``cifar100``: the python-pickle release under ``root`` (the folder holding
      ``cifar-10-batches-py`` / ``cifar-100-python``); ``download=True`` fetches it there when
      missing.
    - ``synthetic``: learnable class patterns plus noise, the same for every trial;
      ``num_train``, ``num_test``, ``channels``, ``image_size``, ``num_classes``.

    Any problem (an unknown name, a module that does not import, an option the loader does not
    take, missing files, data of the wrong shape, dtype or labels) is a one-line
    :class:`~trainables.plugins.WorkloadError` naming ``data.dataset``.
    """
    loader = resolve(name, DATASETS, KEY)
    kwargs = dict(options or {})
    if root is not None:
        kwargs["root"] = str(root)
    if download:
        kwargs["download"] = True
    check_call(loader, KEY, **kwargs)
    try:
        found = loader(**kwargs)
    except WorkloadError:
        raise
    # A loader's refusal (missing files, bad options) repeats on every try: said in one line.
    # Other errors (a download's network error) are left to retry.
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, TypeError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise WorkloadError(f"{KEY}: {name}: {first}") from None
    return _checked(found, name, val_fraction, torch.device(device))


def _checked(found: Any, name: str, val_fraction: float, device: torch.device) -> Dataset:
    """The loader's dict as a :class:`Dataset` on ``device``, every promise checked."""
    if not isinstance(found, Mapping) or not {"train", "test"} <= found.keys():
        kind = type(found).__name__
        keys = f" with keys {', '.join(map(str, found))}" if isinstance(found, Mapping) else ""
        raise WorkloadError(
            f"{KEY}: {name} returned a {kind}{keys}; expected a dict with 'train' and 'test' "
            "(and optionally 'val'), each an (inputs, labels) pair of tensors"
        )
    splits = {s: _split(found[s], name, s) for s in SPLITS if found.get(s) is not None}
    shape = splits["train"].inputs.shape[1:]
    for split_name, split in splits.items():
        if split.inputs.shape[1:] != shape or split.inputs.dtype != splits["train"].inputs.dtype:
            raise WorkloadError(
                f"{KEY}: {name}: {split_name} inputs are {split.inputs.dtype} "
                f"{tuple(split.inputs.shape[1:])} an example, train's "
                f"{splits['train'].inputs.dtype} {tuple(shape)}"
            )
    top = max(int(s.labels.max()) for s in splits.values() if len(s))
    num_classes = int(found.get("num_classes") or top + 1)
    if num_classes < 2:
        raise WorkloadError(f"{KEY}: {name}: needs at least 2 classes, found {num_classes}")
    low = min(int(s.labels.min()) for s in splits.values() if len(s))
    if low < 0 or top >= num_classes:
        raise WorkloadError(
            f"{KEY}: {name}: labels must lie in [0, {num_classes}), found {low}..{top}"
        )
    if "val" not in splits:
        splits["train"], splits["val"] = _hold_out(splits["train"], val_fraction)
    splits = {s: Split(x.inputs.to(device), x.labels.to(device)) for s, x in splits.items()}
    images = splits["train"].inputs.dtype == torch.uint8
    mean, std = _channel_stats(splits["train"].inputs) if images else (None, None)
    return Dataset(
        **splits,
        num_classes=num_classes,
        mean=mean,
        std=std,
        augment=images and bool(found.get("augment", False)),
    )


def _split(pair: Any, name: str, split: str) -> Split:
    where = f"{KEY}: {name}: {split}"
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise WorkloadError(f"{where} is a {type(pair).__name__}; expected (inputs, labels)")
    inputs, labels = (torch.as_tensor(part) for part in pair)
    if inputs.dtype == torch.uint8:
        if inputs.dim() != 4:
            raise WorkloadError(
                f"{where} inputs are uint8 of shape {tuple(inputs.shape)}: uint8 inputs are "
                "images [N, C, H, W] (give float inputs for anything else)"
            )
    elif not inputs.is_floating_point():
        raise WorkloadError(f"{where} inputs are {inputs.dtype}; expected float (or uint8 images)")
    else:
        inputs = inputs.float()
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise WorkloadError(f"{where} labels are {labels.dtype}; expected integer class labels")
    if labels.dim() != 1 or inputs.dim() < 2 or len(labels) != len(inputs):
        raise WorkloadError(
            f"{where}: inputs {tuple(inputs.shape)} and labels {tuple(labels.shape)}; expected "
            "inputs [N, ...] and labels [N]"
        )
    if len(labels) == 0:
        raise WorkloadError(f"{where} is empty")
    return Split(inputs, labels.long())


def _hold_out(train: Split, fraction: float) -> tuple[Split, Split]:
    """A fixed ``fraction`` of ``train`` as the validation split, stratified by label where
    the split can be (every class on both sides), else drawn plainly: the same whatever the
    trial seed."""
    labels = train.labels.cpu().numpy()
    indices = np.arange(len(labels))
    try:
        keep, held = train_test_split(
            indices, test_size=fraction, stratify=labels, random_state=SPLIT_SEED
        )
    except ValueError:  # a class too small, or fewer held-out examples than classes
        try:
            keep, held = train_test_split(indices, test_size=fraction, random_state=SPLIT_SEED)
        except ValueError as error:  # too few examples for a split of that size
            raise WorkloadError(f"data.val_fraction: {error}") from None
    return _subset(train, keep), _subset(train, held)


def _subset(split: Split, indices: np.ndarray) -> Split:
    index = torch.from_numpy(np.sort(indices))
    return Split(split.inputs[index], split.labels[index])


def train_batches(
    data: Dataset, batch_size: int, generator: torch.Generator, augment: bool | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of float training batches, in an order drawn from ``generator``.

    ``generator`` lives on the data's device and alone decides order, crops and flips, so a
    trial's seed reproduces its epochs without touching global RNG state. The last batch may be
    smaller. ``augment=None`` uses ``data.augment``.
    """
    augment = data.augment if augment is None else augment
    train = data.train
    order = torch.randperm(len(train), generator=generator, device=train.labels.device)
    for indices in order.split(batch_size):
        # index_select copies whole images; `images[indices]` copies pixel by pixel (25x slower).
        inputs = train.inputs.index_select(0, indices)
        if augment:
            inputs = _crop_and_flip(inputs, generator)
        yield normalise(inputs, data), train.labels.index_select(0, indices)


def eval_batches(
    data: Dataset, split: str = "test", batch_size: int = 1024
) -> Iterator[tuple[Tensor, Tensor]]:
    """Float batches of the ``"train"``, ``"val"`` or ``"test"`` split, in order, unaugmented."""
    part = data.split(split)
    for start in range(0, len(part), batch_size):
        batch = slice(start, start + batch_size)
        yield normalise(part.inputs[batch], data), part.labels[batch]


def normalise(inputs: Tensor, data: Dataset) -> Tensor:
    """uint8 images to float32, each channel shifted and scaled by the train mean and std;
    float inputs as they are."""
    if data.mean is None:
        return inputs
    # In place on the one fresh float copy: each extra full-batch temporary costs more than the
    # arithmetic (measured 7.4 ms vs 0.4 ms for 512 CIFAR images on a CPU).
    return inputs.float().sub_(data.mean.view(-1, 1, 1)).div_(data.std.view(-1, 1, 1))


def _crop_and_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """A random crop of each zero-padded image, mirrored half of the time.

    The padded batch and its mirror image are stacked; in that buffer every crop is the same
    (C, H, W) strided window at its own start offset, so one ``as_strided`` view indexed along
    its first dimension picks them all, ``index_select`` copying whole rows. Measured on one CPU
    thread, 512 CIFAR images: 0.65 ms, vs 1.7 ms indexing an ``unfold`` view and 3 ms for two
    ``gather``s (rows, then columns).
    """
    n, channels, height, width = images.shape
    pad = CROP_PADDING
    device = images.device
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=device)
    padded = F.pad(images, (pad, pad, pad, pad))
    both = torch.stack([padded, padded.flip(-1)], dim=1).flatten()  # (n, 2, C, H', W') flat
    padded_height, padded_width = height + 2 * pad, width + 2 * pad
    plane = padded_height * padded_width
    # The crop at `left` of the mirror image is the mirror of the crop at 2 pad - left.
    left = torch.where(flip.bool(), 2 * pad - left, left)
    start = (torch.arange(n, device=device) * 2 + flip) * (channels * plane)
    start += top * padded_width + left
    span = (channels - 1) * plane + (height - 1) * padded_width + width  # one window's extent
    windows = both.as_strided(
        (both.numel() - span + 1, channels, height, width), (1, plane, padded_width, 1)
    )
    return windows.index_select(0, start)


def _channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (float32, pixel units) of uint8 images.

    From a histogram of the 256 pixel values: exact in float64, without a float copy of the
    whole dataset (1.2 GB for CIFAR's train split).
    """
    values = torch.arange(256, dtype=torch.float64, device=images.device)
    counts = torch.stack(
        [torch.bincount(images[:, c].flatten(), minlength=256) for c in range(images.shape[1])]
    ).double()
    total = counts.sum(dim=1)
    mean = counts @ values / total
    variance = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / total
    # A constant channel normalises to zeros instead of NaN.
    std = variance.sqrt().clamp_min(1e-6)
    return mean.float(), std.float()


def digits(test_fraction: float = 0.3) -> dict[str, Any]:
    """scikit-learn's 1797 8x8 digit images (pixels 0..16), split train/test stratified and the
    same for every trial."""
    found = load_digits()
    images = found.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), pixels 0..16
    train_x, test_x, train_y, test_y = train_test_split(
        images,
        found.target,
        test_size=test_fraction,
        stratify=found.target,
        random_state=SPLIT_SEED,
    )
    return {"train": (train_x, train_y), "test": (test_x, test_y), "num_classes": 10}


def cifar10(root: str | None = None, download: bool = False) -> dict[str, Any]:
    """CIFAR-10's python-pickle release under ``root``, augmented (random crops and flips)."""
    return _cifar("cifar10", root, download)


def cifar100(root: str | None = None, download: bool = False) -> dict[str, Any]:
    """CIFAR-100 (fine labels), as :func:`cifar10`."""
    return _cifar("cifar100", root, download)


def _cifar(name: str, root: str | None, download: bool) -> dict[str, Any]:
    train_files, test_files, label_key, num_classes = _CIFAR_FORMATS[name]
    if root is None:
        raise FileNotFoundError(
            f"{name} needs a data root: the folder holding {CIFAR_FOLDERS[name]}/ "
            "(with `download: true` it is fetched there)"
        )
    folder = Path(root).expanduser() / CIFAR_FOLDERS[name]
    missing = [file for file in train_files + test_files if not (folder / file).is_file()]
    if missing and download:
        # torchvision only for the download (it also md5-checks and unpacks the archive).
        from torchvision.datasets import CIFAR10, CIFAR100

        (CIFAR10 if name == "cifar10" else CIFAR100)(root, download=True)
    elif missing:
        raise FileNotFoundError(
            f"no {name} data at {folder}: expected the python-version files "
            f"{', '.join(train_files + test_files)} (`download: true` fetches them)"
        )
    return {
        "train": _read_cifar_batches(folder, train_files, label_key),
        "test": _read_cifar_batches(folder, test_files, label_key),
        "num_classes": num_classes,
        "augment": True,
    }


def _read_cifar_batches(
    folder: Path, files: list[str], label_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels from pickled dicts of rows of 3072 pixels."""
    images, labels = [], []
    for file in files:
        with open(folder / file, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        # The release's own recipe loads with encoding="bytes"; data re-pickled so has bytes keys.
        batch = {key.decode() if isinstance(key, bytes) else key: v for key, v in batch.items()}
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def synthetic(
    num_train: int = 2048,
    num_test: int = 512,
    channels: int = 3,
    image_size: int = 32,
    num_classes: int = 10,
    num_val: int = 0,
) -> dict[str, Any]:
    """One random template per class plus uniform noise: learnable in a few epochs. ``num_val``
    > 0 draws a validation split of its own (0: held out of the train split, as for any
    loader); ``num_train`` is then the train split's exact size."""
    rng = np.random.default_rng(SPLIT_SEED)
    shape = (channels, image_size, image_size)
    templates = rng.integers(64, 192, (num_classes, *shape), dtype=np.int16)
    labels = rng.integers(0, num_classes, num_train + num_test + num_val)
    # int16 keeps template + noise exact before clipping, at a quarter of float64's memory.
    images = templates[labels] + rng.integers(-96, 97, (len(labels), *shape), dtype=np.int16)
    images = images.clip(0, 255).astype(np.uint8)
    train, test = slice(num_train), slice(num_train, num_train + num_test)
    found = {
        "train": (images[train], labels[train]),
        "test": (images[test], labels[test]),
        "num_classes": num_classes,
    }
    if num_val:
        val = slice(num_train + num_test, None)
        found["val"] = (images[val], labels[val])
    return found
