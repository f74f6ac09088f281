"""Training off the GUI thread: one thread per run, driven by commands, publishing snapshots.

A :class:`TrainingThread` builds its :class:`~core.runner.Runner` inside the thread and drives
it; it never touches a widget. It takes commands (train, pause, step, stop) through a queue, so
the GUI thread never waits on it, and publishes immutable snapshots at screen pace, with the
expensive views recomputed less often. A :class:`TrainingSession` lives on the GUI thread and
owns the threads: it starts a new run only after the previous run's thread has finished (runs
seed torch's global generator, so two must never overlap), forwards only the current run's
snapshots and says whether the run is training.
"""

from __future__ import annotations

import enum
import gc
import logging
import queue
import time
from collections.abc import Mapping
from typing import Any

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QObject, QThread, Signal

from core.experiment import Experiment
from core.params import ParamError
from core.runner import Runner, Snapshot

log = logging.getLogger(__name__)

#: Shortest wall time between two published snapshots while training (about 30 a second).
PUBLISH_INTERVAL_S = 1 / 30
#: Shortest wall time between two recomputations of the expensive views while training.
VIEWS_INTERVAL_S = 0.5
#: Views that take long to compute (a density grid through a slow inverse) wait this many times
#: their own cost before the next refresh, so they never take more than a fifth of training.
VIEWS_COST_FACTOR = 4.0


#: pyqtgraph's collector of cyclic garbage on the GUI thread, once a training session exists.
_gui_thread_gc: GarbageCollector | None = None


def collect_garbage_on_gui_thread() -> None:
    """Stop Python's automatic garbage collection and collect on a GUI-thread timer instead.

    Automatic collection runs in whichever thread happens to allocate. Run in a training
    thread (or the window's export thread), it can free a cycle that holds a GUI-thread
    QObject with a running timer; Qt cannot stop the timer from there ("Timers cannot be
    stopped from another thread") and a later tick goes to freed memory. It showed as a
    segmentation fault in the test suite, in a third of full runs on this machine.
    """
    global _gui_thread_gc
    if _gui_thread_gc is None:
        # What is alive now (torch, Qt, the modules) lives to the end: set apart from the
        # collector, a full collection on the GUI thread takes microseconds instead of 60 ms.
        gc.collect()
        gc.freeze()
        _gui_thread_gc = GarbageCollector(interval=1.0)


class Command(enum.Enum):
    """What the GUI thread can ask of a training thread."""

    TRAIN = "train"
    PAUSE = "pause"
    STEP = "step"
    STOP = "stop"


