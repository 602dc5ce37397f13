"""A study is one YAML file, validated here before anything starts.

``load_config(path, overrides)`` reads the YAML, applies ``--set key=value`` overrides and returns
a :class:`StudyConfig`, or raises :class:`ConfigError` with one line that names the dotted key,
what is wrong and what was given (``sweep.explore_fraction[4]: input should be less than or
equal to 1, got 1.5``). The pydantic models below are the reference for every key; the shipped
``configs/*.yaml`` explain them with units.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
    field_validator,
    model_validator,
)

from study.config_rules import check_asha, check_builtin_workload, check_search
from study.config_sections import (
    Data,
    Model,
    Objective,
    Resources,
    Section,
    Sharpness,
    Sweep,
    Train,
    Trainable,
    Tune,
)
from study.errors import BadInput
from trainables import config as run
from trainables.config import KNEE_ONLY_KEYS, Baseline, Knee, TrainConfig
from trainables.schedules import STEP_MILESTONES

DEFAULT_CONFIG = "digits_quick.yaml"  # in the packaged configs/ folder


class ConfigError(BadInput):
    """A study config that must not run; the message is one line naming the key."""


class StudyConfig(Section):
    """A validated study. Build one with :func:`load_config` or :meth:`from_mapping`."""

    name: str  # the MLflow experiment; its last part starts the study's folder names
    data: Data | None = None  # required by the built-in classifier; a user's loop may have one
    model: Model | None = None
    trainable: Trainable = Trainable()
    objective: Objective = Objective()
    train: Train
    sweep: Sweep
    sharpness: Sharpness = Sharpness()
    resources: Resources = Resources()
    tune: Tune = Tune()

    @field_validator("name")
    @classmethod
    def _ends_in_a_folder_name(cls, name: str) -> str:
        last = name.rsplit("/", 1)[-1]
        if last in ("", ".", "..") or len(last) > 100 or not last.isprintable():
            raise ValueError(
                "its last part (after any '/') names the study's folders: 1 to 100 printable "
                "characters, not '.' or '..'"
            )
        return name

    @property
    def folder_name(self) -> str:
        """The name's last part, for the study's folders: an MLflow experiment may be a path (a
        Databricks workspace's ``/Users/me/knee``), a folder name may not."""
        return self.name.rsplit("/", 1)[-1]

    @model_validator(mode="after")
    def _cross_section_rules(self) -> StudyConfig:
        # Errors raised here have no location of their own: each message names its keys.
        if self.trainable.builtin:
            check_builtin_workload(self)
        for unit, other in (("epochs", "steps"), ("steps", "epochs")):
            if getattr(self.sweep, unit) is not None and self.train.budget_key != unit:
                raise ValueError(
                    f"sweep.{unit}: sweeps a budget in {unit}; this study's is train.{other}"
                )
        if self.tune.search == "optuna":
            check_search(self)
        elif self.tune.num_samples is not None:
            raise ValueError(
                "tune.num_samples: counts tune.search optuna's suggestions; a grid runs every "
                f"point once, remove it (got {self.tune.num_samples})"
            )
        warmup, longest = self.warmup_fraction, max(self.sweep.explore_fraction)
        if warmup + longest > 1 + 1e-9:  # the schedule's own tolerance for float sums
            raise ValueError(
                "sweep.explore_fraction: train.warmup_fraction + explore_fraction must be "
                f"<= 1, got {warmup} + {longest}"
            )
        if "step" in self.sweep.schedule and warmup >= STEP_MILESTONES[0]:
            raise ValueError(
                f"train.warmup_fraction: the step schedule first decays at {STEP_MILESTONES[0]:g} "
                f"of the budget, after the warmup; got {warmup}"
            )
        if self.tune.scheduler == "asha":
            check_asha(self)
        return self

    @property
    def budgets(self) -> list[int]:
        """The training budgets the study runs, in :attr:`budget_unit`."""
        key = self.train.budget_key
        return getattr(self.sweep, key) or [getattr(self.train, key)]

    @property
    def budget_unit(self) -> str:
        """``epochs`` or ``steps``: what a budget, ASHA's grace period and a report count."""
        return self.train.budget_key

    @property
    def warmup_fraction(self) -> float:
        """The warmup as a fraction of the shortest budget (train.warmup_steps is counted in
        steps: of a shorter budget it is a larger part)."""
        train = self.train
        if not train.warmup_steps:
            return train.warmup_fraction
        return min(1.0, train.warmup_steps / min(self.budgets))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], check_files: bool = True) -> StudyConfig:
        """Validate a parsed config; raises :class:`ConfigError` (one line) when it is wrong.

        ``check_files=False``: a CIFAR root need not exist on this machine (reading a study's
        config where its data is not, e.g. for its report).
        """
        try:
            return cls.model_validate(data, context={"check_files": check_files})
        except ValidationError as error:
            raise ConfigError(_one_line(error)) from None

    def trial_config(self, point: Mapping[str, Any]) -> TrainConfig:
        """One trial's run: the study's settings with the point's swept values (``peak_lr``,
        ``seed``, ``schedule``, ``explore_fraction``; ``epochs`` and ``decay`` when swept)."""
        train = self.train
        if point.get("schedule", "knee") == "knee":
            schedule: run.Schedule = Knee(
                point["explore_fraction"], point.get("decay", train.decay)
            )
        else:
            schedule = Baseline(point["schedule"])
        budget = train.budget_key
        return TrainConfig(
            **{budget: point.get(budget, getattr(train, budget))},
            eval_every=train.eval_every,
            batch_size=train.batch_size,
            peak_lr=point["peak_lr"],
            seed=point["seed"],
            schedule=schedule,
            warmup_fraction=train.warmup_fraction,
            warmup_steps=train.warmup_steps,
            min_lr_ratio=train.min_lr_ratio,
            data=self._run_data(),
            model=run.Model(self.model.name, self.model.options) if self.model else None,
            trainable=run.Trainable(self.trainable.fit, self.trainable.options),
            optimizer=run.Optimizer(
                train.optimizer,
                train.momentum,
                train.nesterov,
                train.weight_decay,
                train.beta2,
                train.eps,
                train.grad_clip,
            ),
            sharpness=run.Sharpness(**self.sharpness.model_dump()),
            device=train.device,
        )

    def _run_data(self) -> run.Data | None:
        data = self.data
        if data is None:
            return None
        root = str(data.root) if data.root is not None else None
        return run.Data(data.dataset, root, data.download, data.val_fraction, data.options)

    @property
    def selection_needed(self) -> bool:
        """Whether something picks among trials mid-study (ASHA, Optuna): it reads the
        objective's selection metric from every report."""
        return self.tune.scheduler == "asha" or self.tune.search == "optuna"

    def trial_base(self) -> dict[str, Any]:
        """The flat keys every trial shares (all but the swept ones and the schedule's own,
        which each point carries): the part of Tune's param space no trial changes."""
        sample = {k: v[0] for k, v in self.swept().items()}
        sample["schedule"] = "knee"
        flat = self.trial_config(sample).to_flat()
        own = {*self.swept(), *KNEE_ONLY_KEYS, "schedule"}
        return {k: v for k, v in flat.items() if k not in own}

    def swept(self) -> dict[str, list]:
        """The swept ``train()`` keys and their values (for a search: the [low, high] ranges)."""
        return {k: v for k, v in self.sweep.model_dump().items() if v is not None}

    def grid(self) -> list[dict[str, Any]]:
        """One dict of swept values per trial of a grid study, in a stable order.

        A baseline schedule has no explore phase and no decay shape of Knee's: it runs once per
        combination of the other axes, with ``explore_fraction`` and ``decay`` set to None (Tune's
        grid gives every trial every key; :meth:`TrainConfig.from_flat` reads None as absent,
        and the tracker logs no Knee keys for a baseline).
        """
        axes = self.swept()
        points: dict[tuple, dict[str, Any]] = {}
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            if point["schedule"] == "knee":  # every point names Knee's decay, swept or not
                point.setdefault("decay", self.train.decay)
            else:
                point.update(dict.fromkeys(KNEE_ONLY_KEYS))
            points.setdefault(tuple(point.items()), point)
        return list(points.values())

    def notes(self) -> list[str]:
        """What the study will do that its keys alone do not say, one line each (said before
        it runs)."""
        notes = []
        unit = self.budget_unit
        if getattr(self.sweep, unit) is not None:
            notes.append(
                f"sweep.{unit} {getattr(self.sweep, unit)} sets each trial's budget: train.{unit} "
                f"({getattr(self.train, unit)}) is not used"
            )
        decays = self.sweep.decay or []
        whole = [f for f in self.sweep.explore_fraction if f + self.warmup_fraction >= 1]
        if len(decays) > 1 and whole and "knee" in self.sweep.schedule:
            runs = sum(1 for p in self.grid() if p.get("explore_fraction") in whole)
            notes.append(
                f"sweep.decay: explore {', '.join(f'{f:g}' for f in whole)} has no exploit "
                f"phase, so its {runs} trials run the same schedule under each of the "
                f"{len(decays)} decay shapes (each shape's explore verdict is judged on its own)"
            )
        return notes

    @property
    def num_trials(self) -> int:
        if self.tune.search == "optuna":
            return self.tune.num_samples * len(self.sweep.seed)
        return len(self.grid())

    def to_yaml(self) -> str:
        """The resolved config as YAML; :func:`load_config` reads it back to an equal config."""
        return yaml.dump(self.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False)


