"""trainables/config.py, a run's config: the flat form (Tune's params, MLflow's) round-trips,
with the data, model and loop options and with a user's loop that has no dataset or model; a
baseline has no Knee keys, and wrong keys are refused."""

import dataclasses

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
    Trainable,
    TrainConfig,
)
from trainables.schedules import DECAY_SHAPES, SCHEDULE_NAMES

schedules = st.one_of(
    st.builds(Knee, st.floats(0, 1), st.sampled_from(DECAY_SHAPES)),
    st.builds(Baseline, st.sampled_from([n for n in SCHEDULE_NAMES if n != "knee"])),
)
# Options as a study gives them: identifier names, scalar values (a flat param each).
options = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True),
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    max_size=4,
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
        Data,
        st.sampled_from(["digits", "cifar10", "mypkg.data:load"]),
        st.none() | st.text(),
        st.booleans(),
        st.floats(0.01, 0.5),
        options,
    ),
    model=st.builds(Model, st.sampled_from(["mlp", "cnn", "resnet18", "mypkg:net"]), options),
    trainable=st.builds(Trainable, st.sampled_from(["classifier", "mypkg.train:fit"]), options),
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
        *("warmup_fraction", "min_lr_ratio", "dataset", "data_root", "download"),
        *("val_fraction", "model", "trainable", "optimizer", "momentum", "nesterov"),
        *("weight_decay", "beta2", "eps", "grad_clip"),
        *("sharpness_epsilon", "sharpness_steps", "sharpness_batches", "hessian", "device"),
    }
    assert flat["schedule"] == "knee"
    assert (flat["explore_fraction"], flat["decay"]) == (0.5, "linear")
    assert (flat["trainable"], flat["val_fraction"]) == ("classifier", 0.1)


def test_a_budget_in_steps_travels_as_steps_and_is_one_or_the_other():
    config = TrainConfig(batch_size=8, steps=600, eval_every=50, warmup_steps=30)
    flat = config.to_flat()

    assert (flat["steps"], flat["eval_every"], flat["warmup_steps"]) == (600, 50, 30)
    assert "epochs" not in flat
    assert TrainConfig.from_flat(flat) == config
    assert (config.budget, config.budget_unit, config.warmup(600)) == (600, "steps", 0.05)
    assert TrainConfig(batch_size=8, steps=600).evaluations_every == 30  # a twentieth
    for both_or_neither in ({"epochs": 2, "steps": 10}, {}):
        with pytest.raises(ValueError, match="epochs or steps, exactly one"):
            TrainConfig(batch_size=8, **both_or_neither)


def test_options_travel_as_one_flat_key_each_under_their_section():
    config = TrainConfig(
        epochs=2,
        batch_size=4,
        data=Data("mypkg.data:load", options={"noise": 0.25, "size": 100}),
        model=Model("mlp", {"width": 64}),
        trainable=Trainable("mypkg.train:fit", {"context": 512, "tokenizer": "bpe"}),
    )
    flat = config.to_flat()

    options = {k: v for k, v in flat.items() if "." in k}
    assert options == {
        "data.noise": 0.25,
        "data.size": 100,
        "model.width": 64,
        "trainable.context": 512,
        "trainable.tokenizer": "bpe",
    }
    assert (flat["dataset"], flat["model"], flat["trainable"]) == (
        "mypkg.data:load",
        "mlp",
        "mypkg.train:fit",
    )
    back = TrainConfig.from_flat(flat)
    assert back == config
    assert back.data.options == {"noise": 0.25, "size": 100}
    assert back.model.options == {"width": 64}
    assert back.trainable.options == {"context": 512, "tokenizer": "bpe"}


@given(configs, options)
def test_a_user_loop_without_a_dataset_or_model_round_trips_without_their_keys(config, own):
    config = dataclasses.replace(
        config, data=None, model=None, trainable=Trainable("mypkg.train:fit", own)
    )
    flat = config.to_flat()

    data_and_model = {"dataset", "data_root", "download", "val_fraction", "model"}
    assert not data_and_model & flat.keys()
    assert not [k for k in flat if k.startswith(("data.", "model."))]
    assert {k for k in flat if "." in k} == {f"trainable.{k}" for k in own}
    back = TrainConfig.from_flat(flat)
    assert back == config
    assert (back.data, back.model) == (None, None)


def test_the_classifier_always_has_a_dataset_and_a_model():
    run = TrainConfig.from_flat({"epochs": 1, "batch_size": 2})
    assert (run.data, run.model, run.trainable) == (Data(), Model(), Trainable())
    user = TrainConfig.from_flat({"epochs": 1, "batch_size": 2, "trainable": "m:fit"})
    assert (user.data, user.model) == (None, None)
    given_data = TrainConfig.from_flat(
        {"epochs": 1, "batch_size": 2, "trainable": "m:fit", "dataset": "digits"}
    )
    assert (given_data.data, given_data.model) == (Data("digits"), None)


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
        (
            {"epochs": 3, "batch_size": 8, "optimizer.beta2": 0.99},
            "unknown train config keys: optimizer.beta2",
        ),
        (
            {"epochs": 3, "batch_size": 8, "sharpness.radius": 0.1},
            "unknown train config keys: sharpness.radius",
        ),
    ],
)
def test_wrong_keys_are_refused(flat, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_flat(flat)


def test_a_budget_has_no_default():
    with pytest.raises(TypeError):
        TrainConfig()  # type: ignore[call-arg]
