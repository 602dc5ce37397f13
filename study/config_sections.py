"""The sections of a study YAML (data, model, train, sweep, sharpness, resources, tune), each a
frozen pydantic model that validates its keys; :class:`study.config.StudyConfig` holds them and
adds the rules across sections. A run's defaults are trainables.config's: taken here, never
written a second time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainables import config as run
from trainables.config import OPTIMIZER_NAMES, Knee, TrainConfig
from trainables.corpus import CORPUS_NAMES
from trainables.data import CIFAR_FOLDERS, DATASET_NAMES
from trainables.handle import TRAINABLES
from trainables.models import MODEL_NAMES
from trainables.results import lower_is_better, selection_metric
from trainables.schedules import DECAY_SHAPES, SCHEDULE_NAMES

_OPTIMIZER, _SHARPNESS, _KNEE = run.Optimizer(), run.Sharpness(), Knee()
_DATA, _TRAINABLE = run.Data(), run.Trainable()


class Section(BaseModel):
    # strict: "3" is not 3 and 1.0 is not an int; an int is still a valid float.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Data(Section):
    """A built-in dataset (digits, cifar10, cifar100, synthetic; for the language model a
    corpus: pydoc, text, bin) or a user's loader, ``"module:callable"``, called with
    ``options`` (see :mod:`trainables.data`, :mod:`trainables.corpus`)."""

    dataset: str
    options: dict[str, Any] = {}
    val_fraction: float = Field(_DATA.val_fraction, gt=0, lt=1)
    download: bool = False
    # Relative to the working directory (what a CLI user expects); stored absolute.
    root: Path | None = Field(None, strict=False, validate_default=True)

    @field_validator("root")
    @classmethod
    def _cifar_files_present(cls, root: Path | None, info: ValidationInfo) -> Path | None:
        root = root.expanduser().resolve() if root is not None else None
        dataset = info.data.get("dataset")
        folder = CIFAR_FOLDERS.get(dataset)
        if folder is None:
            return root
        if root is None:
            raise ValueError(
                f"{dataset} needs the folder that holds {folder}/ (or one to download to)"
            )
        if info.data.get("download") or not (info.context or {}).get("check_files", True):
            return root
        if not root.is_dir():
            raise ValueError(f"{root} is not a directory (data.download: true fetches {dataset})")
        if not (root / folder).is_dir():
            raise ValueError(
                f"{root} has no {folder}/ inside (data.download: true fetches {dataset})"
            )
        return root

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str) -> str:
        return _plugin_name(dataset, (*DATASET_NAMES, *CORPUS_NAMES))


class Model(Section):
    """A built-in model (mlp, cnn, resnet18) or a user's ``"module:callable"``, called with
    ``input_shape``, ``num_classes`` and ``options`` (see :mod:`trainables.models`)."""

    name: str
    options: dict[str, Any] = {}

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return _plugin_name(name, MODEL_NAMES)


class Trainable(Section):
    """The training loop: the built-in ``classifier`` or a user's ``"module:callable"`` taking
    ``(config, trial)`` (see :mod:`trainables.handle`); ``options`` are the loop's own."""

    fit: str = _TRAINABLE.fit
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, given: Any) -> Any:
        return {"fit": given} if isinstance(given, str) else given  # `trainable: mypkg.train:fit`

    @field_validator("fit")
    @classmethod
    def _known_loop(cls, fit: str) -> str:
        return _plugin_name(fit, tuple(TRAINABLES))

    @property
    def builtin(self) -> bool:
        return self.fit in TRAINABLES


class Objective(Section):
    """The metric a study is about: what ASHA and Optuna optimise (on the validation split),
    what the verdict compares and what its margin is measured in. ``mode`` defaults to the
    metric's nature: min for losses, perplexity and sharpness, max otherwise."""

    metric: str = "test_acc"
    mode: Literal["max", "min"] | None = Field(None, validate_default=True)
    # How much better a rival may be and still count as no better, in the metric's own units
    # (accuracies are fractions: 0.002 = 0.2 points; a loss in nats).
    margin: PositiveFloat = 0.002

    @field_validator("mode")
    @classmethod
    def _mode_of_metric(cls, mode: str | None, info: ValidationInfo) -> str:
        return mode or ("min" if lower_is_better(info.data.get("metric", "")) else "max")

    @property
    def selection_metric(self) -> str:
        """What picks among trials (ASHA, Optuna): the validation counterpart of a test
        metric, so the test split is only ever reported; any other metric itself."""
        return selection_metric(self.metric)


def _plugin_name(name: str, builtins: tuple[str, ...]) -> str:
    module, colon, attribute = name.partition(":")
    if name in builtins or (colon and module and attribute):
        return name
    raise ValueError(f"a built-in ({', '.join(builtins)}) or 'module:callable' (e.g. mypkg.x:make)")


