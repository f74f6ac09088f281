"""Picks the widget class for each view type, so no panel names a view type itself."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.views.curves import CurvesWidget
from app.views.heatmap import HeatmapWidget
from app.views.scatter import ScatterWidget
from app.views.view_widget import ViewWidget
from core.views import View

WIDGET_CLASSES: dict[type, type[ViewWidget]] = {
    cls.view_type: cls for cls in (CurvesWidget, HeatmapWidget, ScatterWidget)
}


def create_view_widget(view: View, parent: QWidget | None = None) -> ViewWidget:
    """Return a new widget drawing ``view``; raise ``TypeError`` for an unknown view type."""
    try:
        cls = WIDGET_CLASSES[type(view)]
    except KeyError:
        known = ", ".join(t.__name__ for t in WIDGET_CLASSES)
        raise TypeError(f"no widget draws {type(view).__name__} views; known: {known}") from None
    return cls(view, parent)
