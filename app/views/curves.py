"""Metric curves against the training step, with smoothing and a log-scale toggle."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QWidget

from app.views.view_widget import ViewWidget, series_color, style_plot
from core.views import Curves, Reference, Series

#: Half-width of the smoothing window as a fraction of the number of points.
SMOOTHING_FRACTION = 0.02
#: Series with fewer points than this are drawn with a marker at each point, so that a metric
#: evaluated now and then is visible from its first value on.
MARKER_LIMIT = 60


def moving_average(y: np.ndarray, half_width: int) -> np.ndarray:
    """Return the centred moving average of ``y``, with the window shrinking at both ends."""
    n = len(y)
    if half_width < 1 or n < 3:
        return y
    cumulative = np.concatenate([[0.0], np.cumsum(y, dtype=np.float64)])
    i = np.arange(n)
    low = np.maximum(i - half_width, 0)
    high = np.minimum(i + half_width + 1, n)
    return (cumulative[high] - cumulative[low]) / (high - low)


def smooth(y: np.ndarray, log_scale: bool) -> np.ndarray:
    """Smooth a curve for display; on a log scale, average the logarithms.

    Averaging logarithms keeps a loss that falls over decades from being dominated by its early,
    large values.
    """
    half_width = int(len(y) * SMOOTHING_FRACTION)
    if log_scale and len(y) and np.all(y > 0):
        return np.power(10.0, moving_average(np.log10(y), half_width))
    return moving_average(y, half_width)


class DecadeAxis(pg.AxisItem):
    """An axis that, on a log scale, labels decades first, then 2 and 5, then the rest.

    pyqtgraph puts every tick of a range spanning a few decades (1, 2, … 9, 10, 20 …) on one
    level, so all are labelled and the labels overlap; split into levels, the lower ones are
    labelled only where there is room.
    """

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 (Qt names)
        ticks = super().logTickValues(minVal, maxVal, size, stdTicks)
        if not ticks or ticks[-1][0] is not None:
            return ticks  # many decades: pyqtgraph already spaces them
        levels: list[list[float]] = [[], [], []]
        # The levels pyqtgraph returns overlap (a decade is also "1 times" that decade).
        for v in sorted({round(v, 9) for _, values in ticks for v in values}):
            mantissa = round(10 ** (v - math.floor(v + 1e-9)))
            levels[0 if mantissa in (1, 10) else 1 if mantissa in (2, 5) else 2].append(v)
        if not levels[0]:
            return ticks
        return [(1.0, levels[0]), (None, levels[1]), (None, levels[2])]


class CurvesWidget(ViewWidget):
    """Draws a :class:`~core.views.Curves` view: one line per series, references dashed.

    Long curves are drawn downsampled to the screen's resolution and clipped to the visible
    range, so a run of many thousand steps costs no more to draw than a short one.
    """

    view_type = Curves

    def __init__(self, view: Curves, parent: QWidget | None = None) -> None:
        super().__init__(view, parent)
        self.plot: pg.PlotItem = self.canvas.addPlot(axisItems={"left": DecadeAxis("left")})
        style_plot(self.plot)
        # Steps are whole numbers; a curve of one point still gets a readable step axis.
        self.plot.setLimits(minXRange=2.0)
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextSize="9pt")
        self._raw: dict[str, pg.PlotDataItem] = {}
        self._smooth: dict[str, pg.PlotDataItem] = {}
        self._references: tuple[Reference, ...] = ()
        self._reference_lines: list[pg.InfiniteLine] = []
        # What is drawn: the display toggles, and each series' fingerprint and marker state.
        self._style: tuple[bool, bool] | None = None
        self._drawn: dict[str, tuple[float, ...]] = {}
        self._sparse: dict[str, bool] = {}

        # Display toggles, outside the figure so exports show only the plot.
        self.smooth_box = QCheckBox("Smooth")
        self.smooth_box.setToolTip("Draw a moving average over the raw values (shown faded).")
        self.log_box = QCheckBox("Log y")
        self.log_box.setToolTip("Logarithmic y axis; values at or below zero are not drawn.")
        self.log_box.setChecked(view.log_y)
        row = QHBoxLayout(self.header)
        row.setContentsMargins(8, 2, 8, 0)
        row.addStretch(1)
        row.addWidget(self.smooth_box)
        row.addWidget(self.log_box)
        self.header.show()
        self.smooth_box.toggled.connect(self._redraw)
        self.log_box.toggled.connect(self._redraw)

        self.set_view(view)

    def set_view(self, view: Curves) -> None:
        self.view = view
        self.show_labels(self.plot, view)
        log_scale, smoothing = style = (self.log_box.isChecked(), self.smooth_box.isChecked())
        restyle = style != self._style
        if restyle:
            self.plot.setLogMode(y=log_scale)
            self._style = style

        # One raw and one smoothed line per series, created when the series first appears.
        # A series that has not changed is not touched, so its plot is not repainted for it.
        for index, series in enumerate(view.series):
            new = series.label not in self._raw
            if new:
                self._add_series(series.label, index)
            drawn = _fingerprint(series)
            if not (new or restyle) and drawn == self._drawn.get(series.label):
                continue
            self._drawn[series.label] = drawn

            raw, smoothed = self._raw[series.label], self._smooth[series.label]
            sparse = len(series.x) < MARKER_LIMIT
            # Antialiasing a dense line costs several times more to paint and shows nothing.
            raw.setData(series.x, series.y, antialias=sparse)
            if new or restyle or sparse != self._sparse.get(series.label):
                self._sparse[series.label] = sparse
                raw.setPen(self._pen(index, faded=smoothing))
                raw.setSymbol("o" if sparse else None)
                if sparse:
                    raw.setSymbolSize(5)
                    raw.setSymbolPen(None)
                    raw.setSymbolBrush(series_color(index))
            if smoothing:
                smoothed.setData(series.x, smooth(series.y, log_scale))
            smoothed.setVisible(smoothing)

        self.legend.setVisible(len(view.series) > 1)

        # The new data's range now, not during the paint, which would then have to run twice.
        self.plot.getViewBox().prepareForPaint()

        # Reference lines sit at the logarithm of their value on a log axis.
        moved = view.references != self._references
        if moved:
            self._set_references(view)
        if moved or restyle:
            for line, reference in zip(self._reference_lines, view.references, strict=True):
                shown = reference.value > 0 or not log_scale
                line.setVisible(shown)
                if shown:
                    line.setPos(math.log10(reference.value) if log_scale else reference.value)

    def _add_series(self, label: str, index: int) -> None:
        # Downsampled to about two points per pixel column (the extremes of each for the raw
        # values, one sample for the smooth line): a 20,000-step curve then paints in 2 ms
        # instead of 35.
        raw = self.plot.plot(pen=self._pen(index, faded=False), autoDownsampleFactor=1.0)
        raw.setDownsampling(auto=True, method="peak")
        smoothed = self.plot.plot(
            pen=pg.mkPen(series_color(index), width=2), autoDownsampleFactor=2.0
        )
        smoothed.setDownsampling(auto=True, method="subsample")
        # The legend shows the series' solid colour whether or not the raw line is faded.
        self.legend.addItem(pg.PlotDataItem(pen=pg.mkPen(series_color(index), width=2)), label)
        for item in (raw, smoothed):
            item.setClipToView(True)
            item.setSkipFiniteCheck(True)
        self._raw[label] = raw
        self._smooth[label] = smoothed

    def _set_references(self, view: Curves) -> None:
        for line in self._reference_lines:
            self.plot.removeItem(line)
        self._references = view.references
        self._reference_lines = []
        for reference in view.references:
            line = pg.InfiniteLine(
                angle=0,
                movable=False,
                pen=pg.mkPen("#555555", width=1.5, style=Qt.PenStyle.DashLine),
                label=f"{reference.label} = {reference.value:.4g}",
                labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)], "color": "#333333"},
            )
            self.plot.addItem(line)
            self._reference_lines.append(line)

    @staticmethod
    def _pen(index: int, faded: bool) -> pg.QtGui.QPen:
        color = pg.mkColor(series_color(index))
        if faded:
            color.setAlpha(70)
        return pg.mkPen(color, width=1.5)

    def _redraw(self) -> None:
        if self.view is not None:
            self.set_view(self.view)


def _fingerprint(series: Series) -> tuple[float, ...]:
    # Histories only grow, so length and last point tell a changed series from an unchanged one.
    if len(series.x) == 0:
        return (0,)
    return (len(series.x), float(series.x[-1]), float(series.y[-1]))
