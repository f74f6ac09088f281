"""The window's plots: one widget per view of the current snapshot, laid out by view type."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from app.views import HeatmapWidget, ViewWidget, create_view_widget
from core.runner import Snapshot
from core.views import Curves, View

#: Most plots side by side before a row wraps.
MAX_COLUMNS = 3


class ViewArea(QWidget):
    """Shows every view of a snapshot: curves in the top row(s), all other views below.

    Widgets are kept and updated in place while the snapshot's views keep their keys and
    types, and rebuilt when they change (another experiment, or a run with other views).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._widgets: dict[str, ViewWidget] = {}
        self._signature: tuple[tuple[str, type], ...] = ()
        self._page = QWidget()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self._page)

    def widgets(self) -> list[ViewWidget]:
        """Return the view widgets in the order of the snapshot's views."""
        return list(self._widgets.values())

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Draw every view of ``snapshot``."""
        signature = tuple((view.key, type(view)) for view in snapshot.views)
        if signature != self._signature:
            self._rebuild(snapshot.views)
            self._signature = signature
            return
        for view in snapshot.views:
            self._widgets[view.key].set_view(view)

    def clear(self) -> None:
        """Remove every plot."""
        self._replace_page(QWidget())
        self._widgets = {}
        self._signature = ()

    def _replace_page(self, page: QWidget) -> None:
        old, self._page = self._page, page
        self._layout.replaceWidget(old, page)
        old.hide()
        old.deleteLater()

    def _rebuild(self, views: Sequence[View]) -> None:
        page = QWidget()
        self._widgets = {view.key: create_view_widget(view, page) for view in views}

        # Curves first, then the other views, each group in rows of at most MAX_COLUMNS.
        rows = QVBoxLayout(page)
        rows.setContentsMargins(4, 4, 4, 4)
        rows.setSpacing(6)
        curves = [w for w in self._widgets.values() if isinstance(w.view, Curves)]
        others = [w for w in self._widgets.values() if not isinstance(w.view, Curves)]
        for group in (curves, others):
            for start in range(0, len(group), MAX_COLUMNS):
                row = QHBoxLayout()
                row.setSpacing(6)
                for widget in group[start : start + MAX_COLUMNS]:
                    row.addWidget(widget, stretch=1)
                rows.addLayout(row, stretch=1)
        self._replace_page(page)

        # Heatmaps on one extent pan and zoom together.
        by_extent: dict[tuple[float, ...], HeatmapWidget] = {}
        for widget in self._widgets.values():
            if isinstance(widget, HeatmapWidget):
                first = by_extent.setdefault(widget.view.extent, widget)
                if first is not widget:
                    widget.plot.setXLink(first.plot)
                    widget.plot.setYLink(first.plot)