def trial_label(config: Mapping[str, Any]) -> str:
    """A short human name for a trial: ``knee explore=0.5 lr=0.2 seed=1 epochs=40``,
    ``knee-cosine ...`` for a non-linear Knee decay, ``onecycle lr=0.2 seed=1 epochs=40``."""
    schedule = config.get("schedule", "knee")
    words = [schedule]
    if schedule == "knee":
        if config.get("decay", "linear") != "linear":
            words[0] = f"knee-{config['decay']}"
        words.append(f"explore={config.get('explore_fraction', 0.5):.4g}")
    words += [f"lr={config.get('peak_lr', 0.1):.4g}", f"seed={config.get('seed', 0)}"]
    budget = "steps" if config.get("steps") is not None else "epochs"
    return " ".join([*words, f"{budget}={config.get(budget)}"])


def load_config(
    path: str | Path | None, overrides: Sequence[str] = (), check_files: bool = True
) -> StudyConfig:
    """Read a study from YAML (None: the packaged default), apply ``key=value`` overrides, validate.

    An override's key is dotted (``train.epochs``) and its value is parsed as YAML
    (``'sweep.seed=[0,1]'``, quoted for the shell). Every problem, including an unreadable
    file, is a :class:`ConfigError`.
    ``check_files``: as in :meth:`StudyConfig.from_mapping`.
    """
    source = files("configs") / DEFAULT_CONFIG if path is None else Path(path)
    try:
        data = yaml.load(source.read_text(), Loader=_Loader)
    except OSError as error:
        raise ConfigError(f"{source}: cannot read it ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({_yaml_problem(error)})") from None
    if data is None:
        raise ConfigError(f"{source}: empty; a study config names its name, data, model, ...")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a study config is a mapping of sections (name, data, model, ...), "
            f"got {type(data).__name__}"
        )
    for item in overrides:
        _apply_override(data, item)
    return StudyConfig.from_mapping(data, check_files)


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, equals, text = item.partition("=")
    parts = key.strip().split(".")
    if not equals or not all(parts):
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=3")
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        if text.lstrip().startswith(("[", "{")):  # `--set k=[0, 1]` unquoted: the shell cut it
            raise ConfigError(
                f"--set {key}: {text!r} is a list cut short (the shell splits an unquoted value "
                f'at its spaces): quote the whole item, e.g. --set "{key}=[0, 1]"'
            ) from None
        raise ConfigError(
            f"--set {key}: value is not valid YAML ({_yaml_problem(error)})"
        ) from None
    node = data
    for depth, part in enumerate(parts[:-1], start=1):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a section")
    # An unknown key lands in the data and is refused by validation, naming the allowed keys.
    node[parts[-1]] = value


