"""A scalar field on a grid, with its colour bar and optional points drawn over it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QWidget

from app.views.view_widget import BASE_MARGINS, COLORMAP_NAME, ViewWidget, style_plot
from core.views import Heatmap

#: Most points drawn over a heatmap; more would hide the field and slow the window.
MAX_OVERLAY_POINTS = 2000


class HeatmapWidget(ViewWidget):
    """Draws a :class:`~core.views.Heatmap` view on its extent, in its declared colour levels.

    Two heatmaps with the same ``levels`` therefore use one colour for one value, which is what
    makes a target and a learned density comparable side by side.
    """

    view_type = Heatmap

    def __init__(self, view: Heatmap, parent: QWidget | None = None) -> None:
        super().__init__(view, parent)
        self.plot: pg.PlotItem = self.canvas.addPlot()
        style_plot(self.plot)
        self.plot.setAspectLocked(True)
        # The box ends at the field's edges, so the edge ticks (±4) may reach past the axis
        self.plot.getAxis("bottom").setStyle(hideOverlappingLabels=15)
        self.plot.setMenuEnabled(False)

        # The field: row i of the values is drawn at y = ys[i], so rows run bottom to top.
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=view.levels,
            colorMap=pg.colormap.get(COLORMAP_NAME),
            label=view.colorbar_label or None,
            interactive=False,
            width=14,
            colorMapMenu=False,
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot)

        # Points over the field: white with a dark rim stand out on every part of the map.
        self.points = pg.ScatterPlotItem(
            size=4, pen=pg.mkPen(0, 0, 0, 160, width=0.8), brush=pg.mkBrush(255, 255, 255, 200)
        )
        self.plot.addItem(self.points)
        # Anchored by its left edge, the legend never runs past the plot when its size changes.
        self.legend = self.plot.addLegend(offset=(5, 5), labelTextSize="9pt", brush="#ffffffe0")
        self.legend.setVisible(False)

        # The box keeps the field's aspect by widening the canvas margins, not by showing
        # more range than the field covers (blank bands beside it).
        self._extent: tuple[float, float, float, float] | None = None
        self._padding = (0.0, 0.0)
        self.plot.vb.sigResized.connect(self._fit_box)
        self.set_view(view)

    def set_view(self, view: Heatmap) -> None:
        if self.view is view:
            return
        previous, self.view = self.view, view
        self.show_labels(self.plot, view)
        if previous is not None and view.colorbar_label != previous.colorbar_label:
            self.colorbar.axis.setLabel(view.colorbar_label)

        # The field, stretched over its extent, coloured on the declared levels; a field that a
        # new view shares with the last (a fixed target) is not redrawn.
        if previous is None or view.values is not previous.values:
            self.image.setImage(np.asarray(view.values, dtype=np.float32), autoLevels=False)
        if previous is None or view.levels != previous.levels:
            self.colorbar.setLevels(view.levels)
        if view.extent != self._extent:
            x_min, x_max, y_min, y_max = view.extent
            self.image.setRect(QRectF(x_min, y_min, x_max - x_min, y_max - y_min))
            self.plot.setRange(xRange=(x_min, x_max), yRange=(y_min, y_max), padding=0)
            self._extent = view.extent
            self._fit_box()

        # The overlay, thinned evenly when there are more points than can be read.
        points = view.points
        if previous is not None and points is previous.points:
            return
        if points is None or len(points) == 0:
            self.points.clear()
            self.legend.setVisible(False)
            return
        if len(points) > MAX_OVERLAY_POINTS:
            points = points[:: -(-len(points) // MAX_OVERLAY_POINTS)]
        self.points.setData(points[:, 0], points[:, 1])
        if view.points_label != (previous.points_label if previous else None):
            self.legend.clear()
            if view.points_label:
                self.legend.addItem(self.points, view.points_label)
        self.legend.setVisible(bool(view.points_label))

    def _fit_box(self, *_: object) -> None:
        """Pad the canvas so that the view box has the extent's aspect and shows it whole."""
        if self._extent is None:
            return
        x_min, x_max, y_min, y_max = self._extent
        box = self.plot.vb.boundingRect()
        if min(x_max - x_min, y_max - y_min, box.width(), box.height()) <= 0:
            return
        aspect = (x_max - x_min) / (y_max - y_min)

        # The room the box would have without padding, and the padding that fits it
        pad_x, pad_y = self._padding
        width, height = box.width() + pad_x, box.height() + pad_y
        if width > height * aspect:
            padding = (width - height * aspect, 0.0)
        else:
            padding = (0.0, height - width / aspect)
        if max(abs(a - b) for a, b in zip(padding, self._padding, strict=True)) < 1:
            return

        self._padding = padding
        left, top, right, bottom = BASE_MARGINS
        self.canvas.ci.setContentsMargins(
            left + padding[0] / 2,
            top + padding[1] / 2,
            right + padding[0] / 2,
            bottom + padding[1] / 2,
        )
