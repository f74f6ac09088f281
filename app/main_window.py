"""Benchtop's main window: pick an experiment, move its controls, watch it train, export.

Nothing here is specific to an experiment: the controls come from the experiment's declared
parameters (:mod:`app.controls`), the plots from the typed views in its snapshots
(:mod:`app.view_area`), and training happens in a worker thread (:mod:`app.worker`). The window
draws only the newest snapshot, at most about 30 times a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QFrame,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import QSignalThrottler

from app.controls import ParamControls
from app.export import new_export_folder, render_figure, write_export
from app.notice_bar import NoticeBar
from app.view_area import ViewArea
from app.worker import TrainingSession
from core.experiment import Experiment
from core.runner import Snapshot

log = logging.getLogger(__name__)

#: Shortest time between two redraws, in milliseconds (about 30 frames a second).
DRAW_INTERVAL_MS = 33


class MainWindow(QMainWindow):
    """The experiment picker, its controls, its live plots and the run's status.

    Parameters
    ----------
    experiments
        The experiments to offer, by name; by default every experiment in the catalog.
    experiment
        The name of the experiment shown first; by default the first one offered.
    """

    #: A snapshot was drawn (the window's views and status now show it).
    snapshotDrawn = Signal(object)
    #: An export finished: the folder written to.
    exportFinished = Signal(object)
    #: An export was refused or failed: the message shown to the user.
    exportFailed = Signal(str)
    #: The window was closed and its training stopped.
    closed = Signal()

    def __init__(
        self,
        experiments: Mapping[str, type[Experiment]] | None = None,
        *,
        experiment: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if experiments is None:
            from core.catalog import experiments as catalog_experiments

            experiments = catalog_experiments()
        if not experiments:
            raise ValueError("the window needs at least one experiment")
        self.experiments: dict[str, type[Experiment]] = dict(experiments)
        self.experiment_cls: type[Experiment] = next(iter(self.experiments.values()))
        self.controls: ParamControls | None = None
        self.drawn: Snapshot | None = None
        self._pending: Snapshot | None = None
        self._notified: tuple[int, str] | None = None
        self._export_executor = ThreadPoolExecutor(1, thread_name_prefix="benchtop-export")
        self._export_tasks: set[asyncio.Task[list[Path]]] = set()

        # Training runs in the session's threads; the window hears only the current run.
        self.session = TrainingSession(self)
        self.session.snapshotReady.connect(self._on_snapshot)
        self.session.trainingChanged.connect(self._show_training)
        self.session.busyChanged.connect(self._show_busy)
        self.session.runFailed.connect(self._on_run_failed)
        self._draw_throttle = QSignalThrottler(parent=self)
        self._draw_throttle.setTimeout(DRAW_INTERVAL_MS)
        self._draw_throttle.triggered.connect(self._draw)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_dock()
        self._build_status_bar()
        self.resize(1400, 880)
        self.select_experiment(experiment or next(iter(self.experiments)))

    # ---- building the window ----------------------------------------------------------------

    def _action(
        self, text: str, shortcut: str | QKeySequence.StandardKey, tip: str, slot: Any
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({keys})")
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        icon = self.style().standardIcon
        self.train_action = self._action(
            "&Train", "Space", "Train, or pause a run that is training", self.session.toggle
        )
        self.train_action.setIcon(icon(QStyle.StandardPixmap.SP_MediaPlay))
        self.step_action = self._action(
            "&Step", "Ctrl+Right", "Pause and take one training step", self.session.step
        )
        self.step_action.setIcon(icon(QStyle.StandardPixmap.SP_MediaSkipForward))
        self.reset_action = self._action(
            "&Reset",
            "Ctrl+R",
            "Start the run again from step 0 with the same settings",
            self.reset,
        )
        self.reset_action.setIcon(icon(QStyle.StandardPixmap.SP_BrowserReload))
        self.export_action = self._action(
            "&Export",
            "Ctrl+E",
            "Export plots (PNG, SVG), curves (CSV) and settings (JSON) to a new folder",
            self.export_quick,
        )
        self.export_action.setIcon(icon(QStyle.StandardPixmap.SP_DialogSaveButton))
        self.export_to_action = self._action(
            "Export to &folder…",
            "Ctrl+Shift+E",
            "Export into a folder you choose",
            self.ask_export,
        )
        self.quit_action = self._action("&Quit", "Ctrl+Q", "Close Benchtop", self.close)
        self.shortcuts_action = self._action(
            "&Keyboard shortcuts", "F1", "List the keyboard shortcuts", self.show_shortcuts
        )

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addActions([self.export_action, self.export_to_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = menus.addMenu("&Run")
        run_menu.addActions([self.train_action, self.step_action, self.reset_action])
        self.view_menu = menus.addMenu("&View")
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Run")
        toolbar.setObjectName("run-toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addActions([self.train_action, self.step_action, self.reset_action])
        toolbar.addSeparator()
        toolbar.addAction(self.export_action)
        self.addToolBar(toolbar)

    def _build_central(self) -> None:
        self.notice = NoticeBar()
        self.view_area = ViewArea()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.setSpacing(4)
        layout.addWidget(self.notice)
        layout.addWidget(self.view_area, stretch=1)
        self.setCentralWidget(central)
        # Focus rests on the plots, so keys go to the window's shortcuts.
        self.view_area.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view_area.setFocus()

    def _build_dock(self) -> None:
        self.picker = QComboBox()
        for name, cls in self.experiments.items():
            self.picker.addItem(cls.title, name)
            self.picker.setItemData(
                self.picker.count() - 1, cls.summary, Qt.ItemDataRole.ToolTipRole
            )
        self.picker.setToolTip("The experiment to train")
        self.picker.currentIndexChanged.connect(
            lambda index: self.select_experiment(self.picker.itemData(index))
        )
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: palette(mid);")

        head = QWidget()
        head_form = QFormLayout(head)
        head_form.setContentsMargins(0, 0, 0, 0)
        head_form.addRow("Experiment", self.picker)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)

        self.controls_scroll = QScrollArea()
        self.controls_scroll.setWidgetResizable(True)
        self.controls_scroll.setFrameShape(QFrame.Shape.NoFrame)

        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.addWidget(head)
        layout.addWidget(self.summary)
        layout.addWidget(rule)
        layout.addWidget(self.controls_scroll, stretch=1)

        self.dock = QDockWidget("Settings")
        self.dock.setObjectName("settings-dock")
        self.dock.setWidget(panel)
        self.dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.dock.setMinimumWidth(330)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        self.view_menu.addAction(self.dock.toggleViewAction())

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: a run is being built
        self.busy.setMaximumWidth(120)
        self.busy.setMaximumHeight(14)
        self.busy.setToolTip("Building the run")
        self.busy.hide()
        self.run_label = QLabel()
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        status.addPermanentWidget(self.busy)
        status.addPermanentWidget(self.run_label)

    # ---- experiments and runs ---------------------------------------------------------------

    @property
    def experiment_name(self) -> str:
        """The name of the experiment shown."""
        return self.experiment_cls.name

    def select_experiment(self, name: str) -> None:
        """Show experiment ``name`` with its default settings and build a paused run."""
        if name not in self.experiments:
            raise KeyError(f"no experiment {name!r}; available: {', '.join(self.experiments)}")
        self.experiment_cls = cls = self.experiments[name]
        index = self.picker.findData(name)
        if index != self.picker.currentIndex():
            self.picker.blockSignals(True)
            self.picker.setCurrentIndex(index)
            self.picker.blockSignals(False)
        self.setWindowTitle(f"Benchtop — {cls.title}")
        self.summary.setText(cls.summary)

        # Controls from the declared parameters; a settled change starts a new run.
        self.controls = ParamControls(cls.params())
        self.controls.configChanged.connect(self._on_config_changed)
        self.controls_scroll.setWidget(self.controls)

        self.view_area.clear()
        self.drawn = None
        self._start_run(train=False)

    def reset(self) -> None:
        """Start the current settings afresh, training if the run was training."""
        self._start_run(train=self.session.training)

    def _on_config_changed(self, _config: dict[str, Any]) -> None:
        self._start_run(train=True)

    def _start_run(self, train: bool) -> None:
        self.notice.hide()
        self._pending = None
        self.session.start(self.experiment_cls, self.controls.values(), train=train)

    # ---- what the session reports -----------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        # Only the newest snapshot is kept; the throttle draws it at screen pace.
        self._pending = snapshot
        self._draw_throttle.throttle()

    def _draw(self) -> None:
        snapshot, self._pending = self._pending, None
        if snapshot is None or snapshot.run_id != self.session.run_id:
            return
        self.view_area.show_snapshot(snapshot)
        self.drawn = snapshot
        self._show_run_status(snapshot)
        if snapshot.diverged and (snapshot.run_id, snapshot.diverged) != self._notified:
            self._notified = (snapshot.run_id, snapshot.diverged)
            self.notice.show_message(
                f"{snapshot.diverged} Training is paused: change a setting, or press Train to "
                "go on.",
                "warning",
            )
            self.statusBar().showMessage(snapshot.diverged)
        self.snapshotDrawn.emit(snapshot)

    def _show_run_status(self, snapshot: Snapshot) -> None:
        parts = [
            f"step {snapshot.step:,}",
            f"{snapshot.steps_per_second:,.0f} steps/s",
            snapshot.device,
        ]
        for name in snapshot.headline:
            if name in snapshot.latest:
                parts.append(f"{name} {snapshot.latest[name]:.4g}")
        self.run_label.setText("   ·   ".join(parts))

    def _show_training(self, training: bool) -> None:
        style = self.style()
        if training:
            self.train_action.setText("&Pause")
            self.train_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPause))
            if self.notice.isVisible() and self._notified is not None:
                self.notice.hide()
        else:
            self.train_action.setText("&Train")
            self.train_action.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def _show_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        if busy:
            self.statusBar().showMessage(f"Building {self.experiment_cls.title}…")
        else:
            self.statusBar().clearMessage()

    def _on_run_failed(self, message: str) -> None:
        self.notice.show_message(message, "error")
        self.statusBar().showMessage(message)

    # ---- export -----------------------------------------------------------------------------

    def export_quick(self) -> None:
        """Export to a new time-stamped folder under the user's data folder."""
        self._schedule_export(new_export_folder(self.experiment_name))

    def ask_export(self) -> QFileDialog:
        """Ask for a folder (without blocking the window) and export into it."""
        dialog = QFileDialog(self, "Export to folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._schedule_export(Path(dialog.selectedFiles()[0])))
        dialog.open()
        return dialog

    def _schedule_export(self, folder: Path) -> None:
        task = asyncio.ensure_future(self.export_to(folder))
        self._export_tasks.add(task)
        task.add_done_callback(self._export_tasks.discard)

    async def export_to(self, folder: Path) -> list[Path]:
        """Export every view (PNG, SVG), the curves (CSV) and the settings (JSON) to ``folder``.

        Figures are rendered here, on the GUI thread; the files are encoded and written by a
        dedicated thread. Returns the files written; an empty list if the export was refused,
        with the reason in the status bar.
        """
        folder = Path(folder).expanduser()
        snapshot = self.drawn
        if snapshot is None:
            return self._export_refused("Nothing to export yet: the run has not been drawn.")
        if folder.exists() and not folder.is_dir():
            return self._export_refused(f"Cannot export to {folder}: it is a file, not a folder.")

        figures = [render_figure(widget) for widget in self.view_area.widgets()]
        self.statusBar().showMessage(f"Exporting to {folder}…")
        loop = asyncio.get_running_loop()
        try:
            paths = await loop.run_in_executor(
                self._export_executor, write_export, folder, figures, snapshot
            )
        except OSError as e:
            return self._export_refused(f"Cannot export to {folder}: {e.strerror or e}.")
        self.statusBar().showMessage(f"Exported {len(paths)} files to {folder}")
        self.exportFinished.emit(folder)
        return paths

    def _export_refused(self, message: str) -> list[Path]:
        log.warning(message)
        self.statusBar().showMessage(message)
        self.notice.show_message(message, "error")
        self.exportFailed.emit(message)
        return []

    # ---- help and closing -------------------------------------------------------------------

    def show_shortcuts(self) -> QDialog:
        """Show the keyboard shortcuts in a window that does not block the main one."""
        rows = "".join(
            f"<tr><td><b>{action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}"
            f"</b></td><td>{action.statusTip()}</td></tr>"
            for action in self.findChildren(QAction)
            if not action.shortcut().isEmpty()
        )
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        label = QLabel(f"<table cellspacing='6'>{rows}</table>")
        QVBoxLayout(dialog).addWidget(label)
        dialog.show()
        return dialog

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        """Stop training and wait for its thread, finish pending writes, then close."""
        self._draw_throttle.cancel()
        self.session.shutdown()
        self._export_executor.shutdown(wait=True)
        super().closeEvent(event)
        self.closed.emit()
