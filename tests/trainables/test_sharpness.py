"""Sharpness and curvature against closed forms: least squares, whose loss is an exact quadratic in
the weights (box maximum by enumerating the box's corners, Hessian 2/N A^T A), and a diagonal
quadratic; plus the promise to leave the model exactly as it was."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables.sharpness import (
    ComputeKeskarSharpness,
    hessian_top_eigenvalue,
    hessian_trace,
    keskar_sharpness,
)

N = 64  # examples in the least-squares problem
MSE = nn.MSELoss()


def _least_squares(fitted: bool) -> tuple[nn.Linear, list, np.ndarray, np.ndarray]:
    """A 5-input linear model (6 parameters) on correlated, off-centre inputs, in float64 so the
    comparisons test the ascent rather than rounding. ``fitted``: at the least-squares minimum,
    where the gradient vanishes and only curvature decides the corner (the hard case); else at
    torch's default initialisation, where the gradient dominates."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    y = x @ rng.normal(size=5) + 0.1 * rng.normal(size=N)
    a = np.hstack([x, np.ones((N, 1))])  # [X, 1]: the bias is the last weight
    torch.manual_seed(0)
    model = nn.Linear(5, 1).double()
    if fitted:
        w = np.linalg.lstsq(a, y, rcond=None)[0]
        with torch.no_grad():
            model.weight.copy_(torch.from_numpy(w[:5]))
            model.bias.copy_(torch.from_numpy(w[5:]))
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)
    batches = [(inputs[i : i + 16], targets[i : i + 16]) for i in range(0, N, 16)]
    return model, batches, a, y


def _weights(model: nn.Linear) -> np.ndarray:
    return np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])


def _box_corner_losses(a: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """The loss at every corner of the box: a convex function's maximum over a box is at one."""
    corners = np.array(list(itertools.product([-1.0, 1.0], repeat=len(w)))) * eps * (abs(w) + 1)
    return ((a @ (w + corners).T - y[:, None]) ** 2).mean(axis=0)


@pytest.mark.parametrize("fitted", [False, True], ids=["init", "fitted"])
@pytest.mark.parametrize("epsilon", [None, 1e-2, 1e-1], ids=["default", "1e-2", "1e-1"])
def test_keskar_finds_the_box_maximum_of_least_squares(fitted, epsilon):
    model, batches, a, y = _least_squares(fitted)
    w = _weights(model)
    eps = 1e-3 if epsilon is None else epsilon  # 1e-3: the documented default
    loss = np.mean((a @ w - y) ** 2)
    exact_max = _box_corner_losses(a, y, w, eps).max()

    kwargs = {} if epsilon is None else {"epsilon": epsilon}
    result = keskar_sharpness(model, MSE, batches, **kwargs)

    assert result.epsilon == eps
    assert result.loss == pytest.approx(loss, rel=1e-9)
    assert result.max_loss <= exact_max * (1 + 1e-9)  # every point visited is in the box
    assert result.max_loss - loss >= 0.98 * (exact_max - loss)
    exact_sharpness = 100 * (exact_max - loss) / (1 + loss)
    assert result.sharpness == pytest.approx(exact_sharpness, rel=0.02)
    assert result.sharpness == pytest.approx(100 * (result.max_loss - loss) / (1 + loss))


def test_hessian_top_eigenvalue_of_least_squares():
    model, batches, a, _ = _least_squares(fitted=True)
    hessian = 2 / N * a.T @ a
    assert hessian_top_eigenvalue(model, MSE, batches) == pytest.approx(
        np.linalg.eigvalsh(hessian)[-1], rel=1e-3
    )


def test_hessian_trace_of_least_squares_within_hutchinson_error():
    model, batches, a, _ = _least_squares(fitted=True)
    hessian = 2 / N * a.T @ a
    samples = 100  # the default
    # Var(z^T H z) for Rademacher z is 2 * sum_{i != j} H_ij^2: allow four standard errors.
    variance = 2 * ((hessian**2).sum() - (np.diag(hessian) ** 2).sum())
    estimate = hessian_trace(model, MSE, batches)
    assert abs(estimate - np.trace(hessian)) <= 4 * math.sqrt(variance / samples)
    assert estimate != hessian_trace(model, MSE, batches, seed=1)  # the seed matters...
    assert estimate == hessian_trace(model, MSE, batches)  # ...and fixes the result


class _Diagonal(nn.Module):
    """Outputs its weights whatever the input: with the loss below, L(w) = sum(c * w^2) / 2."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, n, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.w


@pytest.mark.parametrize(
    ("curvatures", "largest_magnitude"),
    [([4.0, 1.0, 2.0, 0.5], 4.0), ([1.0, -3.0, 2.0, 0.0], -3.0)],
    ids=["convex", "saddle"],
)
def test_curvature_of_a_diagonal_quadratic(curvatures, largest_magnitude):
    c = torch.tensor(curvatures, dtype=torch.float64)

    def loss_fn(outputs, targets):
        return 0.5 * (c * outputs**2).sum()

    model, batches = _Diagonal(len(c)), [(torch.zeros(1), torch.zeros(1))]
    assert hessian_top_eigenvalue(model, loss_fn, batches) == pytest.approx(
        largest_magnitude, rel=1e-3
    )
    # z^T diag(c) z = sum(c) for every sign vector z: Hutchinson is exact here.
    assert hessian_trace(model, loss_fn, batches, samples=3) == pytest.approx(sum(curvatures))


def _busy_model() -> nn.Module:
    """BatchNorm with running statistics, dropout, mixed train/eval flags, a frozen parameter,
    parameters with and without .grad."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )
    model(torch.randn(16, 4)).sum().backward()  # train mode: moves the running statistics
    model[4].bias.grad = None
    model[0].bias.requires_grad_(False)
    model[0].bias.grad = None
    model[3].eval()
    return model


def _classification_batches(sizes=(16, 16, 16)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 4, generator=generator), torch.arange(n) % 3) for n in sizes]


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for old, new in zip(before["grads"], after["grads"], strict=True):
        assert (old is None) == (new is None)
        assert old is None or torch.equal(old, new)


