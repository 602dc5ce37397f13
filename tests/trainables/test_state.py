"""trainables/state.py: a run's state goes through ``torch.save`` and
``torch.load(weights_only=True)`` as a plain dict and comes back equal; a dict that is not a
training state is named by what it lacks."""

import io

import pytest
import torch

from trainables.state import STATE_KEYS, TrainState


def a_state() -> TrainState:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return TrainState(
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler={"last_epoch": 4},
        generator=torch.Generator().manual_seed(7).get_state(),
        torch_rng=torch.get_rng_state(),
        epoch=2,
        history=({"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.75}),
        trial_seconds=1.25,
    )


def test_the_state_round_trips_through_a_weights_only_load():
    state = a_state()
    buffer = io.BytesIO()
    torch.save(state.to_dict(), buffer)
    buffer.seek(0)

    back = TrainState.from_dict(torch.load(buffer, weights_only=True))

    assert (back.epoch, back.trial_seconds, back.scheduler) == (2, 1.25, {"last_epoch": 4})
    assert back.history == ({"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.75})
    assert torch.equal(back.generator, state.generator)
    assert torch.equal(back.torch_rng, state.torch_rng)
    assert back.model.keys() == {"weight", "bias"}
    assert torch.equal(back.model["weight"], state.model["weight"])
    assert back.optimizer["param_groups"][0]["momentum"] == 0.9


def test_the_dict_form_has_exactly_the_state_keys_and_a_list_history():
    flat = a_state().to_dict()

    fields = {"model", "optimizer", "scheduler", "generator", "torch_rng", "epoch", "history"}
    assert set(flat) == STATE_KEYS == {*fields, "trial_seconds"}
    assert flat["history"] == [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.75}]


def test_a_dict_lacking_keys_is_named_by_them_in_order():
    flat = a_state().to_dict()
    del flat["torch_rng"], flat["epoch"]

    with pytest.raises(ValueError, match=r"not a training state: no epoch, torch_rng$"):
        TrainState.from_dict(flat)
