"""trainables/config.py, a run's config: the flat form (Tune's params, MLflow's) round-trips,
a baseline has no Knee keys, and wrong keys are refused."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainables.config import (
    Baseline,
    Data,
    Knee,
    Model,
    Optimizer,
    Sharpness,
    TrainConfig,
)
from trainables.schedules import DECAY_SHAPES, SCHEDULE_NAMES

schedules = st.one_of(
    st.builds(Knee, st.floats(0, 1), st.sampled_from(DECAY_SHAPES)),
    st.builds(Baseline, st.sampled_from([n for n in SCHEDULE_NAMES if n != "knee"])),
)
configs = st.builds(
    TrainConfig,
    epochs=st.integers(1, 500),
    batch_size=st.integers(1, 512),
    peak_lr=st.floats(1e-5, 10),
    seed=st.integers(0, 2**31),
    schedule=schedules,
    warmup_fraction=st.floats(0, 1),
    data=st.builds(
        Data, st.sampled_from(["digits", "cifar10"]), st.none() | st.text(), st.booleans()
    ),
    model=st.builds(Model, st.sampled_from(["mlp", "cnn", "resnet18"])),
    optimizer=st.builds(Optimizer, st.sampled_from(["sgd", "adamw"]), st.floats(0, 0.99)),
    sharpness=st.builds(Sharpness, st.floats(1e-6, 1), st.integers(1, 50)),
    gpu_memory_fraction=st.none() | st.floats(0.01, 1),
)


@given(configs)
def test_the_flat_form_round_trips(config):
    flat = config.to_flat()

    assert TrainConfig.from_flat(flat) == config
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in flat.values())


@given(configs)
def test_only_a_knee_run_has_knee_keys(config):
    knee_keys = {"explore_fraction", "decay"} & config.to_flat().keys()
    assert bool(knee_keys) == isinstance(config.schedule, Knee)


def test_the_flat_names_are_the_ones_runs_are_filtered_by():
    flat = TrainConfig(epochs=10, batch_size=32).to_flat()

    assert set(flat) == {
        *("epochs", "batch_size", "peak_lr", "seed", "schedule", "explore_fraction", "decay"),
        *("warmup_fraction", "dataset", "data_root", "download", "model", "optimizer"),
        *("momentum", "nesterov", "weight_decay", "sharpness_epsilon", "sharpness_steps"),
        *("sharpness_batches", "hessian", "device"),
    }
    assert flat["schedule"] == "knee"
    assert (flat["explore_fraction"], flat["decay"]) == (0.5, "linear")


def test_tunes_none_for_a_baselines_knee_keys_reads_as_absent():
    run = TrainConfig.from_flat(
        {
            "epochs": 3,
            "batch_size": 8,
            "schedule": "cosine",
            "explore_fraction": None,
            "decay": None,
        }
    )
    assert run.schedule == Baseline("cosine")


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        (
            {"epochs": 3, "batch_size": 8, "learning_rate": 0.1},
            "unknown train config keys: learning_rate",
        ),
        (
            {"epochs": 3, "batch_size": 8, "schedule": "cosine", "explore_fraction": 0.5},
            "schedule cosine has no explore phase: explore_fraction set",
        ),
    ],
)
def test_wrong_keys_are_refused(flat, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_flat(flat)


def test_a_budget_has_no_default():
    with pytest.raises(TypeError):
        TrainConfig()  # type: ignore[call-arg]
