"""Starting the window: the Qt application, the asyncio loop through qasync, torch's threads."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import qasync
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from core.runner import set_thread_budget

log = logging.getLogger(__name__)


def run_window(experiment: str | None = None) -> int:
    """Open the main window on ``experiment`` (default: the first one) and run until closed.

    Returns the process exit status.
    """
    # Training leaves one core to the GUI thread, so drawing keeps pace while a model trains.
    set_thread_budget(max(1, (os.cpu_count() or 2) - 1))

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Benchtop")
    app.setApplicationDisplayName("Benchtop")
    # The loop ends when the window says it has closed, after its threads have stopped.
    app.setQuitOnLastWindowClosed(False)

    window = MainWindow(experiment=experiment)
    window.show()

    async def until_closed() -> None:
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        await closed.wait()

    qasync.run(until_closed())
    log.debug("window closed")
    return 0