CROSS_ENTROPY = nn.CrossEntropyLoss()
MEASURES = {
    "keskar": lambda model, batches: (
        keskar_sharpness(model, CROSS_ENTROPY, batches, epsilon=0.05, steps=5).sharpness
    ),
    "eigenvalue": lambda model, batches: hessian_top_eigenvalue(
        model, CROSS_ENTROPY, batches, iters=5
    ),
    "trace": lambda model, batches: hessian_trace(model, CROSS_ENTROPY, batches, samples=3),
}


@pytest.mark.parametrize("measure", MEASURES.values(), ids=MEASURES.keys())
def test_model_left_exactly_as_it_was(measure):
    model, batches = _busy_model(), _classification_batches()
    before, rng_state = _snapshot(model), torch.get_rng_state()
    first = measure(model, batches)
    _assert_same(before, _snapshot(model))
    assert torch.equal(rng_state, torch.get_rng_state())
    # Eval mode: dropout off, statistics fixed, so a second call repeats the first exactly.
    assert measure(model, batches) == first


def test_loss_is_the_mean_over_examples_of_unequal_batches():
    model, batches = _busy_model().eval(), _classification_batches(sizes=(10, 3))
    inputs, targets = (torch.cat(parts) for parts in zip(*batches, strict=True))
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(inputs), targets).item()
    assert keskar_sharpness(model, CROSS_ENTROPY, batches, steps=1).loss == pytest.approx(expected)


def test_dataloader_list_and_generator_see_the_same_batches():
    model, batches = _busy_model(), _classification_batches()
    dataset = TensorDataset(*(torch.cat(parts) for parts in zip(*batches, strict=True)))
    pulled = 0

    def stream():
        nonlocal pulled
        for batch in batches:
            pulled += 1
            yield batch

    def sharpness(source, max_batches=None):
        return keskar_sharpness(model, CROSS_ENTROPY, source, 0.05, 3, max_batches)

    assert sharpness(DataLoader(dataset, batch_size=16)) == sharpness(batches)
    assert sharpness(stream(), max_batches=2) == sharpness(batches[:2])
    assert pulled == 2  # read no further than max_batches


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    epsilon=st.floats(1e-5, 0.5),
    steps=st.integers(1, 4),
    hidden=st.integers(1, 6),
)
def test_max_loss_never_below_the_loss(seed, epsilon, steps, hidden):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    result = keskar_sharpness(model, CROSS_ENTROPY, _classification_batches(), epsilon, steps)
    assert result.max_loss >= result.loss
    assert result.sharpness >= 0


def test_seed_interface_matches_the_function_and_leaves_the_optimizer_alone():
    model, batches = _busy_model(), _classification_batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before = repr(optimizer.state_dict())
    seed_style = ComputeKeskarSharpness(
        model, optimizer, CROSS_ENTROPY, batches, epsilon=0.05, max_steps=4
    ).compute_sharpness()
    assert isinstance(seed_style, float)
    assert seed_style == keskar_sharpness(model, CROSS_ENTROPY, batches, 0.05, steps=4).sharpness
    assert repr(optimizer.state_dict()) == before


def test_progress_bar_on_request(capsys):
    model, batches = _busy_model(), _classification_batches()
    keskar_sharpness(model, CROSS_ENTROPY, batches, steps=2, progress=True)
    assert "sharpness" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m, b: keskar_sharpness(m, CROSS_ENTROPY, b, epsilon=0.0), "epsilon"),
        (lambda m, b: keskar_sharpness(m, CROSS_ENTROPY, b, epsilon=-1e-3), "epsilon"),
        (lambda m, b: keskar_sharpness(m, CROSS_ENTROPY, b, steps=0), "steps"),
        (lambda m, b: keskar_sharpness(m, CROSS_ENTROPY, b, max_batches=0), "max_batches"),
        (lambda m, b: keskar_sharpness(m, CROSS_ENTROPY, []), "batches"),
        (lambda m, b: hessian_top_eigenvalue(m, CROSS_ENTROPY, b, iters=0), "iters"),
        (lambda m, b: hessian_top_eigenvalue(m, CROSS_ENTROPY, iter([])), "batches"),
        (lambda m, b: hessian_trace(m, CROSS_ENTROPY, b, samples=0), "samples"),
    ],
)
def test_bad_arguments_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        call(_busy_model(), _classification_batches())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_parameters_device():
    model, batches = _busy_model(), _classification_batches()
    on_cpu = keskar_sharpness(model, CROSS_ENTROPY, batches, 0.05, 5)
    on_gpu = keskar_sharpness(model.cuda(), CROSS_ENTROPY, batches, 0.05, 5)  # batches moved
    assert on_gpu.sharpness == pytest.approx(on_cpu.sharpness, rel=1e-3)
