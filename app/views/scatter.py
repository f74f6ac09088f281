"""Points in the plane, coloured by group."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from app.views.view_widget import ViewWidget, series_color, style_plot
from core.views import Scatter

#: Most points drawn; more are thinned evenly.
MAX_POINTS = 5000


class ScatterWidget(ViewWidget):
    """Draws a :class:`~core.views.Scatter` view, one colour and legend entry per group."""

    view_type = Scatter

    def __init__(self, view: Scatter, parent: QWidget | None = None) -> None:
        super().__init__(view, parent)
        self.plot: pg.PlotItem = self.canvas.addPlot()
        style_plot(self.plot)
        self.plot.setAspectLocked(True)
        self.legend = self.plot.addLegend(offset=(-5, 5), labelTextSize="9pt", brush="#ffffffc0")
        self._groups: list[pg.ScatterPlotItem] = []
        self.set_view(view)

    def set_view(self, view: Scatter) -> None:
        if self.view is view:
            return
        self.view = view
        self.show_labels(self.plot, view)

        # One item per group (a single group when the view declares none).
        points = view.points
        groups = np.zeros(len(points), dtype=int) if view.groups is None else view.groups
        if len(points) > MAX_POINTS:
            stride = -(-len(points) // MAX_POINTS)
            points, groups = points[::stride], groups[::stride]
        count = max(len(view.group_labels), int(groups.max()) + 1 if len(groups) else 1)
        self._ensure_groups(count, view.group_labels)

        for index, item in enumerate(self._groups):
            chosen = points[groups == index]
            item.setData(chosen[:, 0], chosen[:, 1])

    def _ensure_groups(self, count: int, labels: tuple[str, ...]) -> None:
        if len(self._groups) == count:
            return
        for item in self._groups:
            self.plot.removeItem(item)
        self.legend.clear()
        self._groups = []
        for index in range(count):
            color = pg.mkColor(series_color(index))
            color.setAlpha(150)
            item = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(color))
            self.plot.addItem(item)
            if index < len(labels):
                self.legend.addItem(item, labels[index])
            self._groups.append(item)
        self.legend.setVisible(bool(labels))
