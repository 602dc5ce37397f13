"""Datasets on the device: the digits split, the CIFAR pickle format, a user's loader and every
promise its dict is checked for, the fixed validation hold-out, batching and augmentation."""

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from torch.nn import functional as F

from trainables.config import Data, TrainConfig
from trainables.data import (
    CIFAR_FOLDERS,
    DATASET_NAMES,
    Dataset,
    Split,
    eval_batches,
    load_data,
    train_batches,
)
from trainables.plugins import WorkloadError
from trainables.train import load_dataset

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
SMALL_SYNTHETIC = {"num_train": 200, "num_test": 100, "channels": 2, "image_size": 6}


def _stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = images.astype(np.float64)
    return pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))


def _image_data(images: np.ndarray, augment: bool) -> Dataset:
    """Every split is all of ``images``, labelled by the example's index, so a batch says which
    images it holds."""
    mean, std = _stats(images)
    split = Split(torch.from_numpy(images), torch.arange(len(images)))
    return Dataset(
        train=split,
        val=split,
        test=split,
        num_classes=len(images),
        mean=torch.tensor(mean, dtype=torch.float32),
        std=torch.tensor(std, dtype=torch.float32),
        augment=augment,
    )


def _random_images(n: int, channels: int = 3, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def _raw_pixels(batch: torch.Tensor, data: Dataset) -> torch.Tensor:
    """Undo the normalisation, back to integer pixel values."""
    mean, std = data.mean.view(-1, 1, 1), data.std.view(-1, 1, 1)
    return (batch * std + mean).round().to(torch.uint8)


def _rows(inputs: torch.Tensor) -> list[tuple]:
    return sorted(map(tuple, inputs.flatten(1).tolist()))


# --- digits ---------------------------------------------------------------------------------


def test_digits_is_all_1797_images_split_70_30_then_a_tenth_of_train_held_out():
    data = load_data("digits")
    # 30% of 1797 rounded up is the test split (540); a tenth of the 1257 left, rounded up (126),
    # is the validation split.
    assert data.train.inputs.shape == (1131, 1, 8, 8)
    assert data.val.inputs.shape == (126, 1, 8, 8)
    assert data.test.inputs.shape == (540, 1, 8, 8)
    for split in (data.train, data.val, data.test):
        assert split.inputs.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
    assert (data.num_classes, data.input_shape, data.num_train) == (10, (1, 8, 8), 1131)
    assert not data.augment
    everything = torch.cat([data.train.inputs, data.val.inputs, data.test.inputs])
    assert everything.max() == 16
    original = load_digits().images.astype(np.uint8)
    assert _rows(everything) == _rows(torch.from_numpy(original))
    labels = torch.cat([data.train.labels, data.val.labels, data.test.labels])
    assert np.array_equal(np.bincount(labels.numpy()), np.bincount(load_digits().target))


def test_digits_splits_are_stratified_and_the_same_every_time():
    data, again = load_data("digits"), load_data("digits")
    for name in ("train", "val", "test"):
        assert torch.equal(data.split(name).inputs, again.split(name).inputs)
        assert torch.equal(data.split(name).labels, again.split(name).labels)
    per_class = np.bincount(load_digits().target)
    test_counts = np.bincount(data.test.labels.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.3 * per_class) <= 1)
    val_counts = np.bincount(data.val.labels.numpy(), minlength=10)
    assert np.all(np.abs(val_counts - 0.1 * 0.7 * per_class) <= 2)


def test_digits_test_fraction_option():
    data = load_data("digits", {"test_fraction": 0.5})
    assert len(data.test) == 899  # 898.5 rounded up
    assert len(data.train) + len(data.val) == 898
    assert len(data.val) == 90  # 89.8 rounded up


def test_mean_and_std_come_from_the_train_split():
    data = load_data("digits")
    mean, std = _stats(data.train.inputs.numpy())
    assert data.mean.shape == data.std.shape == (1,)
    assert data.mean.numpy() == pytest.approx(mean, rel=1e-6)
    assert data.std.numpy() == pytest.approx(std, rel=1e-6)
    # Measured without the held-out examples: the whole train split would give another mean.
    whole = np.concatenate([data.train.inputs.numpy(), data.val.inputs.numpy()])
    assert _stats(whole)[0] != pytest.approx(mean, rel=1e-9)


