"""The built-in language model, ``lm``: the Knee as warmup-stable-decay (WSD), with AdamW.

In language-model training the Knee schedule is called warmup-stable-decay: its explore
fraction is the *stable* fraction and ``1 - explore`` the *cooldown*. This loop asks the
platform's question of a small decoder-only Transformer (:mod:`trainables.gpt`) on a text
corpus (:mod:`trainables.corpus`), through the same :class:`~trainables.handle.Trial` handle a
user's own loop gets:

* the budget is ``train.steps`` optimizer steps; every ``train.eval_every`` steps it evaluates
  on fixed validation windows and reports ``train_loss`` (mean since the last report),
  ``val_loss``, ``val_perplexity``, ``val_acc`` (next-token accuracy) and ``lr``, at that step;
* AdamW as LM practitioners run it: ``betas = (train.momentum, train.beta2)``, ``train.eps``,
  gradient-norm clipping (``train.grad_clip``), weight decay on weight matrices only (none on
  biases, norms or embeddings), the study's warmup and an LR floor (``train.min_lr_ratio``);
* at the end: Keskar sharpness of the loss on fixed validation windows, ``test_loss`` and
  ``test_perplexity``; the corpus's digest is a tag of the trial's run.

``trainable.options`` size it: ``layers``, ``heads``, ``width``, ``context``, ``dropout``
(:class:`LMOptions`). Batches are random windows drawn from the trial's own generator on the
device, so a seed reproduces a run bit for bit on a CPU, and a resumed run ends with the same
numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainables.config import TrainConfig
from trainables.corpus import Corpus, eval_windows, load_corpus, random_windows
from trainables.gpt import GPT, build_gpt, parameter_groups
from trainables.handle import Trial
from trainables.plugins import WorkloadError, check_call
from trainables.results import TOKENS_PER_SECOND
from trainables.train import autocast, evaluate

KEY = "trainable.options"
CORPUS_TAG = "corpus_digest"  # the sha256 of the corpus a trial trained on


@dataclass(frozen=True)
class LMOptions:
    """The model and its evaluation, from ``trainable.options``."""

    layers: int = 2
    heads: int = 4
    width: int = 128
    context: int = 128
    dropout: float = 0.0
    level: str = "byte"  # byte | char: how a text corpus becomes tokens
    eval_windows: int = 64  # validation windows of `context` tokens per evaluation (fixed)
    sharpness_windows: int = 16  # validation windows sharpness is measured on (fixed)
    compile: bool = False  # torch.compile the training step's model (pays off on long GPU runs)

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> LMOptions:
        """The options a study gave; an unknown one is a one-line WorkloadError."""
        check_call(cls, KEY, **options)
        return cls(**options)

    def model_options(self) -> dict[str, Any]:
        """What :func:`trainables.gpt.build_gpt` takes of them (the context aside)."""
        return {
            "layers": self.layers,
            "heads": self.heads,
            "width": self.width,
            "dropout": self.dropout,
        }


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy (nats) of logits ``[B, T, V]`` against targets ``[B, T]``."""
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def load(cfg: TrainConfig, device: str | torch.device = "cpu") -> tuple[Corpus, GPT]:
    """The run's corpus on ``device`` and a freshly initialised model for it (seeded by the
    run's seed). Also the driver's check before a study starts."""
    options = LMOptions.of(cfg.trainable.options)
    data = cfg.data
    corpus = load_corpus(
        data.dataset, data.root, options.level, device=device, context=options.context
    )
    torch.manual_seed(cfg.seed)  # model initialisation
    model = build_gpt(corpus.vocab_size, options.context, **options.model_options())
    return corpus, model.to(device)


def fit(config: Mapping[str, Any], trial: Trial) -> dict[str, float]:
    """Train the study's language model for ``trial.steps`` steps, reporting every
    ``trial.eval_every``; returns the final test metrics."""
    cfg, device = trial.config, trial.device
    if cfg.steps is None:
        raise WorkloadError("train.steps: trainable lm counts its budget in optimizer steps")
    options = LMOptions.of(cfg.trainable.options)
    corpus, model = load(cfg, device)
    trial.tag(CORPUS_TAG, corpus.digest)
    opt = cfg.optimizer
    optimizer = torch.optim.AdamW(
        parameter_groups(model, opt.weight_decay),
        lr=cfg.peak_lr,
        betas=(opt.momentum, opt.beta2),
        eps=opt.eps,
    )
    scheduler = trial.schedule(optimizer, total_steps=cfg.steps)
    generator = torch.Generator(device).manual_seed(cfg.seed)  # the windows of every batch
    step, loss_sum, losses = 0, torch.zeros((), device=device), 0
    state = trial.restore()
    if state is not None:  # a retried or resumed trial: continue after its last checkpoint
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"].cpu())
        step = state["step"]

    # The compiled model shares the module's parameters: state dicts and evaluation use the
    # module itself (its keys have no compile prefix).
    forward = torch.compile(model) if options.compile else model
    model.train()
    trained, training_seconds = 0, 0.0  # tokens and seconds of this process's training steps
    while step < cfg.steps:
        started = _now(device)
        inputs, targets = random_windows(corpus.train, options.context, cfg.batch_size, generator)
        with autocast(device):
            loss = lm_loss(forward(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        trained += targets.numel()
        # Summed on the device: reading a loss back every step would stall a GPU.
        loss_sum, losses = loss_sum + loss.detach(), losses + 1
        if step % trial.eval_every and step < cfg.steps:
            training_seconds += _now(device) - started
            continue
        training_seconds += _now(device) - started
        val_loss, val_acc = evaluate(model, windows(corpus.val, options, cfg.batch_size), device)
        metrics = {
            "train_loss": loss_sum.item() / losses,
            "val_loss": val_loss,
            "val_perplexity": _perplexity(val_loss),
            "val_acc": val_acc,
        }
        saved = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "step": step,
        }
        trial.report(metrics, state=saved, step=step)
        loss_sum, losses = torch.zeros((), device=device), 0

    batches = windows(corpus.val, options, cfg.batch_size, options.sharpness_windows)
    trial.sharpness(model, lm_loss, list(batches))
    test_loss, test_acc = evaluate(model, windows(corpus.test, options, cfg.batch_size), device)
    speed = {TOKENS_PER_SECOND: trained / training_seconds} if training_seconds else {}
    return {
        "test_loss": test_loss,
        "test_perplexity": _perplexity(test_loss),
        "test_acc": test_acc,
        **speed,
    }


def windows(
    tokens: Tensor, options: LMOptions, batch_size: int, count: int | None = None
) -> Iterable[tuple[Tensor, Tensor]]:
    """The fixed evaluation windows of a split: the first ``count`` (default
    ``options.eval_windows``) windows of ``options.context`` tokens."""
    return eval_windows(tokens, options.context, batch_size, count or options.eval_windows)


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows past ~709
