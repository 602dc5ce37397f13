"""Datasets on the device: the digits split, the CIFAR pickle format, batching and augmentation."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.nn import functional as F

from trainables.data import (
    CIFAR_FOLDERS,
    DATASET_NAMES,
    ImageData,
    eval_batches,
    load_data,
    train_batches,
)

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = images.astype(np.float64)
    return pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))


def _image_data(images: np.ndarray, augment: bool) -> ImageData:
    """A training set whose label is the example's index, so a batch says which images it holds."""
    mean, std = _stats(images)
    labels = torch.arange(len(images))
    return ImageData(
        train_images=torch.from_numpy(images),
        train_labels=labels,
        test_images=torch.from_numpy(images),
        test_labels=labels,
        num_classes=len(images),
        mean=torch.tensor(mean, dtype=torch.float32),
        std=torch.tensor(std, dtype=torch.float32),
        augment=augment,
    )


def _random_images(n: int, channels: int = 3, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def _raw_pixels(batch: torch.Tensor, data: ImageData) -> torch.Tensor:
    """Undo the normalisation, back to integer pixel values."""
    mean, std = data.mean.view(-1, 1, 1), data.std.view(-1, 1, 1)
    return (batch * std + mean).round().to(torch.uint8)


# --- digits ---------------------------------------------------------------------------------


def test_digits_is_all_1797_images_split_70_30():
    data = load_data("digits")
    assert data.train_images.shape == (1257, 1, 8, 8)
    assert data.test_images.shape == (540, 1, 8, 8)
    assert data.train_images.dtype == data.test_images.dtype == torch.uint8
    assert data.train_labels.dtype == data.test_labels.dtype == torch.int64
    assert (data.num_classes, data.in_channels, data.image_size, data.num_train) == (10, 1, 8, 1257)
    assert not data.augment
    everything = torch.cat([data.train_images, data.test_images]).numpy().reshape(1797, 64)
    assert everything.max() == 16
    original = load_digits().images.reshape(1797, 64)
    assert sorted(map(tuple, everything)) == sorted(map(tuple, original.astype(np.uint8)))


def test_digits_split_is_stratified_and_the_same_every_time():
    data, again = load_data("digits"), load_data("digits")
    assert torch.equal(data.test_images, again.test_images)
    assert torch.equal(data.train_labels, again.train_labels)
    per_class = np.bincount(load_digits().target)
    test_counts = np.bincount(data.test_labels.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * per_class) <= 1)


def test_digits_test_fraction_option():
    data = load_data("digits", test_fraction=0.5)
    assert len(data.test_labels) in (898, 899)
    assert data.num_train + len(data.test_labels) == 1797


def test_mean_and_std_come_from_the_train_split():
    data = load_data("digits")
    mean, std = _stats(data.train_images.numpy())
    assert data.mean.numpy() == pytest.approx(mean, rel=1e-6)
    assert data.std.numpy() == pytest.approx(std, rel=1e-6)


# --- CIFAR from the python-pickle format ----------------------------------------------------


def _cifar_pixel(i, c, y, x):
    return (7 * i + 60 * c + 3 * y + x) % 256


def _cifar_rows(first: int, count: int) -> np.ndarray:
    """Rows of 3072 bytes as the release stores them: channel-major, then row-major pixels."""
    k = np.arange(3072)
    c, y, x = k // 1024, k % 1024 // 32, k % 32
    return np.stack([_cifar_pixel(i, c, y, x) for i in range(first, first + count)]).astype(
        np.uint8
    )


def _expected_images(first: int, count: int) -> np.ndarray:
    i, c, y, x = np.meshgrid(
        np.arange(first, first + count), *map(np.arange, (3, 32, 32)), indexing="ij"
    )
    return _cifar_pixel(i, c, y, x).astype(np.uint8)


