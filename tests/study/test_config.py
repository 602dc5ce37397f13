"""The study config: every rule refuses bad input with one line naming the key; good input loads."""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from study.config import ConfigError, StudyConfig, load_config
from trainables.config import Baseline, Knee, TrainConfig
from trainables.data import CIFAR_FOLDERS
from trainables.schedules import DECAY_SHAPES, SCHEDULE_NAMES

CONFIGS = Path(__file__).parents[2] / "configs"
SHIPPED = sorted(path.name for path in CONFIGS.glob("*.yaml"))


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    """A folder that looks like a torchvision CIFAR root (both datasets' folders, empty)."""
    for folder in CIFAR_FOLDERS.values():
        (tmp_path / folder).mkdir()
    return tmp_path


def refused(path: str | Path | None, overrides: list[str] = ()) -> str:
    """The ConfigError message load_config gives, checked to be a single line."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert message
    assert "\n" not in message
    return message


# (overrides on the default config, the dotted key the message starts with, a part of the rest).
# "{tmp}" is a scratch folder holding a file `file.txt` and an empty folder `empty`.
BAD_OVERRIDES = [
    # unknown keys name themselves and the allowed ones
    (
        ["train.epoch=3"],
        "train.epoch",
        "unknown key; allowed: epochs, steps, eval_every, batch_size, optimizer",
    ),
    (
        ["optim.lr=0.1"],
        "optim",
        "unknown key; allowed: name, data, model, trainable, objective, train, sweep",
    ),
    (["sweep.lr=[0.1]"], "sweep.lr", "unknown key"),
    # wrong types: no coercion from strings, floats or bools
    (["train.epochs=three"], "train.epochs", "input should be a valid integer, got 'three'"),
    (["train.epochs=3.0"], "train.epochs", "input should be a valid integer, got 3.0"),
    (["train.momentum='0.9'"], "train.momentum", "input should be a valid number, got '0.9'"),
    (["train.nesterov=1"], "train.nesterov", "input should be a valid boolean, got 1"),
    (
        ["train.nesterov=true", "train.momentum=0"],
        "train.nesterov",
        "needs train.momentum > 0 (Nesterov momentum), got True",
    ),
    (["sweep.seed=0"], "sweep.seed", "input should be a valid list, got 0"),
    (["sweep.seed=[true]"], "sweep.seed[0]", "input should be a valid integer, got True"),
    (["train=3"], "train", "input should be a valid dictionary"),
    (["name="], "name", "input should be a valid string, got None"),
    (["name=''"], "name", "its last part (after any '/') names the study's folders"),
    (["name=runs/"], "name", "1 to 100 printable characters, not '.' or '..', got 'runs/'"),
    (["name=runs/.."], "name", "not '.' or '..', got 'runs/..'"),
    ([f"name={'x' * 101}"], "name", "1 to 100 printable characters"),
    # the sweep
    (["sweep.explore_fraction=[0, 1.5]"], "sweep.explore_fraction[1]", "less than or equal to 1"),
    (["sweep.explore_fraction=[-0.1]"], "sweep.explore_fraction[0]", "greater than or equal to 0"),
    (["train.warmup_fraction=0.1"], "sweep.explore_fraction", "warmup_fraction + explore_fraction"),
    (["train.warmup_fraction=1.5"], "train.warmup_fraction", "less than or equal to 1, got 1.5"),
    (["sweep.peak_lr=[0.1, 0]"], "sweep.peak_lr[1]", "input should be greater than 0, got 0"),
    (["sweep.peak_lr=[-0.1]"], "sweep.peak_lr[0]", "input should be greater than 0, got -0.1"),
    (["sweep.peak_lr=[.inf]"], "sweep.peak_lr[0]", "input should be a finite number, got inf"),
    (["sweep.explore_fraction=[]"], "sweep.explore_fraction", "at least 1 item"),
    (["sweep.peak_lr=[]"], "sweep.peak_lr", "at least 1 item"),
    (["sweep.seed=[]"], "sweep.seed", "at least 1 item"),
    (["sweep.schedule=[]"], "sweep.schedule", "at least 1 item"),
    (["sweep.seed=[0, 1, 0]"], "sweep.seed", "values must be distinct, got [0, 1, 0]"),
    (["sweep.explore_fraction=[0.5, 0.50]"], "sweep.explore_fraction", "values must be distinct"),
    (["sweep.seed=[-1]"], "sweep.seed[0]", "greater than or equal to 0, got -1"),
    # training
    (["train.epochs=0"], "train.epochs", "input should be greater than 0, got 0"),
    (["train.batch_size=0"], "train.batch_size", "input should be greater than 0, got 0"),
    (["train.momentum=1"], "train.momentum", "input should be less than 1, got 1"),
    (["train.weight_decay=-1e-4"], "train.weight_decay", "greater than or equal to 0, got -0.0001"),
    (["train.device=gpu"], "train.device", "must be auto (cuda if there is one), cpu, cuda"),
    # unknown names list the known ones
    (["model.name=vgg"], "model.name", "a built-in (mlp, cnn, resnet18) or 'module:callable'"),
    (
        ["data.dataset=mnist"],
        "data.dataset",
        "a built-in (digits, cifar10, cifar100, synthetic, pydoc, text, bin)",
    ),
    (["trainable=fit"], "trainable.fit", "a built-in (classifier, lm) or 'module:callable'"),
    (["objective.mode=best"], "objective.mode", "input should be 'max' or 'min', got 'best'"),
    (["objective.metric=sharpness"], "objective.metric", "reports train_loss, train_acc, val_loss"),
    (["data.val_fraction=1"], "data.val_fraction", "input should be less than 1"),
    (["data.options=3"], "data.options", "input should be a valid dictionary"),
    (["sweep.schedule=[knee, exp]"], "sweep.schedule[1]", "'knee', 'cosine', 'linear', 'step'"),
    (["train.decay=step"], "train.decay", "input should be 'linear', 'cosine' or '1-sqrt'"),
    (["train.optimizer=adam"], "train.optimizer", "input should be 'sgd'"),
    # CIFAR needs its files, unless asked to download them
    (["data.dataset=cifar10"], "data.root", "cifar10 needs the folder that holds"),
    (["data.dataset=cifar10", "data.download=true"], "data.root", "cifar10 needs the folder"),
    (["data.dataset=cifar10", "data.root={tmp}/no"], "data.root", "{tmp}/no is not a directory"),
    (["data.dataset=cifar100", "data.root={tmp}/file.txt"], "data.root", "is not a directory"),
    (["data.dataset=cifar10", "data.root={tmp}/empty"], "data.root", "no cifar-10-batches-py/"),
    (["data.dataset=cifar100", "data.root={tmp}/empty"], "data.root", "no cifar-100-python/"),
    # resources
    (["resources.cpus_per_trial=0"], "resources.cpus_per_trial", "greater than 0, got 0"),
    (["resources.gpus_per_trial=-1"], "resources.gpus_per_trial", "greater than or equal to 0"),
    (["resources.gpus_per_trial=1.5"], "resources.gpus_per_trial", "a whole number of GPUs"),
    (["resources.max_concurrent=0"], "resources.max_concurrent", "greater than 0, got 0"),
    # tune
    (["tune.max_failures=-1"], "tune.max_failures", "greater than or equal to 0, got -1"),
    (["tune.checkpoint_every=0"], "tune.checkpoint_every", "greater than 0, got 0"),
    (["tune.scheduler=hyperband"], "tune.scheduler", "input should be 'fifo' or 'asha'"),
    (
        [
            "sweep.schedule=[knee, step]",
            "sweep.explore_fraction=[0.4]",
            "train.warmup_fraction=0.5",
        ],
        "train.warmup_fraction",
        "the step schedule first decays at 0.5 of the budget, after the warmup; got 0.5",
    ),
    (  # the default sweep explores for the whole budget at explore 1.0: nothing left to judge
        ["tune.scheduler=asha", "train.epochs=30"],
        "tune.scheduler",
        "lasts the whole budget (30 epochs; warmup + explore 1): use fifo",
    ),
    (  # Ray's ASHA needs grace_period <= max_t
        [
            "tune.scheduler=asha",
            "train.epochs=30",
            "sweep.explore_fraction=[0, 0.5]",
            "tune.grace_period=31",
        ],
        "tune.grace_period",
        "within the budget (16..30 epochs), got 31",
    ),
    (
        [
            "tune.scheduler=asha",
            "train.epochs=30",
            "sweep.explore_fraction=[0, 0.5]",
            "tune.grace_period=15",
        ],
        "tune.grace_period",
        "past the longest explore phase and within the budget (16..30 epochs), got 15",
    ),
    (  # (0.1 + 0.3) * 30 is 12.000000000000002 in floats: still 12 epochs
        [
            "tune.scheduler=asha",
            "train.epochs=30",
            "train.warmup_fraction=0.1",
            "sweep.explore_fraction=[0.3]",
        ],
        "tune.grace_period",
        "(13..30 epochs), got None",
    ),
    # sharpness
    (["sharpness.epsilon=0"], "sharpness.epsilon", "greater than 0, got 0"),
    (["sharpness.steps=0"], "sharpness.steps", "greater than 0, got 0"),
    (["sharpness.hessian=yes please"], "sharpness.hessian", "valid boolean, got 'yes please'"),
    # malformed overrides name what was given
    (["train.epochs"], "--set 'train.epochs'", "expected key=value"),
    (["=3"], "--set '=3'", "expected key=value"),
    (["train..epochs=3"], "--set 'train..epochs=3'", "expected key=value"),
    (["name.first=x"], "--set name.first", "name is not a section"),
    # an unquoted list, cut by the shell at its spaces: the fix is named
    (["sweep.seed=[0,"], "--set sweep.seed", "cut short (the shell splits an unquoted value"),
    (
        ["sweep.seed=[0, 1"],
        "--set sweep.seed",
        'quote the whole item, e.g. --set "sweep.seed=[0, 1]"',
    ),
    (["name='unclosed"], "--set name", "value is not valid YAML"),
]


@pytest.mark.parametrize(("overrides", "key", "detail"), BAD_OVERRIDES)
def test_bad_input_is_one_line_naming_the_key(overrides, key, detail, tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    message = refused(None, [item.format(tmp=tmp_path) for item in overrides])
    assert message.startswith(f"{key}: ")
    assert detail.format(tmp=tmp_path) in message


def test_several_problems_report_the_first_and_count_the_rest():
    message = refused(None, ["train.epochs=0", "train.batch_size=0", "sweep.seed=[]"])
    assert message.startswith("train.epochs:")
    assert message.endswith("(and 2 more problems)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "a study config is a mapping of sections (name, data, model"),
        ("", "empty; a study config names its name, data, model"),
        ("name: x\n", "train: required but missing (and 1 more problem)"),
    ],
)
def test_bad_files_name_the_file(text, expected, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    message = refused(path)
    assert expected in message
    if "YAML" in expected or "mapping" in expected:
        assert message.startswith(str(path))


def test_unreadable_file_names_the_path(tmp_path):
    missing = tmp_path / "missing.yaml"
    assert refused(missing).startswith(f"{missing}: cannot read it")
    assert refused(tmp_path).startswith(f"{tmp_path}: cannot read it")


def test_asha_with_a_grace_period_past_the_explore_phase_warns(caplog):
    overrides = [
        "tune.scheduler=asha",
        "train.epochs=30",
        "sweep.explore_fraction=[0, 0.5]",
        "tune.grace_period=16",
    ]
    with caplog.at_level(logging.WARNING, logger="study.config"):
        cfg = load_config(None, overrides)
    assert cfg.tune.grace_period == 16
    assert "asha judges trials mid-training" in caplog.text
    assert "grace period of 16 epochs" in caplog.text


def test_fractional_and_whole_gpus_are_accepted():
    assert load_config(None, ["resources.gpus_per_trial=0.25"]).resources.gpus_per_trial == 0.25
    assert load_config(None, ["resources.gpus_per_trial=2"]).resources.gpus_per_trial == 2.0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name, cifar_root):
    cfg = load_config(CONFIGS / name, [f"data.root={cifar_root}"])
    assert cfg.num_trials >= 8
    assert 0.0 in cfg.sweep.explore_fraction  # the no-explore baseline every study compares to


@pytest.mark.parametrize("name", ["cifar10_resnet18.yaml", "cifar10_quick.yaml"])
def test_cifar_configs_only_lack_a_real_root(name):
    message = refused(CONFIGS / name)
    assert message.startswith("data.root: /path/to/cifar is not a directory")
    assert "more problem" not in message


def test_default_is_the_packaged_digits_study():
    cfg = load_config(None)
    assert files("configs").joinpath("digits_quick.yaml").is_file()
    assert cfg == load_config(CONFIGS / "digits_quick.yaml")
    assert (cfg.name, cfg.data.dataset, cfg.model.name) == ("digits-quick", "digits", "mlp")
    assert {0.0, 0.5, 1.0} <= set(cfg.sweep.explore_fraction)
    assert len(cfg.sweep.peak_lr) >= 2
    assert len(cfg.sweep.seed) >= 3


def test_paper_recipe_explores_0_30_60_100_epochs(cifar_root):
    cfg = load_config(CONFIGS / "cifar10_resnet18.yaml", [f"data.root={cifar_root}"])
    assert [f * cfg.train.epochs for f in cfg.sweep.explore_fraction] == [0, 30, 60, 100]
    assert (cfg.model.name, cfg.train.batch_size, cfg.sweep.peak_lr) == ("resnet18", 128, [0.1])
    assert (cfg.train.momentum, cfg.train.weight_decay) == (0.9, 5e-4)


def test_overrides_are_parsed_as_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        None,
        [
            "sweep.seed=[0,1]",
            "train.epochs=3",
            "sharpness.epsilon=1e-4",  # a float, as YAML 1.2 reads it (PyYAML alone: a string)
            "name=my study",
            "data.root=relative/folder",
        ],
    )
    assert cfg.sweep.seed == [0, 1]
    assert cfg.train.epochs == 3
    assert cfg.sharpness.epsilon == 1e-4
    assert cfg.name == "my study"
    assert cfg.data.root == tmp_path.resolve() / "relative" / "folder"


def test_cifar_download_needs_no_files_yet(tmp_path):
    cfg = load_config(
        None, ["data.dataset=cifar10", "data.download=true", f"data.root={tmp_path}/new"]
    )
    assert cfg.data.root == tmp_path / "new"


SMALL = [
    "train.epochs=30",
    "train.batch_size=64",
    "sweep.explore_fraction=[0, 0.5]",
    "sweep.peak_lr=[0.1]",
    "sweep.seed=[0, 1, 2]",
    "sweep.schedule=[knee, cosine]",
]


def test_trial_base_swept_and_num_trials():
    cfg = load_config(None, SMALL)
    # Knee: 2 explore fractions x 3 seeds; cosine has no explore phase: once per seed.
    assert cfg.num_trials == 2 * 3 + 3
    assert cfg.swept() == {
        "explore_fraction": [0.0, 0.5],
        "peak_lr": [0.1],
        "seed": [0, 1, 2],
        "schedule": ["knee", "cosine"],
    }
    assert cfg.trial_base() == {
        "dataset": "digits",
        "data_root": None,
        "download": False,
        "val_fraction": 0.1,
        "model": "mlp",
        "trainable": "classifier",
        "epochs": 30,
        "batch_size": 64,
        "optimizer": "sgd",
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "warmup_fraction": 0.0,
        "min_lr_ratio": 0.0,
        "beta2": 0.999,
        "eps": 1e-8,
        "grad_clip": None,
        "device": "auto",
        "sharpness_epsilon": 1e-3,
        "sharpness_steps": 20,
        "sharpness_batches": 4,
        "hessian": False,
    }


def test_a_trial_is_exactly_what_train_takes(cifar_root):
    cfg = load_config(None, [f"data.root={cifar_root}"])
    base, (point, *_) = cfg.trial_base(), cfg.grid()
    assert not set(base) & set(point)
    trial = {**base, **point}
    # The flat trial reads back as the run the study describes, and flattens to itself.
    assert TrainConfig.from_flat(trial) == cfg.trial_config(point)
    assert TrainConfig.from_flat(trial).data.root == str(cifar_root)
    assert cfg.trial_config(point).to_flat() == trial


def test_a_baseline_trial_has_no_explore_phase():
    cfg = load_config(None, ["sweep.schedule=[knee, cosine]"])
    cosine = next(p for p in cfg.grid() if p["schedule"] == "cosine")

    run = TrainConfig.from_flat({**cfg.trial_base(), **cosine})

    assert run.schedule == Baseline("cosine")
    assert not {"explore_fraction", "decay"} & run.to_flat().keys()


@pytest.mark.parametrize(
    ("sets", "note"),
    [
        (["sweep.epochs=[20, 40]"], "sweep.epochs [20, 40] sets each trial's budget: train.epochs"),
        (["sweep.decay=[linear, cosine]"], "explore 1 has no exploit phase, so its 40 trials"),
    ],
)
def test_the_config_says_what_it_will_do(sets, note):
    assert any(note in line for line in load_config(None, sets).notes())
    assert load_config(None).notes() == []


def _ends_in_a_folder_name(name: str) -> bool:
    last = name.rsplit("/", 1)[-1]
    return last not in ("", ".", "..") and last.isprintable()


@st.composite
def study_mappings(draw) -> dict:
    """Valid study configs, as the mappings a YAML file holds."""
    fraction = st.floats(0, 1)
    explore = draw(st.lists(fraction, min_size=1, max_size=5, unique=True))
    positive = st.floats(0, 10, exclude_min=True)
    return {
        "name": draw(st.text(min_size=1, max_size=20).filter(_ends_in_a_folder_name)),
        "data": {"dataset": "digits", "root": draw(st.sampled_from([None, "/tmp", "/a b/c"]))},
        "model": {"name": "mlp"},
        "train": {
            "epochs": draw(st.integers(1, 500)),
            "batch_size": draw(st.integers(1, 4096)),
            "momentum": (momentum := draw(st.floats(0, 1, exclude_max=True))),
            "nesterov": draw(st.booleans()) and momentum > 0,
            "weight_decay": draw(st.floats(0, 1)),
            # below 0.5: the step schedule decays first at half the budget, after the warmup
            "warmup_fraction": draw(st.floats(0, min(1 - max(explore), 0.49))),
            "decay": draw(st.sampled_from(DECAY_SHAPES)),
        },
        "sweep": {
            "explore_fraction": explore,
            "peak_lr": draw(st.lists(positive, min_size=1, max_size=4, unique=True)),
            "seed": draw(st.lists(st.integers(0, 2**32), min_size=1, max_size=4, unique=True)),
            "schedule": draw(st.lists(st.sampled_from(SCHEDULE_NAMES), min_size=1, unique=True)),
        },
        "sharpness": {"epsilon": draw(positive), "hessian": draw(st.booleans())},
        "resources": {"gpus_per_trial": draw(st.one_of(fraction, st.integers(1, 8)))},
        "tune": {"max_failures": draw(st.integers(0, 10))},
    }


@given(mapping=study_mappings())
def test_dump_then_load_gives_an_equal_config(mapping, tmp_path_factory):
    cfg = StudyConfig.from_mapping(mapping)
    path = tmp_path_factory.getbasetemp() / "roundtrip.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_grid_runs_a_baseline_once_per_combination_of_its_own_axes():
    cfg = load_config(None, [*SMALL, "sweep.decay=[linear, cosine]", "sweep.epochs=[10, 20]"])

    grid = cfg.grid()

    knee = [p for p in grid if p["schedule"] == "knee"]
    cosine = [p for p in grid if p["schedule"] == "cosine"]
    assert len(knee) == 2 * 3 * 2 * 2  # explore x seed x decay x epochs
    assert len(cosine) == 3 * 2  # seed x epochs
    assert all(p["explore_fraction"] is None and p["decay"] is None for p in cosine)
    assert len({tuple(sorted(p.items())) for p in grid}) == len(grid) == cfg.num_trials
    assert {"epochs", "decay"}.isdisjoint(cfg.trial_base())  # swept: each trial has its own


OPTUNA = ["tune.search=optuna", "tune.num_samples=6", "sweep.seed=[0, 1]"]


def test_a_baseline_never_logs_knees_decay_even_when_decay_is_not_swept():
    cfg = load_config(None, SMALL)  # train.decay: linear, sweep.decay not set

    cosine = [p for p in cfg.grid() if p["schedule"] == "cosine"]

    assert cosine
    assert all(p["decay"] is None and p["explore_fraction"] is None for p in cosine)
    assert {p["decay"] for p in cfg.grid() if p["schedule"] == "knee"} == {"linear"}


def test_optuna_search_reads_ranges_and_counts_every_seed():
    cfg = load_config(None, [*OPTUNA, "sweep.explore_fraction=[0, 1]", "sweep.peak_lr=[0.01, 0.3]"])

    assert cfg.num_trials == 6 * 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["sweep.explore_fraction=[0, 0.5, 1]"], "sweep.explore_fraction: tune.search optuna"),
        (["sweep.peak_lr=[0.3, 0.01]"], "sweep.peak_lr: tune.search optuna searches a [low, high]"),
        (["sweep.schedule=[knee, cosine]"], "sweep.schedule: tune.search optuna searches"),
        (["sweep.schedule=[cosine]"], "sweep.schedule: tune.search optuna searches the Knee"),
        (["tune.scheduler=asha", "tune.grace_period=20"], "tune.scheduler: tune.search optuna"),
        (["sweep.epochs=[10, 20]"], "sweep.epochs: tune.search optuna searches"),
        (["tune.num_samples=null"], "tune.num_samples"),
        (
            ["resources.autoscaling=true", "resources.max_concurrent=null"],
            "resources.max_concurrent: tune.search optuna on an autoscaling cluster needs",
        ),
    ],
)
def test_optuna_search_refuses_what_it_cannot_search(overrides, message):
    ranges = ["sweep.explore_fraction=[0, 1]", "sweep.peak_lr=[0.01, 0.3]"]
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        load_config(None, [*OPTUNA, *ranges, *overrides])
    assert "\n" not in str(refused.value)


def test_a_grid_refuses_num_samples_it_would_ignore():
    with pytest.raises(ConfigError, match=re.escape("tune.num_samples: counts tune.search optuna")):
        load_config(None, ["tune.search=grid", "tune.num_samples=6"])


@pytest.mark.parametrize(
    ("name", "folder"),
    [("digits-quick", "digits-quick"), ("my study", "my study"), ("/Users/me/knee", "knee")],
)
def test_a_study_name_may_be_an_experiment_path_its_folders_take_the_last_part(name, folder):
    """A Databricks experiment is a workspace path; the study's folders are named by its end."""
    cfg = load_config(None, [f"name={name}"])
    assert cfg.name == name
    assert cfg.folder_name == folder


