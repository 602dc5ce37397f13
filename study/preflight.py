"""The study's workload, tried in the driver before Ray starts: a problem that would make every
trial fail (a module that does not import, a callable that takes other arguments, data of the
wrong shape, dtype or labels, a model whose output is not one column per class) is one line
naming its key, and nothing is launched.

The built-in classifier's dataset is loaded once, on the CPU (unless ``data.download`` leaves
fetching it to the trials), and its model run on two training examples; the language model's
corpus is loaded and its Transformer run on one window; a user's loop is
imported and checked to take ``(config, trial)`` (what it does with them only its trials can
tell: they fail at once, not retried, with the reason in their run).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from study.config import StudyConfig
from study.errors import BadInput
from study.trial import resolve_trainable
from trainables.config import TrainConfig
from trainables.data import DATASETS, normalise
from trainables.data import KEY as DATA_KEY
from trainables.models import build_model, check_output
from trainables.plugins import WorkloadError, check_call, resolve
from trainables.train import load_dataset


class WorkloadCheckError(BadInput):
    """A dataset, model or training loop every trial would fail on."""


@dataclass(frozen=True)
class TrainedOn:
    """What a study's trials train on, as the driver found it: an MLflow dataset input of every
    trial's run (name, sha256 digest, where it came from, its sizes)."""

    name: str
    digest: str
    source: str
    profile: dict[str, Any]


def check_workload(cfg: StudyConfig) -> TrainedOn | None:
    """Try the study's workload as its first trial would; WorkloadCheckError if it cannot work.
    Returns what the trials train on when the driver loaded it (None: a loop of one's own
    without a data section, or data the trials download)."""
    find_local_modules()
    try:
        resolve_trainable(cfg.trainable.fit)
        run = cfg.trial_config({k: v[0] for k, v in cfg.swept().items()} | {"schedule": "knee"})
        if cfg.trainable.fit == "lm":
            return _check_language_model(run)
        if run.data is None:
            return None
        if run.data.download:  # the trials fetch it where they run: not the driver's business
            check_call(resolve(run.data.dataset, DATASETS, DATA_KEY), DATA_KEY, **_download(run))
            return None
        data = load_dataset(run)
        if run.model is not None:
            torch.manual_seed(0)
            shape, classes = data.input_shape, data.num_classes
            model = build_model(run.model.name, shape, classes, run.model.options)
            check_output(model, normalise(data.train.inputs[:2], data), classes, run.model.name)
    except WorkloadError as error:
        raise WorkloadCheckError(str(error)) from None
    sizes = {s: len(data.split(s)) for s in ("train", "val", "test")}
    profile = {**sizes, "num_classes": data.num_classes, "input_shape": list(data.input_shape)}
    source = run.data.root or run.data.dataset
    return TrainedOn(_dataset_name(run), data.digest(), source, profile)


def _dataset_name(run: TrainConfig) -> str:
    options = ",".join(f"{k}={v}" for k, v in sorted(run.data.options.items()))
    return f"{run.data.dataset}({options})" if options else run.data.dataset


def _check_language_model(run: TrainConfig) -> TrainedOn:
    """The corpus loads and the model runs a window of it."""
    from trainables import lm  # the Transformer: only for a study of it
    from trainables.corpus import eval_windows

    corpus, model = lm.load(run)
    options = lm.LMOptions.of(run.trainable.options)
    inputs, _ = next(iter(eval_windows(corpus.val, options.context, 1, 1)))
    with torch.no_grad():
        model(inputs)
    sizes = {s: len(getattr(corpus, s)) for s in ("train", "val", "test")}
    profile = {**sizes, "vocab_size": corpus.vocab_size, "level": options.level}
    return TrainedOn(run.data.dataset, corpus.digest, corpus.source, profile)


def _download(run: TrainConfig) -> dict:
    root = {"root": run.data.root} if run.data.root is not None else {}
    return {**run.data.options, **root, "download": True}


def find_local_modules() -> None:
    """A local study finds modules in the current directory, as ``python -m`` would: here in
    the driver, and in its trials (the workers of a Ray the driver starts inherit its
    PYTHONPATH)."""
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *filter(None, paths)])