def test_an_option_the_loader_does_not_take_names_the_key():
    with pytest.raises(WorkloadError, match=r"^data\.dataset: .*digits.* noise") as refused:
        load_data("digits", {"noise": 0.1})
    assert "\n" not in str(refused.value)


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


def _expected_images(indices) -> np.ndarray:
    i, c, y, x = np.meshgrid(np.asarray(indices), *map(np.arange, (3, 32, 32)), indexing="ij")
    return _cifar_pixel(i, c, y, x).astype(np.uint8)


def _image_index(images: torch.Tensor) -> list[int]:
    """Which image each one is: pixel (0, 0, 0) of image i is 7 i (i < 37)."""
    return [int(v) // 7 for v in images[:, 0, 0, 0]]


def _write_batch(path, batch: dict, bytes_keys: bool = False) -> None:
    if bytes_keys:  # as written by code that followed the release's `encoding="bytes"` example
        batch = {key.encode(): value for key, value in batch.items()}
    with open(path, "wb") as f:
        pickle.dump(batch, f)


@pytest.fixture(params=[False, True], ids=["str-keys", "bytes-keys"])
def cifar10_root(tmp_path, request):
    folder = tmp_path / CIFAR_FOLDERS["cifar10"]
    folder.mkdir()
    for b in range(5):  # 4 images per batch: train images 0..19, test images 20..23
        labels = [(4 * b + j) % 10 for j in range(4)]
        batch = {"batch_label": f"batch {b + 1}", "data": _cifar_rows(4 * b, 4), "labels": labels}
        _write_batch(folder / f"data_batch_{b + 1}", batch, request.param)
    test = {"batch_label": "test", "data": _cifar_rows(20, 4), "labels": [9, 8, 7, 6]}
    _write_batch(folder / "test_batch", test, request.param)
    meta = {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072}
    _write_batch(folder / "batches.meta", meta, request.param)
    return tmp_path


def test_cifar10_pixels_and_labels_are_read_as_written(cifar10_root):
    # 20 train images, two of each class: half held out, stratified, is one of each class (a
    # stratified hold-out needs at least one example of every class on either side).
    data = load_data("cifar10", root=cifar10_root, val_fraction=0.5)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 10, 4)
    assert sorted(data.val.labels.tolist()) == sorted(data.train.labels.tolist()) == list(range(10))
    train, val = _image_index(data.train.inputs), _image_index(data.val.inputs)
    assert sorted(train + val) == list(range(20))
    assert np.array_equal(data.train.inputs.numpy(), _expected_images(train))
    assert np.array_equal(data.val.inputs.numpy(), _expected_images(val))
    assert np.array_equal(data.test.inputs.numpy(), _expected_images(range(20, 24)))
    assert data.train.labels.tolist() == [i % 10 for i in train]
    assert data.val.labels.tolist() == [i % 10 for i in val]
    assert data.test.labels.tolist() == [9, 8, 7, 6]
    assert (data.num_classes, data.input_shape) == (10, (3, 32, 32))
    assert data.augment
    mean, std = _stats(_expected_images(train))
    assert data.mean.numpy() == pytest.approx(mean, rel=1e-6)
    assert data.std.numpy() == pytest.approx(std, rel=1e-6)