def _one_line(error: ValidationError) -> str:
    """The first problem as ``dotted.key: what is wrong, got <input>`` (+ how many more)."""
    problems = error.errors(include_url=False)
    first, more = problems[0], len(problems) - 1
    loc, kind = first["loc"], first["type"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)[1:]
    if kind == "extra_forbidden":
        text = f"{where}: unknown key; allowed: {', '.join(_allowed_keys(loc[:-1]))}"
    elif kind == "missing":
        text = f"{where}: required but missing"
    elif kind == "value_error" and (not where or str(first["ctx"]["error"]).startswith(where)):
        text = str(first["ctx"]["error"])  # a rule across keys names its keys itself
    else:  # our validators' words, or pydantic's "Input should be ..."
        what = str(first["ctx"]["error"]) if kind == "value_error" else first["msg"]
        text = f"{where}: {what[0].lower()}{what[1:]}, got {first['input']!r}"
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = StudyConfig
    for part in loc:
        model = model.model_fields[part].annotation
    return list(model.model_fields)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem}, line {mark.line + 1}" if mark else problem


# PyYAML follows YAML 1.1, where `5e-4` is a string; configs are full of such numbers, so read
# (and write) them as floats, as YAML 1.2 does.
_FLOAT = re.compile(r"^[-+]?(?:\d[\d_]*\.?\d*|\.\d+)[eE][-+]?\d+$")


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
# Sections as blocks, sweep lists on one line: `seed: [0, 1, 2]`, as people write them.
_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)
