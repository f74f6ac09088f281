"""Typed view data: what an experiment wants drawn, as plain arrays and numbers.

The window has one widget per view type and the exporters one writer per view type, so an
experiment never touches plotting code. Every view carries a ``key`` that stays the same for the
life of a run; the window uses it to update a widget in place and exports use it as a file name.
Arrays are never written to after a view is made, so a view can cross threads without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Reference:
    """A horizontal line marking a known value, such as the true test NLL."""

    label: str
    value: float


@dataclass(frozen=True)
class CurvePanel:
    """Declares a panel of metric curves drawn from the run's history.

    The runner fills it in from the metrics it logged, as a :class:`Curves` view.
    """

    key: str
    title: str
    metrics: tuple[str, ...]
    y_label: str
    log_y: bool = False
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class Series:
    """One named curve: y against x."""

    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Curves:
    """Curves sharing one pair of axes, with optional horizontal reference lines."""

    key: str
    title: str
    series: tuple[Series, ...]
    x_label: str = "step"
    y_label: str = ""
    log_y: bool = False
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class Heatmap:
    """A scalar field on a regular grid, optionally with points drawn over it.

    ``values[i, j]`` is the value at ``y = ys[i]``, ``x = xs[j]`` of a grid spanning ``extent``
    ``(x_min, x_max, y_min, y_max)``. Views meant to be compared share ``levels`` so that one
    colour means one value in all of them.
    """

    key: str
    title: str
    values: np.ndarray
    extent: tuple[float, float, float, float]
    levels: tuple[float, float]
    x_label: str = "x"
    y_label: str = "y"
    colorbar_label: str = ""
    points: np.ndarray | None = None
    points_label: str = ""


@dataclass(frozen=True)
class Scatter:
    """Points in the plane, optionally in groups with their own labels."""

    key: str
    title: str
    points: np.ndarray
    x_label: str = "x"
    y_label: str = "y"
    groups: np.ndarray | None = None
    group_labels: tuple[str, ...] = field(default_factory=tuple)


View = Curves | Heatmap | Scatter
