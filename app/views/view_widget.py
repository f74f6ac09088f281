"""The common shape of every view widget: a pyqtgraph canvas that updates in place."""

from __future__ import annotations

from typing import ClassVar

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem, QSizePolicy, QVBoxLayout, QWidget

from core.views import View

#: Qualitative colours for series and groups, in order (colour-blind-safe, after Okabe & Ito).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)

#: Margins of every canvas around its plot: left, top, right, bottom (pixels).
BASE_MARGINS = (6, 6, 10, 6)

#: Colour map of every heatmap; perceptually uniform, readable in grey.
COLORMAP_NAME = "viridis"

# Light plots read like figures in a paper and export without inverting colours.
pg.setConfigOptions(antialias=True, background="w", foreground="k")


def series_color(index: int) -> str:
    """Return the palette colour of the ``index``-th series or group."""
    return PALETTE[index % len(PALETTE)]


class ViewWidget(QWidget):
    """Draws one kind of view data; one instance per view key, updated with each snapshot.

    Subclasses set :attr:`view_type` and implement :meth:`set_view`. Everything meant for an
    exported image is drawn on :attr:`canvas`; controls that are not part of the figure (such as
    toggles) sit in :attr:`header` above it.
    """

    #: The core view type this widget draws.
    view_type: ClassVar[type]

    def __init__(self, view: View, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = view.key
        self.view: View | None = None
        self._labels: tuple[str, ...] | None = None

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.ci.setContentsMargins(*BASE_MARGINS)
        self.canvas.setMinimumSize(240, 200)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.header = QWidget()
        self.header.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.canvas, stretch=1)

    def set_view(self, view: View) -> None:
        """Draw ``view``, which has this widget's key and type, replacing what was drawn."""
        raise NotImplementedError

    def show_labels(self, plot: pg.PlotItem, view: View) -> None:
        """Show the view's title and axis labels; a later run's view may change them."""
        labels = (view.title, view.x_label, view.y_label)
        if labels == self._labels:
            return
        self._labels = labels
        plot.setTitle(view.title, size="11pt")
        plot.setLabel("bottom", view.x_label)
        plot.setLabel("left", view.y_label)

    def figure_item(self) -> QGraphicsItem:
        """Return the graphics item that makes up the figure, for export."""
        return self.canvas.ci


def style_plot(plot: pg.PlotItem) -> None:
    """Give a plot the house style: a frame of ticks on all four sides.

    No grid: pyqtgraph draws grid lines as part of the axes, so every new point of a live curve
    repaints them across the whole plot; measured offscreen, a curve's frame took 30 ms with a
    grid and 6 ms without.
    """
    for side in ("top", "right"):
        plot.showAxis(side)
        plot.getAxis(side).setStyle(showValues=False)