class TrainingThread(QThread):
    """Builds and drives one run's :class:`~core.runner.Runner` in its own thread.

    Parameters
    ----------
    experiment_cls
        The experiment to train.
    config
        Its parameter values; a bad value is reported through :attr:`failed`.
    run_id
        Number stamped on every snapshot of this run.
    train
        Whether to start training as soon as the run is built, or wait paused.
    """

    #: A new snapshot (``Snapshot``), whether the run is training after it, and how many
    #: commands the thread had handled when it took the snapshot.
    published = Signal(object, bool, int)
    #: The run could not be built or crashed: run id and a message for the user.
    failed = Signal(int, str)

    def __init__(
        self,
        experiment_cls: type[Experiment],
        config: Mapping[str, Any],
        run_id: int,
        train: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.experiment_cls = experiment_cls
        self.config = dict(config)
        self.run_id = run_id
        self._train_at_start = train
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.setObjectName(f"training-{experiment_cls.name}-{run_id}")

    def send(self, command: Command) -> None:
        """Queue a command; safe from any thread, returns at once."""
        self._commands.put(command)

    def run(self) -> None:  # noqa: D102 (QThread's entry point, run in the new thread)
        title = self.experiment_cls.title
        try:
            runner = Runner(self.experiment_cls, self.config, run_id=self.run_id)
        except ParamError as e:
            self.failed.emit(self.run_id, f"Cannot start {title}: {e}")
            return
        except Exception as e:  # an experiment's own bug must not take the window down
            log.exception("building run %d of %s failed", self.run_id, title)
            self.failed.emit(self.run_id, f"Cannot start {title}: {type(e).__name__}: {e}")
            return

        try:
            self._drive(runner)
        except Exception as e:
            log.exception("run %d of %s crashed", self.run_id, title)
            self.failed.emit(
                self.run_id,
                f"{title} stopped at step {runner.step_count}: {type(e).__name__}: {e}",
            )

    def _drive(self, runner: Runner) -> None:
        training = self._train_at_start
        handled = 0
        views_cost = self._publish(runner, training, handled, refresh_views=True)
        last_publish = last_views = time.perf_counter()

        while True:
            # Commands: block for one while paused, take whatever is waiting while training.
            commands = self._take_commands(block=not training)
            for command in commands:
                handled += 1
                if command is Command.STOP:
                    return
                if command is Command.TRAIN:
                    training = True
                elif command is Command.PAUSE:
                    training = False
                elif command is Command.STEP:
                    training = False
                    runner.step(evaluate=True)
            if commands:
                # The user acted: show the outcome at once, with every view fresh.
                views_cost = self._publish(runner, training, handled, refresh_views=True)
                last_publish = last_views = time.perf_counter()
            if not training:
                continue

            # One step; a divergence pauses the run with the last good state kept.
            if runner.step() is None:
                training = False
                views_cost = self._publish(runner, training, handled, refresh_views=True)
                continue

            # Snapshots at screen pace; the expensive views at a slower pace that grows with
            # their cost.
            now = time.perf_counter()
            if now - last_publish >= PUBLISH_INTERVAL_S:
                views_wait = max(VIEWS_INTERVAL_S, VIEWS_COST_FACTOR * views_cost)
                refresh = now - last_views >= views_wait
                cost = self._publish(runner, training, handled, refresh_views=refresh)
                last_publish = time.perf_counter()
                if refresh:
                    views_cost, last_views = cost, last_publish

    def _take_commands(self, block: bool) -> list[Command]:
        commands = [self._commands.get()] if block else []
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                return commands

    def _publish(self, runner: Runner, training: bool, handled: int, refresh_views: bool) -> float:
        # Returns the seconds the snapshot took, which is the cost of its views when refreshed.
        start = time.perf_counter()
        snapshot = runner.snapshot(refresh_views=refresh_views)
        self.published.emit(snapshot, training, handled)
        return time.perf_counter() - start


class TrainingSession(QObject):
    """The GUI thread's handle on training: one current run, its state and its snapshots.

    Snapshots of runs that were replaced are dropped here, so a receiver only ever sees the
    current run. Starting a new run stops the current one cooperatively and builds the new one
    once the old thread has finished; several starts in quick succession build only the last.
    """

    #: The newest snapshot of the current run.
    snapshotReady = Signal(object)
    #: Whether the current run is training (or about to, for a run being built).
    trainingChanged = Signal(bool)
    #: True while a run is being built, False once it has shown its first snapshot or failed.
    busyChanged = Signal(bool)
    #: The current run could not be built or crashed; the message says why.
    runFailed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        collect_garbage_on_gui_thread()  # built on the GUI thread, before any worker thread
        self.run_id = 0
        self.thread: TrainingThread | None = None
        self.latest: Snapshot | None = None
        self._training = False
        self._busy = False
        self._request: tuple[type[Experiment], dict[str, Any]] | None = None
        self._pending: TrainingThread | None = None
        self._retiring: set[TrainingThread] = set()
        self._sent = 0  # commands sent to the current run
        self._handled = 0  # of which the run has reported the outcome

    @property
    def training(self) -> bool:
        """Whether the current run is training."""
        return self._training

    @property
    def busy(self) -> bool:
        """Whether a run is being built."""
        return self._busy

    @property
    def settled(self) -> bool:
        """Whether the current run has shown the outcome of every command sent to it."""
        return self.latest is not None and self._handled == self._sent

    def start(
        self, experiment_cls: type[Experiment], config: Mapping[str, Any], train: bool
    ) -> int:
        """Replace the current run with a new one; return the new run's id."""
        self.run_id += 1
        self._request = (experiment_cls, dict(config))
        self._retire(self.thread)
        self.thread = None
        self.latest = None
        self._sent = self._handled = 0
        self._drop_pending()
        # The session owns its threads (Qt parent), so each is deleted once: by deleteLater when
        # it has finished, or with the session after shutdown.
        self._pending = TrainingThread(experiment_cls, config, self.run_id, train, parent=self)
        self._set_training(train)
        self._set_busy(True)
        self._launch_pending()
        return self.run_id

    def restart(self, train: bool | None = None) -> int | None:
        """Start the last requested run afresh (same experiment and configuration)."""
        if self._request is None:
            return None
        return self.start(*self._request, train=self._training if train is None else train)

    def train(self) -> None:
        """Resume (or start) training; a run that failed to build is tried again."""
        if self._pending is None and (self.thread is None or self.thread.isFinished()):
            self.restart(train=True)
            return
        self._send(Command.TRAIN)
        self._set_training(True)

    def pause(self) -> None:
        """Pause training; the run publishes a fresh snapshot with all its views."""
        self._send(Command.PAUSE)
        self._set_training(False)

    def toggle(self) -> None:
        """Pause if training, else train."""
        self.pause() if self._training else self.train()

    def step(self) -> None:
        """Pause and take exactly one step."""
        self._send(Command.STEP)
        self._set_training(False)

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Stop every thread and wait for them; return whether all finished in time."""
        self._drop_pending()
        self._retire(self.thread)
        self.thread = None
        deadline = time.monotonic() + timeout_s
        finished = True
        for thread in list(self._retiring):
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if thread.wait(remaining_ms):
                self._retiring.discard(thread)
            else:
                log.error("training thread %s did not stop in time", thread.objectName())
                finished = False
        self._set_busy(False)
        return finished

    # ---- threads ----------------------------------------------------------------------------

    def _send(self, command: Command) -> None:
        # A command for a run still being built waits in its queue until the run starts.
        target = self.thread or self._pending
        if target is not None:
            target.send(command)
            self._sent += 1

    def _drop_pending(self) -> None:
        # A run replaced before its thread started: nothing ran, so it can go at once.
        if self._pending is not None:
            self._pending.deleteLater()
            self._pending = None

    def _retire(self, thread: TrainingThread | None) -> None:
        if thread is None:
            return
        thread.send(Command.STOP)
        thread.published.disconnect(self._on_published)
        thread.failed.disconnect(self._on_failed)
        if thread.isFinished():
            thread.deleteLater()
        else:
            self._retiring.add(thread)

    def _launch_pending(self) -> None:
        if self._pending is None or any(t.isRunning() for t in self._retiring):
            return
        thread, self._pending = self._pending, None
        thread.published.connect(self._on_published)
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_finished)
        self.thread = thread
        thread.start()

    def _on_finished(self) -> None:
        thread = self.sender()
        if thread in self._retiring:
            self._retiring.discard(thread)
            thread.deleteLater()
        self._launch_pending()

    # ---- what the threads report ------------------------------------------------------------

    def _on_published(self, snapshot: Snapshot, training: bool, handled: int) -> None:
        if snapshot.run_id != self.run_id:
            return
        self.latest = snapshot
        self._handled = handled
        self._set_busy(False)
        # A snapshot taken before the run saw the latest command would undo what the user
        # just asked for (a paused run showing as training); the thread's word counts only
        # once it has caught up, as it does after pausing itself on a divergence.
        if handled == self._sent:
            self._set_training(training)
        self.snapshotReady.emit(snapshot)

    def _on_failed(self, run_id: int, message: str) -> None:
        if run_id != self.run_id:
            return
        self._set_busy(False)
        self._set_training(False)
        self.runFailed.emit(message)

    def _set_training(self, training: bool) -> None:
        if training != self._training:
            self._training = training
            self.trainingChanged.emit(training)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)
