"""The experiment interface shared by the window, the command line and the tests.

An experiment is a plain object that knows nothing of Qt: it declares its parameters, takes one
training step at a time, evaluates its slower metrics on request and describes what to draw as
typed view data (:mod:`core.views`). The :class:`~core.runner.Runner` drives it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from core.params import ChoiceParam, IntParam, Param
from core.views import CurvePanel, View

#: Parameters every experiment has; the runner, not the experiment, acts on them.
COMMON_PARAMS: tuple[Param, ...] = (
    IntParam("seed", "Seed", 0, "Seed of every random draw in the run.", low=0, high=2**31 - 1),
    ChoiceParam(
        "device",
        "Device",
        "auto",
        "Where to train: auto takes CUDA when present, else the CPU.",
        choices=("auto", "cpu", "cuda"),
    ),
)


class Experiment(ABC):
    """One trainable model with its data, metrics and views.

    Subclasses set the class attributes, declare :meth:`declared_params`, and implement
    :meth:`train_step`. The constructor receives a configuration already validated against
    :meth:`params` and the device to train on; the global torch seed is already set.
    """

    #: Identifier used on the command line and in file names.
    name: ClassVar[str]
    #: Human-readable name for the picker.
    title: ClassVar[str]
    #: One or two sentences for the picker's tooltip and ``main.py list``.
    summary: ClassVar[str]
    #: Most CPU threads worth giving torch's operators, or ``None`` for as many as allowed.
    #: Small models gain nothing from more and lose much when the threads wait on each other.
    max_threads: ClassVar[int | None] = None

    def __init__(self, config: Mapping[str, Any], device: torch.device) -> None:
        self.config = dict(config)
        self.device = device

    @classmethod
    @abstractmethod
    def declared_params(cls) -> tuple[Param, ...]:
        """Return the experiment's own parameters, in the order the controls show them."""

    @classmethod
    def params(cls) -> tuple[Param, ...]:
        """Return all parameters: the experiment's own, then the common ones."""
        return cls.declared_params() + COMMON_PARAMS

    @abstractmethod
    def train_step(self) -> dict[str, float]:
        """Take one optimisation step and return its metrics (at least ``loss``).

        A non-finite loss or gradient must leave the parameters untouched and raise
        :class:`~core.training.DivergenceError`; :func:`core.training.apply_gradients` does both.
        """

    def evaluate(self) -> dict[str, float]:
        """Return the slower metrics (held-out loss, true KL …) for the current state."""
        return {}

    def curve_panels(self) -> tuple[CurvePanel, ...]:
        """Declare which logged metrics are drawn together as curves."""
        return (CurvePanel("loss", "Training loss", ("loss",), "loss"),)

    def views(self) -> tuple[View, ...]:
        """Return the expensive views (density grids, samples …) for the current state."""
        return ()

    def headline_metrics(self) -> tuple[str, ...]:
        """Name the metrics the status bar shows beside the step counter."""
        return ("loss",)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the tensors that make up the trained state, for checkpoints."""
        return {}