def test_cifar100_reads_train_and_test_with_fine_labels(tmp_path):
    folder = tmp_path / CIFAR_FOLDERS["cifar100"]
    folder.mkdir()
    train_labels = [0, 42, 99, 7, 7, 42, 0, 3, 3, 99]
    for name, first, labels in [("train", 0, train_labels), ("test", 10, [3, 98])]:
        rows = _cifar_rows(first, len(labels))
        coarse = [k // 5 for k in labels]
        _write_batch(folder / name, {"data": rows, "fine_labels": labels, "coarse_labels": coarse})
    _write_batch(folder / "meta", {"fine_label_names": [f"class{k}" for k in range(100)]})
    data = load_data("cifar100", root=tmp_path, val_fraction=0.5)
    train, val = _image_index(data.train.inputs), _image_index(data.val.inputs)
    assert sorted(train + val) == list(range(10))
    assert sorted(data.val.labels.tolist()) == [0, 3, 7, 42, 99]  # stratified: one of each
    assert np.array_equal(data.train.inputs.numpy(), _expected_images(train))
    assert np.array_equal(data.test.inputs.numpy(), _expected_images([10, 11]))
    assert data.train.labels.tolist() == [train_labels[i] for i in train]
    assert data.val.labels.tolist() == [train_labels[i] for i in val]
    assert data.test.labels.tolist() == [3, 98]
    assert data.num_classes == 100


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_files_name_the_path_in_one_line(tmp_path, name):
    def refusal(**where) -> str:
        with pytest.raises(WorkloadError) as refused:
            load_data(name, **where)
        message = str(refused.value)
        assert message.startswith(f"data.dataset: {name}: ")
        assert "\n" not in message
        return message

    missing_root = refusal(root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / CIFAR_FOLDERS[name]) in missing_root
    assert "download: true" in missing_root
    (tmp_path / CIFAR_FOLDERS[name]).mkdir()
    assert str(tmp_path / CIFAR_FOLDERS[name]) in refusal(root=tmp_path)
    assert CIFAR_FOLDERS[name] in refusal()


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(WorkloadError, match=r"^data\.dataset: .*" + ", ".join(DATASET_NAMES)):
        load_data("mnist")


def test_synthetic_is_fixed_and_learnable():
    data = load_data("synthetic", SMALL_SYNTHETIC)
    assert (len(data.train), len(data.val), len(data.test)) == (180, 20, 100)
    assert data.input_shape == (2, 6, 6)
    again = load_data("synthetic", SMALL_SYNTHETIC)
    for name in ("train", "val", "test"):
        assert torch.equal(data.split(name).inputs, again.split(name).inputs)
        assert torch.equal(data.split(name).labels, again.split(name).labels)
    # Nearest class mean of the training images labels most test images: there is a signal.
    images = data.train.inputs.flatten(1).double()
    centroids = torch.stack([images[data.train.labels == k].mean(0) for k in range(10)])
    predicted = torch.cdist(data.test.inputs.flatten(1).double(), centroids).argmin(1)
    assert (predicted == data.test.labels).double().mean() > 0.8


# --- a user's loader: what its dict must be ----------------------------------------------------


def _pair(n: int, features: int = 3, classes: int = 3, first: int = 0):
    """Float inputs whose first feature is the example's number, labels cycling over classes."""
    inputs = torch.zeros(n, features)
    inputs[:, 0] = torch.arange(first, first + n, dtype=torch.float32)
    return inputs, torch.arange(first, first + n) % classes


def _refusal(spec: str, **where) -> str:
    with pytest.raises(WorkloadError) as refused:
        load_data(spec, **where)
    message = str(refused.value)
    assert message.startswith("data.dataset: ")
    assert "\n" not in message
    return message


def test_a_users_loader_gets_its_options_root_and_download(user_loader, tmp_path):
    seen = {}

    def load(**options):
        seen.update(options)
        return {"train": _pair(30), "test": _pair(9, first=30)}

    spec = user_loader(load)
    data = load_data(spec, {"noise": 0.5, "size": 3}, root=tmp_path, download=True)

    assert seen == {"noise": 0.5, "size": 3, "root": str(tmp_path), "download": True}
    assert (len(data.train), len(data.val), len(data.test)) == (27, 3, 9)
    assert (data.num_classes, data.input_shape) == (3, (3,))
    assert data.mean is None
    assert data.std is None


@pytest.mark.parametrize(
    ("found", "said"),
    [
        ([_pair(10), _pair(5)], "returned a list"),
        (None, "returned a NoneType"),
        ({"train": _pair(10)}, "returned a dict with keys train"),
        ({"training": _pair(10), "test": _pair(5)}, "with keys training, test"),
        ({"train": _pair(10), "test": torch.zeros(5, 3)}, "test is a Tensor; expected"),
        ({"train": _pair(10), "test": (torch.zeros(5, 3),)}, "test is a tuple; expected"),
    ],
)
def test_a_loader_that_returns_no_train_and_test_pairs(user_loader, found, said):
    assert said in _refusal(user_loader(found))


def _with_train(inputs, labels, **more):
    return {"train": (inputs, labels), "test": _pair(6), **more}


@pytest.mark.parametrize(
    ("found", "said"),
    [
        (
            _with_train(torch.zeros(10, 3, dtype=torch.int32), torch.zeros(10, dtype=torch.long)),
            "train inputs are torch.int32; expected float (or uint8 images)",
        ),
        (
            _with_train(torch.zeros(10, 64, dtype=torch.uint8), torch.zeros(10, dtype=torch.long)),
            "train inputs are uint8 of shape (10, 64): uint8 inputs are images [N, C, H, W]",
        ),
        (
            _with_train(torch.zeros(10, 8, 8, dtype=torch.uint8), torch.zeros(10)),
            "uint8 inputs are images",
        ),
        (_with_train(torch.zeros(10, 3), torch.zeros(10)), "train labels are torch.float32"),
        (
            _with_train(torch.zeros(10, 3), torch.zeros(10, dtype=torch.bool)),
            "train labels are torch.bool",
        ),
        (
            _with_train(torch.zeros(10, 3), torch.zeros(9, dtype=torch.long)),
            "train: inputs (10, 3) and labels (9,)",
        ),
        (
            _with_train(torch.zeros(10, 3), torch.zeros(10, 1, dtype=torch.long)),
            "train: inputs (10, 3) and labels (10, 1)",
        ),
        (
            _with_train(torch.zeros(10), torch.zeros(10, dtype=torch.long)),
            "train: inputs (10,) and labels (10,)",
        ),
        (
            {"train": _pair(10), "test": (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))},
            "test is empty",
        ),
        (
            {"train": _pair(10), "test": _pair(5, features=4)},
            "test inputs are torch.float32 (4,) an example, train's torch.float32 (3,)",
        ),
        (
            {"train": _pair(10), "val": _pair(4, features=2), "test": _pair(5)},
            "val inputs are torch.float32 (2,) an example",
        ),
        (
            {
                "train": (torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10) % 2),
                "test": (torch.zeros(4, 1, 4, 4), torch.arange(4) % 2),
            },
            "test inputs are torch.float32 (1, 4, 4) an example, train's torch.uint8 (1, 4, 4)",
        ),
        (
            {"train": _pair(10, classes=3), "test": _pair(5, classes=3), "num_classes": 2},
            "labels must lie in [0, 2), found 0..2",
        ),
        (
            {"train": _pair(10), "test": (torch.zeros(2, 3), torch.tensor([0, -1]))},
            "labels must lie in [0, 3), found -1..2",
        ),
        (
            {"train": _pair(10, classes=1), "test": _pair(5, classes=1)},
            "needs at least 2 classes, found 1",
        ),
    ],
)
def test_a_loader_whose_data_breaks_a_promise_is_named_in_one_line(user_loader, found, said):
    message = _refusal(user_loader(found))
    assert said in message


