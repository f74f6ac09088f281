import threading
import time

import pytest
import torch
from fakes import LineFit
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from app.worker import TrainingSession


@pytest.fixture
def window(qtbot):
    window = MainWindow({"linefit": LineFit})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.drawn is not None, timeout=10_000)
    return window


def wait_for_step(qtbot, window, step, timeout=10_000):
    qtbot.waitUntil(
        lambda: window.drawn is not None and window.drawn.step >= step, timeout=timeout
    )


def test_opens_paused_and_trains_live(qtbot, window):
    assert window.windowTitle() == "Benchtop — Line fit (test)"
    assert window.drawn.step == 0
    assert not window.session.training

    window.train_action.trigger()
    assert window.train_action.text() == "&Pause"
    wait_for_step(qtbot, window, 200)
    first = window.drawn.step
    wait_for_step(qtbot, window, first + 200)

    # Every view of the snapshot has its widget, with the data drawn.
    snapshot = window.drawn
    assert [w.key for w in window.view_area.widgets()] == [v.key for v in snapshot.views]
    loss = window.view_area.widgets()[0]
    x, _ = loss._raw["loss"].getData()
    assert x[-1] == snapshot.history.steps[-1]
    status = window.run_label.text()
    assert f"step {snapshot.step:,}" in status and "steps/s" in status and "cpu" in status
    assert "loss" in status and "error_a" in status


def test_snapshots_are_drawn_at_screen_pace(qtbot, window):
    drawn = []
    window.snapshotDrawn.connect(lambda s: drawn.append(time.perf_counter()))
    window.session.train()
    wait_for_step(qtbot, window, 500)
    qtbot.wait(500)
    window.session.pause()
    gaps = [b - a for a, b in zip(drawn, drawn[1:], strict=False)]
    assert len(drawn) >= 5
    assert min(gaps) >= 0.025  # at most about 30 draws a second


def test_step_and_reset(qtbot, window):
    with qtbot.waitSignal(window.snapshotDrawn, check_params_cb=lambda s: s.step == 1):
        window.step_action.trigger()
    with qtbot.waitSignal(window.snapshotDrawn, check_params_cb=lambda s: s.step == 2):
        window.step_action.trigger()
    old_run = window.session.run_id
    with qtbot.waitSignal(window.snapshotDrawn, check_params_cb=lambda s: s.step == 0):
        window.reset_action.trigger()
    assert window.drawn.run_id == old_run + 1


def test_moving_a_slider_starts_a_new_run(qtbot, window):
    window.session.train()
    wait_for_step(qtbot, window, 100)
    old_run = window.drawn.run_id
    old_finished = []
    # Direct: recorded in the old thread as it ends, before anything queued to the window.
    window.session.thread.finished.connect(
        lambda: old_finished.append(True), Qt.ConnectionType.DirectConnection
    )

    # As a user would: the control changes; the run follows once the hand rests.
    window.controls.controls["lr"].setValue(0.2)
    qtbot.waitUntil(
        lambda: window.drawn.run_id != old_run and window.drawn.step > 10, timeout=10_000
    )
    assert window.drawn.config["lr"] == 0.2
    assert window.session.training
    assert old_finished == [True]


def test_changing_a_choice_retrains_with_it(qtbot, window):
    window.controls.controls["optimizer"].setValue("adam")
    qtbot.waitUntil(lambda: window.drawn.config["optimizer"] == "adam", timeout=10_000)
    wait_for_step(qtbot, window, 20)


def test_space_toggles_training_even_with_a_slider_focused(qtbot, window):
    slider = window.controls.controls["noise"].slider
    window.activateWindow()
    slider.setFocus()
    qtbot.waitUntil(slider.hasFocus)
    qtbot.keyClick(slider, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.session.training)
    qtbot.keyClick(slider, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.session.training)
    assert window.drawn.config["noise"] == 0.1  # the slider did not move


def test_divergence_pauses_with_the_step_named(qtbot, window):
    window.controls.controls["diverge_at"].setValue(50)
    qtbot.waitUntil(lambda: window.drawn.diverged is not None, timeout=10_000)
    assert window.drawn.step == 49
    assert not window.session.training
    assert "Diverged at step 50" in window.statusBar().currentMessage()
    assert window.notice.isVisible() and "Diverged at step 50" in window.notice.text()

    # Train goes on from the last good state (the fake diverges only once).
    window.train_action.trigger()
    wait_for_step(qtbot, window, 80)
    assert window.drawn.diverged is None
    assert not window.notice.isVisible()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_run_that_cannot_start_says_why(qtbot, window):
    with qtbot.waitSignal(window.session.runFailed, timeout=5000):
        window.controls.controls["device"].setValue("cuda")
    assert "no usable CUDA device" in window.notice.text()
    assert "no usable CUDA device" in window.statusBar().currentMessage()
    assert not window.session.training
    assert not window.busy.isVisible()

    # Choosing a usable device again starts a run.
    window.controls.controls["device"].setValue("cpu")
    qtbot.waitUntil(lambda: window.drawn.config["device"] == "cpu", timeout=10_000)


def test_closing_mid_training_is_prompt_and_quiet(qtbot, qtlog):
    window = MainWindow({"linefit": LineFit})
    window.show()
    qtbot.waitUntil(lambda: window.drawn is not None, timeout=10_000)
    window.session.train()
    wait_for_step(qtbot, window, 100)
    thread = window.session.thread

    start = time.perf_counter()
    window.close()
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert thread.isFinished()
    window.deleteLater()
    qtbot.wait(50)
    thread_messages = [r.message for r in qtlog.records if "thread" in r.message.lower()]
    assert thread_messages == []


def test_new_runs_wait_for_the_old_thread(qtbot):
    session = TrainingSession()
    runs = [session.start(LineFit, {"lr": lr}, train=True) for lr in (0.01, 0.02, 0.03)]
    qtbot.waitUntil(lambda: session.latest is not None and session.latest.step > 5)
    assert session.latest.run_id == runs[-1]
    assert session.latest.config["lr"] == 0.03
    assert session.shutdown()


def test_garbage_cycles_are_collected_on_the_gui_thread(qtbot):
    # A cycle freed by Python's automatic collection in a worker thread could take a
    # GUI-thread QObject with it, whose timers Qt cannot stop from there. With a session,
    # cycles wait for the GUI thread's collector, however much a worker thread allocates.
    TrainingSession().shutdown()
    freed_in = []

    class Node:
        def __init__(self):
            self.me = self

        def __del__(self):
            freed_in.append(threading.current_thread().name)

    kept = []

    def allocate():
        Node()  # now garbage, held only by its own cycle
        kept.extend([] for _ in range(100_000))  # past every generation's threshold

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert freed_in == []

    qtbot.waitUntil(lambda: len(freed_in) > 0, timeout=5_000)
    assert freed_in == [threading.main_thread().name]