class Train(Section):
    """How each trial trains. The budget is ``epochs`` (the classifier's) or ``steps``
    (optimizer steps: the language model's), exactly one of them."""

    epochs: PositiveInt | None = None
    steps: PositiveInt | None = None
    eval_every: PositiveInt | None = None  # steps between evaluations; None: a twentieth
    batch_size: PositiveInt
    optimizer: Literal[OPTIMIZER_NAMES] = _OPTIMIZER.name
    momentum: float = Field(_OPTIMIZER.momentum, ge=0, lt=1)
    nesterov: bool = _OPTIMIZER.nesterov
    weight_decay: float = Field(_OPTIMIZER.weight_decay, ge=0)
    beta2: float = Field(_OPTIMIZER.beta2, gt=0, lt=1)
    eps: PositiveFloat = _OPTIMIZER.eps
    grad_clip: PositiveFloat | None = _OPTIMIZER.grad_clip
    warmup_fraction: float = Field(TrainConfig.warmup_fraction, ge=0, le=1)
    warmup_steps: NonNegativeInt = TrainConfig.warmup_steps
    min_lr_ratio: float = Field(TrainConfig.min_lr_ratio, ge=0, lt=1)
    decay: Literal[DECAY_SHAPES] = _KNEE.decay
    device: str = TrainConfig.device

    @model_validator(mode="after")
    def _one_budget(self) -> Train:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(
                "train.epochs: give the budget as train.epochs or train.steps, exactly one; got "
                f"epochs={self.epochs}, steps={self.steps}"
            )
        if self.eval_every is not None and self.steps is None:
            raise ValueError("train.eval_every: counts steps of a train.steps budget")
        if self.warmup_steps and self.warmup_fraction:
            raise ValueError(
                "train.warmup_steps: the warmup is train.warmup_fraction or train.warmup_steps, "
                f"not both; got {self.warmup_fraction} and {self.warmup_steps}"
            )
        return self

    @property
    def budget_key(self) -> str:
        return "epochs" if self.epochs is not None else "steps"

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("must be auto (cuda if there is one), cpu, cuda or cuda:N")
        return device

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, nesterov: bool, info: ValidationInfo) -> bool:
        # torch's SGD refuses it in every trial, after the study has started.
        if nesterov and info.data.get("momentum") == 0:
            raise ValueError("needs train.momentum > 0 (Nesterov momentum)")
        return nesterov


class Sweep(Section):
    """The grid: every combination of these values is one trial, except that a baseline schedule
    runs once per combination of the axes it uses (explore fraction and decay are Knee's own).

    With ``tune.search: optuna``, ``explore_fraction`` and ``peak_lr`` are each the ``[low,
    high]`` range searched (uniform and log-uniform) and every suggestion runs every seed.
    """

    explore_fraction: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    peak_lr: list[PositiveFloat] = Field(min_length=1)
    seed: list[NonNegativeInt] = Field(min_length=1)
    schedule: list[Literal[SCHEDULE_NAMES]] = Field(["knee"], min_length=1)
    epochs: list[PositiveInt] | None = Field(None, min_length=1)  # budgets; None: train.epochs
    steps: list[PositiveInt] | None = Field(None, min_length=1)  # budgets; None: train.steps
    decay: list[Literal[DECAY_SHAPES]] | None = Field(None, min_length=1)  # None: train.decay

    @field_validator("explore_fraction", "peak_lr", "seed", "schedule", "epochs", "steps", "decay")
    @classmethod
    def _distinct(cls, values: list | None) -> list | None:
        # A repeated value would silently run the same trial twice and weigh it double.
        if values is not None and len(set(values)) != len(values):
            raise ValueError("values must be distinct")
        return values


class Sharpness(Section):
    epsilon: PositiveFloat = _SHARPNESS.epsilon
    steps: PositiveInt = _SHARPNESS.steps
    batches: PositiveInt = _SHARPNESS.batches
    hessian: bool = _SHARPNESS.hessian


class Resources(Section):
    cpus_per_trial: PositiveFloat = 1.0
    gpus_per_trial: float = Field(0.0, ge=0)
    max_concurrent: PositiveInt | None = None  # None: as many trials as the cluster fits
    # The cluster grows for pending trials (Ray's autoscaler, KubeRay autoscaling): what is up at
    # start neither refuses a trial nor caps how many run at once.
    autoscaling: bool = False

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_or_share(cls, gpus: float) -> float:
        if gpus > 1 and not gpus.is_integer():
            raise ValueError("must be a fraction of one GPU (<= 1) or a whole number of GPUs")
        return gpus


class Tune(Section):
    search: Literal["grid", "optuna"] = "grid"
    num_samples: PositiveInt | None = None  # optuna: suggestions, each run over every seed
    scheduler: Literal["fifo", "asha"] = "fifo"
    grace_period: PositiveInt | None = None  # epochs (steps); required with asha
    max_failures: NonNegativeInt = 2  # retries of a trial from its last checkpoint
    checkpoint_every: PositiveInt = 1  # reports (epochs, or evaluations of a budget in steps)
