"""Target 4: our Keskar sharpness vs Keskar's L-BFGS-B and the seed's projected optimizer ascent.

One digits MLP, trained here for a few seconds; the same batches (the study's: the first
``--batches`` training batches of ``--batch-size``, in order, unaugmented) and the same box
``|delta_i| <= eps (|w_i| + 1)`` for all three:

- ours: ``trainables.sharpness.keskar_sharpness`` (``--steps`` ascent steps, the study's 20);
- Keskar et al. (2017): ``scipy.optimize.minimize(method="L-BFGS-B")`` of minus the loss over
  the flattened parameters with the box as bounds, from the weights, run to scipy's own
  convergence (the reference), and with ``maxiter=10`` as their released code did;
- the seed (Iyer et al.): 1000 steps of the training optimizer (SGD, momentum 0.9, weight decay
  5e-4, lr 1e-3) on minus the loss, one batch a step, in train mode, projected onto the box after
  each step; its figure is the loss at the last point.

Every loss is the mean over all the batches, in eval mode. Target: ours finds >= 98% of the
L-BFGS-B loss increase in <= 1/5 of its time. The three are timed interleaved, ``--rounds``
times; the times are medians.

    .venv/bin/python benchmarks/sharpness.py [--quick]
"""

from __future__ import annotations

import argparse
from itertools import cycle, islice

import numpy as np
import scipy.optimize
import torch
from measure import machine, side_by_side, verdict
from torch import nn

from trainables.data import eval_batches, load_data, train_batches
from trainables.models import build_model
from trainables.sharpness import keskar_sharpness

VALUE_TARGET, TIME_TARGET = 0.98, 1 / 5


def trained_mlp(epochs: int) -> tuple[nn.Module, object]:
    """A digits MLP trained like the default study's trials (SGD momentum, batch 32)."""
    data = load_data("digits")
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for inputs, targets in train_batches(data, 32, generator):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
    return model, data


def mean_loss(model: nn.Module, batches: list) -> float:
    """The sharpness loss: mean cross-entropy over all examples, eval mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        total = sum(nn.functional.cross_entropy(model(x), y, reduction="sum") for x, y in batches)
    model.train(was_training)
    return float(total) / sum(len(y) for _, y in batches)


def lbfgsb_max_loss(model: nn.Module, batches: list, epsilon: float, maxiter: int | None) -> float:
    """Keskar's method: L-BFGS-B on -L over the flattened parameters, bounds = the box."""
    params = list(model.parameters())
    origin = torch.nn.utils.parameters_to_vector(params).detach().clone()
    radius = epsilon * (origin.abs() + 1)
    bounds = np.stack([(origin - radius).double().numpy(), (origin + radius).double().numpy()], 1)
    examples = sum(len(y) for _, y in batches)
    model.eval()
    best = -np.inf

    def negative_loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.from_numpy(x).float(), params)
        model.zero_grad(set_to_none=True)
        loss = sum(nn.functional.cross_entropy(model(x), y, reduction="sum") for x, y in batches)
        loss = loss / examples
        loss.backward()
        gradient = torch.nn.utils.parameters_to_vector([p.grad for p in params])
        best = max(best, loss.item())
        return -loss.item(), -gradient.double().numpy()

    options = {} if maxiter is None else {"maxiter": maxiter}
    scipy.optimize.minimize(
        negative_loss,
        origin.double().numpy(),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options=options,
    )
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(origin, params)
    model.zero_grad(set_to_none=True)
    return best


def seed_last_loss(model: nn.Module, batches: list, epsilon: float, steps: int = 1000) -> float:
    """The seed's algorithm: the training optimizer ascends, projected to the box; last point."""
    origin = {k: v.detach().clone() for k, v in model.state_dict().items()}
    radius = {k: epsilon * (v.abs() + 1) for k, v in origin.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    model.train()
    for inputs, targets in islice(cycle(batches), steps):
        optimizer.zero_grad()
        (-nn.functional.cross_entropy(model(inputs), targets)).backward()
        optimizer.step()
        with torch.no_grad():
            for key, value in model.state_dict().items():
                value.copy_(
                    torch.clamp(value, origin[key] - radius[key], origin[key] + radius[key])
                )
    loss = mean_loss(model, batches)
    model.load_state_dict(origin)
    model.zero_grad(set_to_none=True)
    return loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 10 training epochs")
    parser.add_argument("--epsilon", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=20, help="our ascent steps (study: 20)")
    parser.add_argument("--batches", type=int, default=4, help="batches (study: 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="(study: 32)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs of the MLP")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs = 1, 10
    torch.set_num_threads(1)  # as a trial runs it (cpus_per_trial: 1)

    print(machine())
    model, data = trained_mlp(args.epochs)
    batches = list(islice(eval_batches(data, "train", args.batch_size), args.batches))
    loss = mean_loss(model, batches)
    print(
        f"digits MLP, {args.epochs} epochs; {args.batches} batches of {args.batch_size}, "
        f"eps {args.epsilon:g}, loss at the weights {loss:.5f}"
    )
    contenders = {
        "ours": lambda: (
            keskar_sharpness(
                model, nn.CrossEntropyLoss(), batches, epsilon=args.epsilon, steps=args.steps
            ).max_loss
        ),
        "L-BFGS-B": lambda: lbfgsb_max_loss(model, batches, args.epsilon, None),
        "L-BFGS-B maxiter=10": lambda: lbfgsb_max_loss(model, batches, args.epsilon, 10),
        "seed 1000 steps": lambda: seed_last_loss(model, batches, args.epsilon),
    }
    values: dict[str, float] = {}  # each method's max loss, kept as it is timed
    timed = side_by_side(
        [
            (name, lambda name=name, find=find: values.__setitem__(name, find()))
            for name, find in contenders.items()
        ],
        args.rounds,
    )
    print(f"  {'method':22} {'max loss':>10} {'increase':>10} {'sharpness %':>12} {'time s':>8}")
    for name in contenders:
        increase = values[name] - loss
        sharpness = 100 * increase / (1 + loss)
        print(
            f"  {name:22} {values[name]:10.5f} {increase:10.5f} {sharpness:12.4f} "
            f"{timed.median(name):8.3f}"
        )
    reference = values["L-BFGS-B"] - loss
    found = (values["ours"] - loss) / reference
    time_share = timed.median("ours") / timed.median("L-BFGS-B")
    print(f"  ours finds {found:.2%} of the L-BFGS-B increase in {time_share:.2%} of its time")
    ok = verdict("sharpness, share of the L-BFGS-B increase found", found, VALUE_TARGET, unit="")
    ok &= verdict("sharpness, time vs L-BFGS-B", time_share, TIME_TARGET, unit="", higher=False)
    print(f"sharpness overall: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
