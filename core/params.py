"""Declared parameters: one description drives the sliders, the command line and saved configs.

An experiment lists its parameters once. The window builds a control for each, the command line
builds an option for each, and a saved configuration is checked against the same declarations,
so a value that one of them refuses is refused by all three with the same message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    """A parameter value is missing, unknown or out of its declared range."""


@dataclass(frozen=True)
class Param:
    """Base of all declared parameters.

    Parameters
    ----------
    name
        Identifier used in configs and as the command-line option ``--name``.
    label
        Short text shown beside the control.
    default
        Value used when none is given.
    help
        One sentence saying what the parameter changes.
    """

    name: str
    label: str
    default: Any
    help: str = ""

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to the parameter's type, or raise ``ParamError``."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """Convert command-line text to a valid value, or raise ``ParamError``."""
        return self.validate(text)

    def describe(self) -> str:
        """Say in words which values are allowed."""
        raise NotImplementedError

    def format(self, value: Any) -> str:
        """Render a valid value as text for labels and files."""
        return str(value)

    def _fail(self, value: Any, reason: str) -> ParamError:
        return ParamError(f"{self.name}: {value!r} {reason}; expected {self.describe()}")


@dataclass(frozen=True)
class FloatParam(Param):
    """A real number in ``[low, high]``, shown on a linear or logarithmic slider."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scale range must be positive")

    def validate(self, value: Any) -> float:
        if isinstance(value, bool):
            raise self._fail(value, "is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._fail(value, "is not a number") from None
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise self._fail(value, "is out of range")
        return number

    def describe(self) -> str:
        scale = ", log scale" if self.log else ""
        return f"a number from {self.low:g} to {self.high:g}{scale}"

    def format(self, value: Any) -> str:
        return f"{value:.3g}" if self.log else f"{value:.4g}"


@dataclass(frozen=True)
class IntParam(Param):
    """An integer in ``[low, high]``; ``log`` spaces slider positions geometrically."""

    low: int = 0
    high: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scale range must be positive")

    def validate(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self._fail(value, "is not an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise self._fail(value, "is not an integer") from None
        if not isinstance(value, int):
            raise self._fail(value, "is not an integer")
        if not self.low <= value <= self.high:
            raise self._fail(value, "is out of range")
        return value

    def describe(self) -> str:
        return f"an integer from {self.low} to {self.high}"


@dataclass(frozen=True)
class ChoiceParam(Param):
    """One of a fixed set of names."""

    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.default not in self.choices:
            raise ValueError(f"{self.name}: default {self.default!r} is not among the choices")

    def validate(self, value: Any) -> str:
        if value not in self.choices:
            raise self._fail(value, "is not a valid choice")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class BoolParam(Param):
    """A switch."""

    def validate(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self._fail(value, "is not a switch value")

    def describe(self) -> str:
        return "on or off (true/false, yes/no, 1/0)"

    def format(self, value: Any) -> str:
        return "on" if value else "off"


def resolve(params: Sequence[Param], values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``values`` against ``params`` and fill in defaults.

    Unknown names are refused rather than ignored, so that a typo in a saved configuration is
    reported instead of silently training with the default.
    """
    values = dict(values or {})
    known = {p.name: p for p in params}

    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")

    return {name: p.validate(values.get(name, p.default)) for name, p in known.items()}