def test_a_loader_that_raises_is_one_line(user_loader):
    def load():
        raise ValueError("the bucket s3://data/x is empty\nTraceback-like detail")

    spec = user_loader(load)
    assert _refusal(spec) == f"data.dataset: {spec}: the bucket s3://data/x is empty"


def test_an_option_a_users_loader_does_not_take(make_module):
    name = make_module(
        """
        def load(size=10):
            raise AssertionError("never called")
        """
    )
    message = _refusal(f"{name}:load", options={"size": 3, "noise": 0.1})
    assert "noise" in message


def test_the_number_of_classes_is_the_largest_label_of_any_split_plus_one(user_loader):
    found = {
        "train": (torch.zeros(30, 2), torch.arange(30) % 3),  # 0, 1, 2
        "test": (torch.zeros(3, 2), torch.tensor([0, 4, 1])),  # 4: only here
    }
    assert load_data(user_loader(found)).num_classes == 5
    assert load_data(user_loader(found | {"num_classes": 7})).num_classes == 7


def test_an_explicit_val_split_is_used_as_given(user_loader):
    train, val, test = _pair(20), _pair(7, first=100), _pair(5, first=200)
    data = load_data(user_loader({"train": train, "val": val, "test": test}), val_fraction=0.5)

    for split, (inputs, labels) in [(data.train, train), (data.val, val), (data.test, test)]:
        assert torch.equal(split.inputs, inputs)
        assert torch.equal(split.labels, labels)


