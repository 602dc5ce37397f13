"""A study's workload is tried in the driver before anything starts: `validate` and `run` import
its modules, load its data once and run its model on two examples. Every problem a trial would
meet is one line naming the key, exit status 2, and no study folder."""

import pytest

from study.cli import EXIT_BAD_INPUT, EXIT_OK, main

PLUGINS = """
import torch
from torch import nn

X = torch.randn(40, 3)
Y = torch.arange(40) % 4


def good(scale=1.0):
    return {"train": (X * scale, Y), "test": (X[:8], Y[:8])}


def ints():
    return {"train": (X.int(), Y), "test": (X[:8].int(), Y[:8])}


def flat_bytes():
    return {"train": ((X * 10).byte(), Y), "test": ((X[:8] * 10).byte(), Y[:8])}


def float_labels():
    return {"train": (X, Y.float()), "test": (X[:8], Y[:8].float())}


def too_few_classes():
    return {"train": (X, Y), "test": (X[:8], Y[:8] + 2), "num_classes": 4}


def a_list():
    return [X, Y]


def mlp(input_shape, num_classes, width=8):
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_classes))


def three_columns(input_shape, num_classes):
    return nn.Linear(input_shape[0], 3)


def breaks(input_shape, num_classes):
    return nn.Linear(5, num_classes)  # the inputs have 3 features


def fit(config, trial):
    pass


def fit_without_trial(config):
    pass


raise_on_import = False
"""

BASE = [
    "--set", "name=plugins",
    "--set", "train.epochs=2",
    "--set", "sweep.seed=[0]",
    "--set", "data.dataset=plugins:good",
    "--set", "model.name=plugins:mlp",
]  # fmt: skip


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    (tmp_path / "plugins.py").write_text(PLUGINS)
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.chdir(tmp_path)  # a local study finds modules where it is started
    return tmp_path


def validate(*sets: str) -> int:
    return main(["validate", *BASE, *(a for s in sets for a in ("--set", s)), "--output", "out"])


def test_a_workload_of_ones_own_modules_is_valid(user_folder, capsys):
    assert validate("data.options={scale: 2.0}", "model.options={width: 4}") == EXIT_OK
    assert "plugins: valid, 10 trials" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        (["data.dataset=nowhere:load"], "data.dataset: cannot import nowhere (No module named"),
        (
            ["data.dataset=broken:load"],
            "data.dataset: importing broken failed: RuntimeError: no GPU",
        ),
        (["data.dataset=plugins:missing"], "data.dataset: plugins has no 'missing'"),
        (
            ["data.dataset=plugins:raise_on_import"],
            "data.dataset: plugins:raise_on_import is a bool",
        ),
        (["data.options={size: 3}"], "data.dataset: plugins:good(scale=1.0) cannot be called with"),
        (["data.dataset=plugins:a_list"], "data.dataset: plugins:a_list returned a list; expected"),
        (["data.dataset=plugins:ints"], "data.dataset: plugins:ints: train inputs are torch.int32"),
        (["data.dataset=plugins:flat_bytes"], "uint8 of shape (40, 3): uint8 inputs are images"),
        (["data.dataset=plugins:float_labels"], "train labels are torch.float32; expected integer"),
        (["data.dataset=plugins:too_few_classes"], "labels must lie in [0, 4), found 0..5"),
        (["model.name=plugins:three_columns"], "model.name: plugins:three_columns returns (2, 3)"),
        (["model.name=plugins:breaks"], "model.name: plugins:breaks fails on a batch of shape"),
        (
            ["model.options={depth: 2}"],
            "model.name: plugins:mlp(input_shape, num_classes, width=8)",
        ),
        (["trainable=plugins:fit_without_trial"], "trainable: plugins:fit_without_trial(config)"),
    ],
)
def test_a_workload_every_trial_would_fail_on_is_one_line_and_nothing_is_made(
    user_folder, capsys, sets, error
):
    assert validate(*sets) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("knee-study: error: "), err
    assert err.count("\n") == 1, err
    assert error in err, err
    assert not (user_folder / "out").exists()


def test_a_cifar_root_with_no_files_is_refused_before_ray_starts(tmp_path, capsys):
    (tmp_path / "cifar-10-batches-py").mkdir()  # the folder, but not its files
    sets = ["--set", f"data.root={tmp_path}", "--set", "data.dataset=cifar10"]
    assert main(["validate", *sets]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "data.dataset: cifar10: no cifar10 data at " in err
    assert "expected the python-version files data_batch_1" in err


OWN_LOOP = """
name: own
trainable: plugins:fit
objective: {metric: val_loss}
train: {epochs: 2, batch_size: 8}
sweep: {explore_fraction: [0.5], peak_lr: [0.1], seed: [0]}
"""


def test_a_loop_of_ones_own_needs_no_data_or_model(user_folder, capsys):
    (user_folder / "own.yaml").write_text(OWN_LOOP)
    assert main(["validate", "own.yaml"]) == EXIT_OK
    assert "own: valid, 1 trial\n" in capsys.readouterr().out


def test_the_built_in_loop_needs_data_and_a_model(user_folder, capsys):
    (user_folder / "own.yaml").write_text(OWN_LOOP.replace("plugins:fit", "classifier"))
    assert main(["validate", "own.yaml"]) == EXIT_BAD_INPUT
    assert "data: required by trainable classifier" in capsys.readouterr().err
