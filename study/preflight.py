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
from pathlib import Path

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


def check_workload(cfg: StudyConfig) -> None:
    """Try the study's workload as its first trial would; WorkloadCheckError if it cannot work."""
    find_local_modules()
    try:
        resolve_trainable(cfg.trainable.fit)
        run = cfg.trial_config({k: v[0] for k, v in cfg.swept().items()} | {"schedule": "knee"})
        if cfg.trainable.fit == "lm":
            _check_language_model(run)
            return
        if run.data is None:
            return
        if run.data.download:  # the trials fetch it where they run: not the driver's business
            check_call(resolve(run.data.dataset, DATASETS, DATA_KEY), DATA_KEY, **_download(run))
            return
        data = load_dataset(run)
        if run.model is not None:
            torch.manual_seed(0)
            shape, classes = data.input_shape, data.num_classes
            model = build_model(run.model.name, shape, classes, run.model.options)
            check_output(model, normalise(data.train.inputs[:2], data), classes, run.model.name)
    except WorkloadError as error:
        raise WorkloadCheckError(str(error)) from None


def _check_language_model(run: TrainConfig) -> None:
    """The corpus loads and the model runs a window of it."""
    from trainables import lm  # the Transformer: only for a study of it
    from trainables.corpus import eval_windows

    corpus, model = lm.load(run)
    context = lm.LMOptions.of(run.trainable.options).context
    inputs, _ = next(iter(eval_windows(corpus.val, context, 1, 1)))
    with torch.no_grad():
        model(inputs)


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