def test_float_inputs_are_used_as_they_are_never_normalised_nor_augmented(user_loader):
    inputs = torch.randn(40, 2, 5, 5, generator=torch.Generator().manual_seed(0)) * 7 + 3
    labels = torch.arange(40) % 4
    found = {"train": (inputs, labels), "val": (inputs, labels), "test": (inputs, labels)}
    data = load_data(user_loader(found | {"augment": True}))

    assert (data.mean, data.std, data.augment) == (None, None, False)
    ((batch, batch_labels),) = train_batches(data, 40, torch.Generator().manual_seed(1))
    order = _order(batch, inputs)  # every row is one of the loader's, exactly: not scaled, cropped
    assert sorted(order.tolist()) == list(range(40))
    assert order.tolist() != list(range(40))  # shuffled, though
    assert torch.equal(batch_labels, labels[order])
    assert torch.equal(torch.cat([x for x, _ in eval_batches(data, "val", 16)]), inputs)
    assert torch.equal(torch.cat([x for x, _ in eval_batches(data, "test", 16)]), inputs)


def _order(batch: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """For each row of ``batch``, the index of the identical row of ``inputs`` (exactly one)."""
    same = (batch.flatten(1)[:, None] == inputs.flatten(1)[None]).all(-1)
    assert (same.sum(1) == 1).all()
    return same.int().argmax(1)


def test_float64_inputs_become_float32_and_int_labels_int64(user_loader):
    found = {
        "train": (np.zeros((12, 2)), np.arange(12, dtype=np.int16) % 2),
        "test": (np.ones((4, 2)), np.arange(4, dtype=np.uint8) % 2),
    }
    data = load_data(user_loader(found))
    for split in (data.train, data.val, data.test):
        assert split.inputs.dtype == torch.float32
        assert split.labels.dtype == torch.int64


# --- the validation hold-out ----------------------------------------------------------------


@st.composite
def labelled_sets(draw):
    """Labels of 2 to 5 classes, each with at least two examples, in a random order."""
    classes = draw(st.integers(2, 5))
    counts = draw(st.lists(st.integers(2, 30), min_size=classes, max_size=classes))
    labels = np.repeat(np.arange(classes), counts)
    order = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(labels))
    return labels[order]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(labels=labelled_sets(), fraction=st.floats(0.05, 0.5), seed=st.integers(0, 2**31))
def test_the_hold_out_is_a_fixed_stratified_disjoint_part_of_train(
    user_loader, labels, fraction, seed
):
    n, classes = len(labels), labels.max() + 1
    inputs = torch.arange(n, dtype=torch.float32)[:, None]  # each example is its own number
    test = _pair(4, features=1)
    spec = user_loader({"train": (inputs, torch.from_numpy(labels)), "test": test})
    held = math.ceil(fraction * n)  # what train_test_split holds out: the fraction rounded up
    # A stratified split needs every class on each side; without one the split is drawn plainly.
    stratified = held >= classes and n - held >= classes
    event("stratified" if stratified else "plain")

    # Both global RNGs moved between the calls: a split drawn from either (scikit-learn's
    # random_state=None draws from numpy's legacy global one) would move with them.
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    data = load_data(spec, val_fraction=fraction)
    torch.manual_seed(seed + 1)
    np.random.seed(seed + 1)  # noqa: NPY002
    again = load_data(spec, val_fraction=fraction)

    train = data.train.inputs[:, 0].long().tolist()
    val = data.val.inputs[:, 0].long().tolist()
    assert len(val) == held
    assert sorted(train + val) == list(range(n))  # disjoint, and together the whole train split
    assert data.train.labels.tolist() == labels[train].tolist()
    assert data.val.labels.tolist() == labels[val].tolist()
    if stratified:
        per_class = np.bincount(labels, minlength=classes)
        val_per_class = np.bincount(labels[val], minlength=classes)
        assert np.all(np.abs(val_per_class - held * per_class / n) < 1)
    assert torch.equal(again.val.inputs, data.val.inputs)
    assert torch.equal(again.train.inputs, data.train.inputs)


