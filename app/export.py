"""Figures, curves and configurations written to disk: from the window and headless.

Rendering touches Qt graphics and happens on the GUI thread; it is quick. Encoding and writing
the files is slower and can happen on any thread: :func:`write_export` takes only rendered
images, bytes and the snapshot's own arrays, never a widget. Every file is written atomically
through :mod:`core.io`, so an export interrupted halfway leaves no half-written file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from pyqtgraph.exporters import ImageExporter
from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QCoreApplication,
    QEvent,
    QIODevice,
    QRectF,
    QSize,
)
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QApplication, QWidget
from superqt.utils import QMessageHandler

from app.views import ViewWidget, create_view_widget
from core.io import write_atomic, write_csv, write_json
from core.runner import Snapshot
from core.views import View

log = logging.getLogger(__name__)

#: Image formats a view can be written in.
IMAGE_FORMATS = ("png", "svg")

#: Pixel size of each figure written headless (width, height).
HEADLESS_SIZE = (640, 480)

#: Resolution of exported PNGs relative to the screen, for figures that print sharply.
PNG_SCALE = 2.0


@dataclass(frozen=True)
class RenderedFigure:
    """One view rendered on the GUI thread, ready to be written from any thread.

    ``images`` maps a format to a ``QImage`` (``png``) or finished bytes (``svg``).
    """

    key: str
    images: dict[str, QImage | bytes]


def render_png(widget: ViewWidget, scale: float = 1.0) -> QImage:
    """Render a view's figure to an image ``scale`` times its size on screen."""
    exporter = ImageExporter(widget.figure_item())
    width = max(1, round(exporter.params["width"] * scale))
    exporter.params["width"] = width  # the exporter keeps the aspect ratio
    image = exporter.export(toBytes=True)
    return image.copy()


def render_svg(widget: ViewWidget) -> bytes:
    """Render a view's figure as SVG with Qt's own generator.

    pyqtgraph's SVG exporter fails on ordinary plots in pyqtgraph 0.14 (pyqtgraph issue 3485);
    Qt's ``QSvgGenerator`` paints the same scene and writes vector paths and embedded images.
    """
    item = widget.figure_item()
    source = item.sceneBoundingRect()
    target = QRectF(0, 0, source.width(), source.height())

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(round(source.width()), round(source.height())))
    generator.setViewBox(target)
    # Sizes in points (text, markers) must map to the same pixels as on screen.
    generator.setResolution(widget.canvas.logicalDpiX())
    title = getattr(widget.view, "title", widget.key)
    generator.setTitle(title)
    generator.setDescription(f"Benchtop view '{widget.key}'")

    # The scene does not paint the view's background, so the figure gets it first.
    painter = QPainter(generator)
    try:
        painter.fillRect(target, widget.canvas.backgroundBrush())
        item.scene().render(painter, target, source)
    finally:
        painter.end()
    buffer.close()
    return bytes(buffer.data())


def render_figure(
    widget: ViewWidget, formats: Iterable[str] = IMAGE_FORMATS, png_scale: float = PNG_SCALE
) -> RenderedFigure:
    """Render one view widget in every format asked for; call on the GUI thread."""
    images: dict[str, QImage | bytes] = {}
    for fmt in _checked_formats(formats):
        images[fmt] = render_png(widget, png_scale) if fmt == "png" else render_svg(widget)
    return RenderedFigure(widget.key, images)


def encode_png(image: QImage) -> bytes:
    """Return ``image`` as PNG bytes; safe on any thread."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("Qt could not encode the image as PNG")
    buffer.close()
    return bytes(data)


def write_figures(figures: Iterable[RenderedFigure], folder: Path) -> list[Path]:
    """Write each rendered figure as ``<key>.<format>`` in ``folder``; safe on any thread."""
    paths = []
    for figure in figures:
        for fmt, image in figure.images.items():
            data = encode_png(image) if isinstance(image, QImage) else image
            paths.append(write_atomic(folder / f"{figure.key}.{fmt}", data))
    return paths


def write_export(
    folder: Path, figures: Sequence[RenderedFigure], snapshot: Snapshot | None
) -> list[Path]:
    """Write a whole export: the figures, the metrics as CSV and the configuration as JSON.

    The curves come from the snapshot's own history (step, seconds and every logged metric),
    not from what the plots show. Safe on any thread; raises ``OSError`` for a bad folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_figures(figures, folder)
    if snapshot is not None:
        header, rows = snapshot.history.rows()
        paths.append(write_csv(folder / "metrics.csv", header, rows))
        config = {"experiment": snapshot.experiment, **snapshot.config}
        paths.append(write_json(folder / "config.json", config))
    return paths


def default_export_root() -> Path:
    """Return the folder under the user's data folder that quick exports go into."""
    return Path(platformdirs.user_data_dir("Benchtop", appauthor=False)) / "exports"


def new_export_folder(experiment: str, root: Path | None = None) -> Path:
    """Return a fresh folder name ``<root>/<experiment>-YYYYmmdd-HHMMSS`` (not yet created)."""
    root = default_export_root() if root is None else root
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = root / f"{experiment}-{stamp}"
    suffix = 2
    while folder.exists():
        folder = root / f"{experiment}-{stamp}-{suffix}"
        suffix += 1
    return folder


def ensure_application() -> QApplication:
    """Return the running ``QApplication``, creating an offscreen one when there is none."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(["benchtop", "-platform", "offscreen"])
    return app


def write_view_images(
    views: Sequence[View], folder: Path, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Render views with the window's own view widgets, offscreen, and write them to files.

    Used by the command line after a headless run. Writes one file per view and format, named
    by the view's key (``loss.png``, ``target.svg`` …), and returns their paths.
    """
    formats = _checked_formats(formats)
    app = ensure_application()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Qt's remarks about painting offscreen (which the offscreen platform makes on every show)
    # are kept for debugging rather than printed.
    paths: list[Path] = []
    with QMessageHandler() as qt_messages:
        for view in views:
            # Laid out at a fixed size without appearing on any screen.
            widget = create_view_widget(view)
            widget.header.hide()
            _show_offscreen(widget, app)
            try:
                figure = render_figure(widget, formats, png_scale=1.0)
            finally:
                widget.close()
                widget.deleteLater()
            paths += write_figures([figure], folder)
        # Delete the widgets now rather than whenever an event loop next runs.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    for _level, message, _context in qt_messages.records:
        log.debug("Qt: %s", message)
    return paths


def _show_offscreen(widget: QWidget, app: QApplication) -> None:
    from PySide6.QtCore import Qt

    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    widget.resize(*HEADLESS_SIZE)
    widget.show()
    app.processEvents()


def _checked_formats(formats: Iterable[str]) -> tuple[str, ...]:
    formats = tuple(formats)
    unknown = [f for f in formats if f not in IMAGE_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown image format(s) {', '.join(unknown)}; choose from {', '.join(IMAGE_FORMATS)}"
        )
    return formats
