"""The built-in training loop, ``classifier``: data on the device, the schedule stepped per
optimizer step, then sharpness.

``train(config, on_epoch, state)`` is everything a trial of it does. It knows nothing of Ray or
MLflow: the caller gets every epoch's metrics and a resumable state through ``on_epoch`` and
decides what to report and where to checkpoint. :func:`fit` is the same loop as a study runs
it, through the :class:`~trainables.handle.Trial` handle a user's own loop gets too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from trainables.config import OPTIMIZER_NAMES, TrainConfig
from trainables.data import Dataset, eval_batches, load_data, train_batches
from trainables.handle import Trial, measure_sharpness, resolve_device, run_schedule
from trainables.models import build_model
from trainables.results import FINAL_METRICS, IMAGES_PER_SECOND
from trainables.state import TrainState

# channels_last feeds tensor cores without layout shuffles, and oneDNN's CPU convolutions prefer
# it too (measured: the cnn's training step 1.4x faster on one CPU thread); no-op for the MLP.
MEMORY_FORMAT = torch.channels_last


EpochCallback = Callable[[dict[str, float], dict[str, Any]], None]


def train(
    config: TrainConfig | Mapping[str, Any],
    on_epoch: EpochCallback | None = None,
    state: TrainState | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one model with one schedule and return its final metrics.

    ``config`` is a :class:`~trainables.config.TrainConfig`, or its flat form (the keys a
    study's runs carry: :meth:`~trainables.config.TrainConfig.from_flat`).

    ``on_epoch(metrics, state)`` is called after every epoch with ``epoch`` and the
    :data:`~trainables.results.EPOCH_METRICS` (accuracies are fractions, ``lr`` the LR of the
    epoch's last step) and a resumable ``state`` (:meth:`TrainState.to_dict`: a dict
    ``torch.save`` can write; it references the live model, so save it before returning).
    Passing such a state back as ``state`` continues the run from the epoch after it, with the
    same final numbers as an uninterrupted run.

    The result holds the last epoch's metrics plus ``sharpness`` (Keskar, in percent),
    ``trial_seconds`` (training, evaluation and sharpness compute only; not time spent in
    ``on_epoch``), ``diverged`` and, when ``hessian`` is set, ``hessian_top_eigenvalue`` and
    ``hessian_trace``. A run whose loss becomes NaN or infinite stops at that epoch with
    ``diverged: True``, the last finite epoch's metrics and no sharpness.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_flat(config)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and cfg.gpu_memory_fraction is not None:
        torch.cuda.set_per_process_memory_fraction(cfg.gpu_memory_fraction, device)

    data = load_dataset(cfg, device)
    torch.manual_seed(cfg.seed)  # model initialisation
    model = build_model(cfg.model.name, data.input_shape, data.num_classes, cfg.model.options)
    model = model.to(device, memory_format=MEMORY_FORMAT)
    optimizer = _build_optimizer(cfg, model)
    steps_per_epoch = math.ceil(data.num_train / cfg.batch_size)
    scheduler = run_schedule(cfg, optimizer, cfg.epochs * steps_per_epoch)
    generator = torch.Generator(device).manual_seed(cfg.seed)  # batch order and augmentation

    epoch, history, seconds = 0, [], 0.0
    if state is not None:
        resumed = state if isinstance(state, TrainState) else TrainState.from_dict(state)
        model.load_state_dict(resumed.model)
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        generator.set_state(resumed.generator.cpu())
        torch.set_rng_state(resumed.torch_rng)
        epoch, history, seconds = resumed.epoch, list(resumed.history), resumed.trial_seconds

    diverged = False
    trained, training_seconds = 0, 0.0  # this process's training steps alone: the throughput
    while epoch < cfg.epochs and not diverged:
        started = _now(device)
        batches = train_batches(data, cfg.batch_size, generator)
        train_loss, train_acc, lr = _train_epoch(
            model, optimizer, scheduler, batches, device, cfg.optimizer.grad_clip
        )
        training_seconds += _now(device) - started
        trained += data.num_train
        val_loss, val_acc = evaluate(model, eval_batches(data, "val"), device)
        test_loss, test_acc = evaluate(model, eval_batches(data, "test"), device)
        seconds += _now(device) - started
        diverged = not all(map(math.isfinite, (train_loss, val_loss, test_loss)))
        if diverged:
            break
        epoch += 1
        metrics = dict(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            lr=lr,
        )
        history.append(metrics)
        if on_epoch is not None:
            resumable = TrainState(
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                generator=generator.get_state(),
                torch_rng=torch.get_rng_state(),
                epoch=epoch,
                history=tuple(history),
                trial_seconds=seconds,
            )
            on_epoch(metrics, resumable.to_dict())

    result: dict[str, Any] = {**(history[-1] if history else {"epoch": 0}), "diverged": diverged}
    if training_seconds > 0:
        result[IMAGES_PER_SECOND] = trained / training_seconds
    if not diverged:
        started = _now(device)
        result |= measure_curvature(model, data, cfg)
        seconds += _now(device) - started
    return result | {"trial_seconds": seconds}


def fit(config: Mapping[str, Any], trial: Trial) -> dict[str, Any]:
    """The built-in loop as a study runs it: :func:`train` reporting every epoch, with its
    state, through ``trial``; returns the final metrics (sharpness, compute seconds)."""

    def on_epoch(metrics: dict[str, float], state: dict[str, Any]) -> None:
        trial.report(metrics, state=state)

    result = train(trial.config, on_epoch=on_epoch, state=trial.restore())
    trial.diverged = result["diverged"]
    return {k: v for k, v in result.items() if k in FINAL_METRICS or k == IMAGES_PER_SECOND}


def load_dataset(cfg: TrainConfig, device: str | torch.device = "cpu") -> Dataset:
    """The run's dataset (``cfg.data``) on ``device``."""
    data = cfg.data
    return load_data(
        data.dataset,
        data.options,
        root=data.root,
        download=data.download,
        val_fraction=data.val_fraction,
        device=device,
    )


