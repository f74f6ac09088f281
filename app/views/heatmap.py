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
#: Share of the field's width and height that the legend of the points may cover in a corner.
LEGEND_SPAN = (0.4, 0.15)
#: How much less a corner must hold than the legend's own (in shares of mass plus points) to
#: draw the legend there instead.
LEGEND_MOVE_MARGIN = 0.01
#: Where the legend goes in each corner: its anchor on itself and on the box (both as
#: fractions, y down) and its offset from the box's edges in pixels.
LEGEND_ANCHORS = {
    "top left": ((0, 0), (0, 0), (5, 5)),
    "top right": ((1, 0), (1, 0), (-5, 5)),
    "bottom left": ((0, 1), (0, 1), (5, -5)),
    "bottom right": ((1, 1), (1, 1), (-5, -5)),
}


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
        # The legend of the points sits in whichever corner of the field is emptiest.
        self.legend_corner = "top left"
        offset = LEGEND_ANCHORS[self.legend_corner][2]
        self.legend = self.plot.addLegend(offset=offset, labelTextSize="9pt", brush="#ffffffe0")
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

        # The overlay and its legend, which follows the field and the points
        new_points = previous is None or view.points is not previous.points
        if new_points:
            self._draw_points(view, previous)
        has_legend = bool(view.points_label) and view.points is not None and len(view.points)
        if has_legend and (new_points or view.values is not previous.values):
            self._place_legend(corner_shares(view))

    def _draw_points(self, view: Heatmap, previous: Heatmap | None) -> None:
        # Thinned evenly when there are more points than can be read
        points = view.points
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

    def _place_legend(self, shares: dict[str, float]) -> None:
        # It moves only for a corner clearly emptier than its own, so that it does not hop
        # between empty corners as a learned field changes in its last digits.
        corner = min(shares, key=shares.__getitem__)
        if shares[self.legend_corner] - shares[corner] <= LEGEND_MOVE_MARGIN:
            return
        item_pos, parent_pos, offset = LEGEND_ANCHORS[corner]
        self.legend.anchor(item_pos, parent_pos, offset)
        self.legend_corner = corner

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


def corner_shares(view: Heatmap) -> dict[str, float]:
    """Return how much of the field lies under a legend in each corner (:data:`LEGEND_ANCHORS`).

    A corner's share of the field's mass (the values, taken as non-negative) and its share of
    the points, added, over a patch the size of :data:`LEGEND_SPAN`.
    """
    values = np.clip(np.nan_to_num(np.asarray(view.values, dtype=np.float64)), 0, None)
    rows, cols = values.shape
    patch_rows = max(1, round(LEGEND_SPAN[1] * rows))
    patch_cols = max(1, round(LEGEND_SPAN[0] * cols))
    total = values.sum() or 1.0

    # Rows of the values run from the bottom of the extent to the top.
    patches = {
        "top left": values[rows - patch_rows :, :patch_cols],
        "top right": values[rows - patch_rows :, cols - patch_cols :],
        "bottom left": values[:patch_rows, :patch_cols],
        "bottom right": values[:patch_rows, cols - patch_cols :],
    }
    share = {corner: patch.sum() / total for corner, patch in patches.items()}

    if view.points is not None and len(view.points):
        x_min, x_max, y_min, y_max = view.extent
        x, y = np.asarray(view.points, dtype=np.float64).T
        left = x < x_min + LEGEND_SPAN[0] * (x_max - x_min)
        right = x > x_max - LEGEND_SPAN[0] * (x_max - x_min)
        top = y > y_max - LEGEND_SPAN[1] * (y_max - y_min)
        bottom = y < y_min + LEGEND_SPAN[1] * (y_max - y_min)
        inside = {
            "top left": top & left,
            "top right": top & right,
            "bottom left": bottom & left,
            "bottom right": bottom & right,
        }
        for corner, mask in inside.items():
            share[corner] += mask.mean()

    return share
