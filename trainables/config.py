"""One training run's configuration: the one schema, with the one set of defaults.

:class:`TrainConfig` is frozen and nested the way a reader thinks of a run (data, model,
schedule, optimizer, sharpness); the schedule is a tagged union, :class:`Knee` (its explore
fraction and decay shape) or :class:`Baseline` (a named torch schedule), so a baseline simply has
no explore phase instead of keys set to None. ``study/`` validates a study against these and adds
study-level rules only.

Between processes (Ray Tune's param space, MLflow's params) a run travels as one flat dict of
scalars: :meth:`TrainConfig.to_flat` and :meth:`TrainConfig.from_flat` are the only translation,
and the flat keys are the names a study's runs are filtered and analysed by (``explore_fraction``,
``peak_lr``, ``seed``, ``schedule``, ``decay``, ...). A baseline's flat form has no Knee keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPTIMIZER_NAMES = ("sgd", "adamw")
KNEE_ONLY_KEYS = ("explore_fraction", "decay")  # the flat keys only a Knee schedule has


@dataclass(frozen=True)
class Knee:
    """Warm up, explore at the peak LR for ``explore_fraction`` of all steps, then decay to 0
    with the ``decay`` shape (linear: the paper's; cosine; 1-sqrt)."""

    explore_fraction: float = 0.5
    decay: str = "linear"
    name = "knee"


@dataclass(frozen=True)
class Baseline:
    """One of torch's schedules at the same peak LR and warmup: cosine, linear, step, onecycle,
    constant (see :func:`trainables.schedules.make_schedule`)."""

    name: str


Schedule = Knee | Baseline


@dataclass(frozen=True)
class Data:
    dataset: str = "digits"  # digits | cifar10 | cifar100 | synthetic | "module:callable"
    root: str | None = None  # folder holding the files (CIFAR; any loader that takes root)
    download: bool = False  # fetch CIFAR into root if missing
    val_fraction: float = 0.1  # of the train split held out for selection, when none is given
    options: Mapping[str, Any] = field(default_factory=dict)  # the loader's keyword arguments


@dataclass(frozen=True)
class Model:
    name: str = "mlp"  # mlp | cnn | resnet18 | "module:callable"
    options: Mapping[str, Any] = field(default_factory=dict)  # the model's keyword arguments


@dataclass(frozen=True)
class Trainable:
    """The training loop: the built-in ``classifier`` (:func:`trainables.train.fit`) or a
    user's ``"module:callable"`` taking ``(config, trial)`` (:mod:`trainables.handle`)."""

    fit: str = "classifier"
    options: Mapping[str, Any] = field(default_factory=dict)  # read by the loop: trial.options


@dataclass(frozen=True)
class Optimizer:
    name: str = "sgd"  # sgd | adamw
    momentum: float = 0.9  # SGD momentum (AdamW: beta1)
    nesterov: bool = False
    weight_decay: float = 5e-4
    beta2: float = 0.999  # AdamW's second-moment decay (language models: 0.95)
    eps: float = 1e-8  # AdamW's denominator floor
    grad_clip: float | None = None  # clip the gradients' global norm to this; None: never


@dataclass(frozen=True)
class Sharpness:
    epsilon: float = 1e-3  # box half-width, relative to |w| + 1
    steps: int = 20  # ascent steps
    batches: int = 4  # training batches the sharpness loss is measured on
    hessian: bool = False  # also Hessian top eigenvalue and trace (slower)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run needs. The budget, ``epochs`` or ``steps`` (optimizer steps, for a
    loop that counts them: the language model), and ``batch_size`` have no default: a budget is
    always the study's choice. Exactly one of ``epochs`` and ``steps`` is set."""

    batch_size: int
    epochs: int | None = None
    steps: int | None = None
    eval_every: int | None = None  # steps between evaluations of a budget in steps
    peak_lr: float = 0.1
    seed: int = 0  # moves initialisation, batch order and augmentation; never the data split
    schedule: Schedule = field(default_factory=Knee)
    warmup_fraction: float = 0.0  # of all optimizer steps, linear ramp to peak_lr
    warmup_steps: int = 0  # the same ramp counted in steps (instead of warmup_fraction)
    min_lr_ratio: float = 0.0  # the LR floor after the warmup, a fraction of peak_lr
    # The built-in classifier's dataset and model; a user's loop has them only when its study
    # names them (None: not part of the run).
    data: Data | None = field(default_factory=Data)
    model: Model | None = field(default_factory=Model)
    trainable: Trainable = field(default_factory=Trainable)
    optimizer: Optimizer = field(default_factory=Optimizer)
    sharpness: Sharpness = field(default_factory=Sharpness)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    gpu_memory_fraction: float | None = None  # cap when trials share a GPU

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(
                f"a run's budget is epochs or steps, exactly one: got epochs={self.epochs}, "
                f"steps={self.steps}"
            )

    @property
    def budget(self) -> int:
        """The budget in its own unit (:attr:`budget_unit`)."""
        return self.epochs if self.epochs is not None else self.steps

    @property
    def budget_unit(self) -> str:
        return "epochs" if self.epochs is not None else "steps"

    @property
    def evaluations_every(self) -> int:
        """Steps between a budget in steps' evaluations (and reports): ``eval_every``, else a
        twentieth of the budget."""
        return self.eval_every or max(1, (self.steps or 0) // 20)

    def warmup(self, total_steps: int) -> float:
        """The warmup as a fraction of ``total_steps`` optimizer steps."""
        return (
            min(1.0, self.warmup_steps / total_steps) if self.warmup_steps else self.warmup_fraction
        )

    def to_flat(self) -> dict[str, Any]:
        """The run as one flat dict of scalars (Tune's param space, MLflow's params)."""
        budget = {"epochs": self.epochs} if self.epochs is not None else {"steps": self.steps}
        if self.eval_every is not None:
            budget["eval_every"] = self.eval_every
        flat = {
            **budget,
            "batch_size": self.batch_size,
            "peak_lr": self.peak_lr,
            "seed": self.seed,
            "schedule": self.schedule.name,
            **(_knee_flat(self.schedule) if isinstance(self.schedule, Knee) else {}),
            "warmup_fraction": self.warmup_fraction,
            **({"warmup_steps": self.warmup_steps} if self.warmup_steps else {}),
            "min_lr_ratio": self.min_lr_ratio,
            **(_prefixed(self.data, _DATA_KEYS) if self.data else {}),
            **(_options("data", self.data.options) if self.data else {}),
            **(_prefixed(self.model, _MODEL_KEYS) if self.model else {}),
            **(_options("model", self.model.options) if self.model else {}),
            "trainable": self.trainable.fit,
            **_options("trainable", self.trainable.options),
            **_prefixed(self.optimizer, _OPTIMIZER_KEYS),
            **_prefixed(self.sharpness, _SHARPNESS_KEYS),
            "device": self.device,
        }
        if self.gpu_memory_fraction is not None:
            flat["gpu_memory_fraction"] = self.gpu_memory_fraction
        return flat

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> TrainConfig:
        """The run a flat dict describes; keys left out take their defaults. Unknown keys are an
        error, not silently ignored; a baseline's Knee keys may be None (Tune's grid gives every
        trial every key) but not set; a Knee schedule without them takes Knee's defaults."""
        flat = dict(flat)
        unknown = sorted(
            k for k in set(flat) - _FLAT_KEYS if k.split(".")[0] not in _OPTION_SECTIONS
        )
        if unknown:
            raise ValueError(f"unknown train config keys: {', '.join(unknown)}")
        name = flat.pop("schedule", "knee")
        knee = {k: flat.pop(k) for k in KNEE_ONLY_KEYS if k in flat}
        if name == "knee":
            defaults = Knee()
            schedule: Schedule = Knee(
                explore_fraction=_or(knee.get("explore_fraction"), defaults.explore_fraction),
                decay=_or(knee.get("decay"), defaults.decay),
            )
        else:
            given = sorted(k for k, v in knee.items() if v is not None)
            if given:
                raise ValueError(f"schedule {name} has no explore phase: {', '.join(given)} set")
            schedule = Baseline(name)
        options = {s: _pop_options(flat, s) for s in _OPTION_SECTIONS}
        trainable = Trainable(flat.pop("trainable", Trainable.fit), options["trainable"])
        # The classifier always has a dataset and a model (defaults); another loop those given.
        builtin = trainable.fit == Trainable.fit
        data, model = _unprefixed(flat, _DATA_KEYS), _unprefixed(flat, _MODEL_KEYS)
        sections = {
            "data": Data(**data, options=options["data"]) if data or builtin else None,
            "model": Model(**model, options=options["model"]) if model or builtin else None,
            "trainable": trainable,
            "optimizer": Optimizer(**_unprefixed(flat, _OPTIMIZER_KEYS)),
            "sharpness": Sharpness(**_unprefixed(flat, _SHARPNESS_KEYS)),
        }
        return cls(schedule=schedule, **sections, **flat)


def _knee_flat(knee: Knee) -> dict[str, Any]:
    return {"explore_fraction": knee.explore_fraction, "decay": knee.decay}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


# Each section's flat names, field -> flat key: the names runs already carry in MLflow.
_DATA_KEYS = {
    "dataset": "dataset",
    "root": "data_root",
    "download": "download",
    "val_fraction": "val_fraction",
}
_MODEL_KEYS = {"name": "model"}
_OPTIMIZER_KEYS = {
    "name": "optimizer",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight_decay": "weight_decay",
    "beta2": "beta2",
    "eps": "eps",
    "grad_clip": "grad_clip",
}
_SHARPNESS_KEYS = {
    "epsilon": "sharpness_epsilon",
    "steps": "sharpness_steps",
    "batches": "sharpness_batches",
    "hessian": "hessian",
}
_SECTIONS = ("data", "model", "trainable", "optimizer", "sharpness")
_TOP_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} - {"schedule", *_SECTIONS}
# A section's options travel as "data.noise", "model.width", "trainable.context": one flat
# scalar each, so MLflow shows and filters them like any other param.
_OPTION_SECTIONS = ("data", "model", "trainable")
_FLAT_KEYS = {
    *_TOP_KEYS,
    "schedule",
    "trainable",
    *KNEE_ONLY_KEYS,
    *_DATA_KEYS.values(),
    *_MODEL_KEYS.values(),
    *_OPTIMIZER_KEYS.values(),
    *_SHARPNESS_KEYS.values(),
}


def _prefixed(section: object, names: Mapping[str, str]) -> dict[str, Any]:
    return {flat: getattr(section, name) for name, flat in names.items()}


def _options(section: str, options: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{section}.{name}": value for name, value in sorted(options.items())}


def _pop_options(flat: dict[str, Any], section: str) -> dict[str, Any]:
    prefix = f"{section}."
    keys = [k for k in flat if k.startswith(prefix)]
    return {k[len(prefix) :]: flat.pop(k) for k in keys}


def _unprefixed(flat: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Pop a section's keys out of ``flat``, under their field names."""
    return {name: flat.pop(key) for name, key in names.items() if key in flat}
