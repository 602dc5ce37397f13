"""A run's resumable state: what :func:`trainables.train.train` hands its caller after every epoch
and takes back to continue the run with the same final numbers as an uninterrupted one.

It travels as a plain dict of tensors, numbers and lists (:meth:`TrainState.to_dict`), so
``torch.save`` writes it and ``torch.load(weights_only=True)`` reads it back without running any
code from the file; :data:`STATE_KEYS` are that dict's keys, which a checkpoint is checked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TrainState:
    model: Mapping[str, Any]  # the model's state_dict
    optimizer: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    generator: torch.Tensor  # the trial's batch-order and augmentation generator
    torch_rng: torch.Tensor  # torch's global RNG (dropout and the like)
    epoch: int  # epochs done
    history: tuple[Mapping[str, float], ...]  # every epoch's metrics so far, oldest first
    trial_seconds: float  # compute so far (training and evaluation)

    def to_dict(self) -> dict[str, Any]:
        """The state as ``torch.save`` writes it (it references the live model: save it now)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {
            "history": [dict(h) for h in self.history]
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TrainState:
        """A state read back; a ValueError names the keys a damaged or foreign file lacks."""
        missing = sorted(STATE_KEYS - state.keys())
        if missing:
            raise ValueError(f"not a training state: no {', '.join(missing)}")
        return cls(**{k: state[k] for k in STATE_KEYS} | {"history": tuple(state["history"])})


STATE_KEYS = frozenset(f.name for f in dataclasses.fields(TrainState))