def measure_curvature(model: nn.Module, data: Dataset, cfg: TrainConfig) -> dict[str, float]:
    """Keskar sharpness (and Hessian metrics when asked) on a fixed set of training batches."""
    batches = eval_batches(data, "train", cfg.batch_size)
    return measure_sharpness(model, nn.CrossEntropyLoss(), batches, cfg.sharpness)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of ``model`` in eval mode over ``batches``:
    per example for logits ``[N, K]``, per position for a language model's ``[B, T, V]``."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for inputs, targets in batches:
        with autocast(device):
            logits = model(_laid_out(inputs))
        logits, targets = logits.flatten(0, -2), targets.flatten()
        loss_sum += nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        correct += (logits.argmax(dim=1) == targets).sum()
        count += len(targets)
    model.train(was_training)
    return loss_sum.item() / count, correct.item() / count


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: torch.device,
    grad_clip: float | None = None,
) -> tuple[float, float, float]:
    """One pass over the training batches: mean loss, accuracy, and the LR of the last step;
    gradients clipped to a global norm of ``grad_clip`` when given."""
    model.train()
    # Sums stay on the device: reading a loss back every step would stall a GPU.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count, lr = 0, 0.0
    for inputs, targets in batches:
        with autocast(device):
            logits = model(_laid_out(inputs))
            loss = nn.functional.cross_entropy(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(targets)
        correct += (logits.argmax(dim=1) == targets).sum()
        count += len(targets)
    return loss_sum.item() / count, correct.item() / count, lr


def _build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    opt = cfg.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=cfg.peak_lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            weight_decay=opt.weight_decay,
        )
    if opt.name == "adamw":
        return torch.optim.AdamW(
            model.parameters(),
            lr=cfg.peak_lr,
            betas=(opt.momentum, opt.beta2),
            eps=opt.eps,
            weight_decay=opt.weight_decay,
        )
    raise ValueError(f"optimizer must be one of {OPTIMIZER_NAMES}, got {opt.name!r}")


def _laid_out(inputs: Tensor) -> Tensor:
    """Image batches in the memory format the model's weights use; other inputs as they are."""
    return inputs.contiguous(memory_format=MEMORY_FORMAT) if inputs.dim() == 4 else inputs


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores); nothing on a CPU, where it does not pay."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