def test_the_hold_out_does_not_move_with_the_trial_seed():
    def val_split(seed: int) -> torch.Tensor:
        config = TrainConfig(
            epochs=1, batch_size=8, seed=seed, data=Data("synthetic", options=SMALL_SYNTHETIC)
        )
        return load_dataset(config).val.inputs

    assert torch.equal(val_split(0), val_split(12345))


def test_a_class_with_one_example_still_gets_a_hold_out_of_the_rounded_up_size(user_loader):
    labels = torch.tensor([0] * 12 + [1] * 12 + [2])  # class 2 cannot be split: not stratified
    inputs = torch.arange(25, dtype=torch.float32)[:, None]
    found = {"train": (inputs, labels), "test": _pair(3, features=1)}
    data = load_data(user_loader(found), val_fraction=0.1)
    assert len(data.val) == 3  # 2.5 rounded up
    assert sorted(torch.cat([data.train.inputs, data.val.inputs])[:, 0].tolist()) == list(range(25))


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
        assert torch.equal(images, data.train.inputs[order])


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
        original = data.train.inputs[label]
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


@pytest.mark.parametrize(("name", "options"), [("digits", {}), ("synthetic", SMALL_SYNTHETIC)])
def test_normalised_training_set_has_zero_mean_and_unit_std(name, options):
    data = load_data(name, options)
    inputs = torch.cat([x for x, _ in train_batches(data, 100, torch.Generator(), augment=False)])
    channels = data.input_shape[0]
    assert inputs.dtype == torch.float32
    assert inputs.mean(dim=(0, 2, 3)).tolist() == pytest.approx([0.0] * channels, abs=1e-5)
    assert inputs.std(dim=(0, 2, 3), correction=0).tolist() == pytest.approx(
        [1.0] * channels, abs=1e-5
    )


def test_eval_batches_are_in_order_and_unaugmented():
    data = _image_data(_random_images(30), augment=True)
    for split in ("train", "val", "test"):
        batches = list(eval_batches(data, split, batch_size=8))
        assert [len(y) for _, y in batches] == [8, 8, 8, 6]
        assert torch.cat([y for _, y in batches]).tolist() == list(range(30))
        assert torch.equal(torch.cat([_raw_pixels(x, data) for x, _ in batches]), data.train.inputs)
    with pytest.raises(ValueError, match="split"):
        next(eval_batches(data, "validation"))


@pytest.mark.parametrize("device", DEVICES)
def test_everything_stays_on_the_requested_device(device):
    options = {"num_train": 100, "num_test": 16, "image_size": 8}
    data = load_data("synthetic", options, device=device)
    tensors = [data.mean, data.std]
    tensors += [t for s in (data.train, data.val, data.test) for t in (s.inputs, s.labels)]
    generator = torch.Generator(device).manual_seed(0)
    for augment in (False, True):
        tensors += [t for batch in train_batches(data, 32, generator, augment) for t in batch]
    for split in ("train", "val", "test"):
        tensors += [t for batch in eval_batches(data, split) for t in batch]
    assert {t.device.type for t in tensors} == {torch.device(device).type}


def test_a_missing_file_is_a_workload_error_but_a_network_error_is_left_to_retry(user_loader):
    def missing():
        raise FileNotFoundError("no /data/moons.npz")

    def offline():
        raise ConnectionError("name or service not known")

    with pytest.raises(WorkloadError, match=r"^data\.dataset: .*: no /data/moons.npz$"):
        load_data(user_loader(missing))
    with pytest.raises(ConnectionError):  # not WorkloadError: Tune retries the trial
        load_data(user_loader(offline))


def test_the_digest_tells_datasets_apart_and_is_the_same_every_load():
    digits = load_data("digits")
    assert digits.digest() == load_data("digits").digest()
    assert digits.digest() != load_data("digits", {"test_fraction": 0.2}).digest()
    assert digits.digest() != load_data("digits", val_fraction=0.2).digest()
    assert len(digits.digest()) == 64  # sha256, hex