def _write_batch(path, batch: dict, bytes_keys: bool = False) -> None:
    if bytes_keys:  # as written by code that followed the release's `encoding="bytes"` example
        batch = {key.encode(): value for key, value in batch.items()}
    with open(path, "wb") as f:
        pickle.dump(batch, f)


@pytest.fixture(params=[False, True], ids=["str-keys", "bytes-keys"])
def cifar10_root(tmp_path, request):
    folder = tmp_path / CIFAR_FOLDERS["cifar10"]
    folder.mkdir()
    for b in range(5):  # 3 images per batch: train images 0..14, test images 15..18
        labels = [(3 * b + j) % 10 for j in range(3)]
        batch = {"batch_label": f"batch {b + 1}", "data": _cifar_rows(3 * b, 3), "labels": labels}
        _write_batch(folder / f"data_batch_{b + 1}", batch, request.param)
    test = {"batch_label": "test", "data": _cifar_rows(15, 4), "labels": [9, 8, 7, 6]}
    _write_batch(folder / "test_batch", test, request.param)
    meta = {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072}
    _write_batch(folder / "batches.meta", meta, request.param)
    return tmp_path


def test_cifar10_pixels_and_labels_are_read_as_written(cifar10_root):
    data = load_data("cifar10", root=cifar10_root)
    assert np.array_equal(data.train_images.numpy(), _expected_images(0, 15))
    assert np.array_equal(data.test_images.numpy(), _expected_images(15, 4))
    assert data.train_labels.tolist() == [i % 10 for i in range(15)]
    assert data.test_labels.tolist() == [9, 8, 7, 6]
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 3, 32)
    assert data.augment
    mean, std = _stats(_expected_images(0, 15))
    assert data.mean.numpy() == pytest.approx(mean, rel=1e-6)
    assert data.std.numpy() == pytest.approx(std, rel=1e-6)


def test_cifar100_reads_train_and_test_with_fine_labels(tmp_path):
    folder = tmp_path / CIFAR_FOLDERS["cifar100"]
    folder.mkdir()
    for name, first, count, labels in [("train", 0, 5, [0, 42, 99, 7, 7]), ("test", 5, 2, [3, 98])]:
        rows = _cifar_rows(first, count)
        coarse = [k // 5 for k in labels]
        _write_batch(folder / name, {"data": rows, "fine_labels": labels, "coarse_labels": coarse})
    _write_batch(folder / "meta", {"fine_label_names": [f"class{k}" for k in range(100)]})
    data = load_data("cifar100", root=tmp_path)
    assert np.array_equal(data.train_images.numpy(), _expected_images(0, 5))
    assert np.array_equal(data.test_images.numpy(), _expected_images(5, 2))
    assert data.train_labels.tolist() == [0, 42, 99, 7, 7]
    assert data.test_labels.tolist() == [3, 98]
    assert data.num_classes == 100


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_files_name_the_path(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="download: true") as missing_root:
        load_data(name, root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / CIFAR_FOLDERS[name]) in str(missing_root.value)
    (tmp_path / CIFAR_FOLDERS[name]).mkdir()
    with pytest.raises(FileNotFoundError) as empty_folder:
        load_data(name, root=tmp_path)
    assert str(tmp_path / CIFAR_FOLDERS[name]) in str(empty_folder.value)
    assert "\n" not in str(empty_folder.value)
    with pytest.raises(FileNotFoundError, match=CIFAR_FOLDERS[name]):
        load_data(name)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=", ".join(DATASET_NAMES)):
        load_data("mnist")