def test_the_study_defaults_are_the_runs_defaults():
    """One set of defaults: a study that leaves a key out trains with trainables' default."""
    cfg = load_config(None)
    point = cfg.grid()[0]
    minimal = StudyConfig.from_mapping(
        {
            "name": "minimal",
            "data": {"dataset": "digits"},
            "model": {"name": "mlp"},
            "train": {"epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size},
            "sweep": {k: [v] for k, v in point.items() if k != "decay"},
        }
    )
    run = minimal.trial_config({k: v for k, v in point.items() if k != "decay"})
    default = TrainConfig(
        cfg.train.batch_size, cfg.train.epochs, peak_lr=point["peak_lr"], seed=point["seed"]
    )
    assert run == TrainConfig(**{**default.__dict__, "schedule": Knee(point["explore_fraction"])})


def test_plugin_options_and_the_loop_travel_in_each_trials_flat_config():
    cfg = load_config(
        None,
        [
            "data.dataset=mypkg.data:load_moons",
            "data.options={n_samples: 3000, noise: 0.25}",
            "model.name=mypkg.nets:make_mlp",
            "model.options={width: 128}",
            "trainable.fit=mypkg.train:fit",
            "trainable.options={context: 64}",
        ],
    )
    flat = cfg.trial_config(cfg.grid()[0]).to_flat()

    assert cfg.trainable.fit == "mypkg.train:fit"
    assert {k: flat[k] for k in flat if "." in k or k in ("dataset", "model", "trainable")} == {
        "dataset": "mypkg.data:load_moons",
        "data.n_samples": 3000,
        "data.noise": 0.25,
        "model": "mypkg.nets:make_mlp",
        "model.width": 128,
        "trainable": "mypkg.train:fit",
        "trainable.context": 64,
    }
    assert TrainConfig.from_flat(flat) == cfg.trial_config(cfg.grid()[0])


@pytest.mark.parametrize(
    ("objective", "mode", "selection"),
    [
        ({}, "max", "val_acc"),  # the default: test accuracy, chosen by validation accuracy
        ({"metric": "val_loss"}, "min", "val_loss"),
        ({"metric": "test_loss"}, "min", "val_loss"),
        ({"metric": "test_acc", "mode": "min"}, "min", "val_acc"),  # said outright: as said
    ],
)
def test_the_objective_takes_its_metrics_direction_and_selects_on_validation(
    objective, mode, selection
):
    cfg = load_config(None, [f"objective={objective}"] if objective else [])

    assert (cfg.objective.mode, cfg.objective.selection_metric) == (mode, selection)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["train.steps=100"], "train.epochs: give the budget as train.epochs or train.steps"),
        (["train.epochs=null", "train.steps=100"], "train.epochs: trainable classifier counts"),
        (["data.dataset=pydoc"], "data.dataset: trainable classifier trains on digits, cifar10"),
        (["train.eval_every=5"], "train.eval_every: counts steps of a train.steps budget"),
        (["train.warmup_fraction=0.1", "train.warmup_steps=5"], "train.warmup_steps: the warmup"),
        (["sweep.steps=[10, 20]"], "sweep.steps: sweeps a budget in steps"),
        (["train.min_lr_ratio=1"], "train.min_lr_ratio: input should be less than 1"),
    ],
)
def test_budget_and_workload_rules_are_one_line(overrides, error):
    with pytest.raises(ConfigError) as refused:
        load_config(None, overrides)
    assert str(refused.value).startswith(error), str(refused.value)


def test_the_language_model_counts_steps_trains_on_a_corpus_and_builds_its_own_model():
    lm = Path(__file__).parents[2] / "configs" / "lm_quick.yaml"
    cfg = load_config(lm)
    assert (cfg.budget_unit, cfg.budgets, cfg.objective.mode) == ("steps", [200], "min")
    assert cfg.trial_config(cfg.grid()[0]).to_flat()["steps"] == 200
    for overrides, error in [
        (
            ["train.steps=null", "train.eval_every=null", "train.epochs=3"],
            "train.steps: trainable lm",
        ),
        (["data.dataset=digits"], "data.dataset: trainable lm trains on pydoc, text, bin, got"),
        (["data.dataset=mypkg:load"], "data.dataset: trainable lm trains on pydoc, text, bin, got"),
        (["model.name=mlp"], "model: trainable lm builds its own"),
        (["objective.metric=test_acc"], "objective.metric: trainable lm reports train_loss"),
    ]:
        with pytest.raises(ConfigError) as refused:
            load_config(lm, overrides)
        assert str(refused.value).startswith(error), str(refused.value)