def test_synthetic_is_fixed_and_learnable():
    data = load_data("synthetic", num_train=200, num_test=100, channels=2, image_size=6)
    assert data.train_images.shape == (200, 2, 6, 6)
    assert data.test_images.shape == (100, 2, 6, 6)
    assert torch.equal(
        data.train_images,
        load_data("synthetic", num_train=200, num_test=100, channels=2, image_size=6).train_images,
    )
    # Nearest class mean of the training images labels most test images: there is a signal.
    images = data.train_images.flatten(1).double()
    centroids = torch.stack([images[data.train_labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(data.test_images.flatten(1).double(), centroids).argmin(1)
    assert (predicted == data.test_labels).double().mean() > 0.8


# --- batches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("augment", [False, True])
def test_an_epoch_visits_every_training_example_once(augment):
    data = _image_data(_random_images(50), augment=augment)
    batches = list(train_batches(data, 16, torch.Generator().manual_seed(0)))
    assert [len(labels) for _, labels in batches] == [16, 16, 16, 2]
    order = torch.cat([labels for _, labels in batches])
    assert sorted(order.tolist()) == list(range(50))
    assert order.tolist() != list(range(50))
    if not augment:
        images = torch.cat([_raw_pixels(images, data) for images, _ in batches])
        assert torch.equal(images, data.train_images[order])


def test_the_generator_alone_decides_order_and_augmentation():
    data = _image_data(_random_images(50), augment=True)

    def epoch(seed):
        return list(train_batches(data, 16, torch.Generator().manual_seed(seed)))

    first, again, other = epoch(0), epoch(0), epoch(1)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x, x2)
        assert torch.equal(y, y2)
    assert not torch.equal(first[0][1], other[0][1])


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image`` moved by (dy, dx) pixels, zeros where it moved away from."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (4, 4, 4, 4))
    return padded[:, 4 - dy : 4 - dy + height, 4 - dx : 4 - dx + width]


def test_augmentation_is_a_zero_filled_shift_of_up_to_4_pixels_maybe_mirrored():
    data = _image_data(_random_images(64), augment=True)
    ((images, labels),) = train_batches(data, 64, torch.Generator().manual_seed(3))
    seen = set()
    for image, label in zip(_raw_pixels(images, data), labels, strict=True):
        original = data.train_images[label]
        matches = [
            (dy, dx, flip)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            for flip in (False, True)
            if torch.equal(image, _shifted(original.flip(-1) if flip else original, dy, dx))
        ]
        assert len(matches) == 1, f"image {label} is no shift/flip of its original"
        seen |= set(matches)
    assert {flip for _, _, flip in seen} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in seen}) >= 20
    assert {dy < 0 for dy, _, _ in seen} == {dx < 0 for _, dx, _ in seen} == {False, True}


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_normalised_training_set_has_zero_mean_and_unit_std(name):
    data = load_data(name)
    inputs = torch.cat([x for x, _ in train_batches(data, 100, torch.Generator(), augment=False)])
    assert inputs.dtype == torch.float32
    assert inputs.mean(dim=(0, 2, 3)).tolist() == pytest.approx([0.0] * data.in_channels, abs=1e-5)
    assert inputs.std(dim=(0, 2, 3), correction=0).tolist() == pytest.approx(
        [1.0] * data.in_channels, abs=1e-5
    )


def test_eval_batches_are_in_order_and_unaugmented():
    data = _image_data(_random_images(30), augment=True)
    for split in ("train", "test"):
        batches = list(eval_batches(data, split, batch_size=8))
        assert [len(y) for _, y in batches] == [8, 8, 8, 6]
        assert torch.cat([y for _, y in batches]).tolist() == list(range(30))
        assert torch.equal(torch.cat([_raw_pixels(x, data) for x, _ in batches]), data.train_images)
    with pytest.raises(ValueError, match="split"):
        next(eval_batches(data, "validation"))


@pytest.mark.parametrize("device", DEVICES)
def test_everything_stays_on_the_requested_device(device):
    data = load_data("synthetic", device=device, num_train=64, num_test=16)
    tensors = [data.train_images, data.train_labels, data.test_images, data.test_labels, data.mean]
    generator = torch.Generator(device).manual_seed(0)
    for augment in (False, True):
        tensors += [t for batch in train_batches(data, 32, generator, augment) for t in batch]
    tensors += [t for batch in eval_batches(data, "test") for t in batch]
    assert {t.device.type for t in tensors} == {torch.device(device).type}
