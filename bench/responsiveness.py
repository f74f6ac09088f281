"""How late the GUI thread answers while a flow trains with every view live.

A precise Qt timer asks for the GUI thread every 10 ms and records how late each tick arrives
(the gap since the previous tick, less 10 ms). It runs first with the run paused, as a baseline
measured in the same process, then for the given time while the window trains, drawing the
loss and KL curves and both density heatmaps at screen pace. Prints p50, p99 and the maximum
of each phase, and the training speed reached. Goal: p99 under 15 ms while training.

    python bench/responsiveness.py                 # offscreen, 20 s on U3 with a 2-layer DSF
    python bench/responsiveness.py --seconds 60 --target U1 --flow ddsf
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync  # noqa: E402
from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from core.flows.experiment import FlowExperiment  # noqa: E402
from core.runner import set_thread_budget  # noqa: E402

TICK_MS = 10


class LatenessProbe:
    """Records the lateness of a repeating 10 ms timer on the GUI thread, in milliseconds."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.samples: list[float] = []
        self._last: float | None = None

    def start(self) -> None:
        self.samples, self._last = [], None
        self.timer.start()

    def stop(self) -> np.ndarray:
        self.timer.stop()
        return np.asarray(self.samples)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now


def describe(name: str, lateness: np.ndarray) -> str:
    p50, p99 = np.percentile(lateness, [50, 99])
    return (
        f"{name:<10} ticks {len(lateness):>6}   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   "
        f"max {lateness.max():7.2f} ms"
    )


async def measure(window: MainWindow, args: argparse.Namespace) -> None:
    probe = LatenessProbe()
    drawn: list[float] = []
    window.snapshotDrawn.connect(lambda _s: drawn.append(time.perf_counter()))

    # A paused run: the baseline of this machine and this process.
    await until(lambda: window.drawn is not None and window.drawn.config["target"] == args.target)
    probe.start()
    await asyncio.sleep(args.baseline)
    idle = probe.stop()

    # Training with every view live.
    window.session.train()
    await until(lambda: window.drawn.step > 0)
    first_step, drawn[:] = window.drawn.step, []
    probe.start()
    start = time.perf_counter()
    await asyncio.sleep(args.seconds)
    busy = probe.stop()
    elapsed = time.perf_counter() - start
    steps = window.drawn.step - first_step
    window.session.pause()

    print(
        f"target {args.target}, flow {args.flow} x {args.layers}, {elapsed:.0f} s of training, "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms"
    )
    print(describe("paused", idle))
    print(describe("training", busy))
    p99_idle, p99_busy = np.percentile(idle, 99), np.percentile(busy, 99)
    print(f"p99 training / paused: {p99_busy / max(p99_idle, 1e-3):.1f}x")
    print(f"training: {steps / elapsed:.0f} steps/s, {len(drawn) / elapsed:.0f} frames/s drawn")
    verdict = "met" if p99_busy < 15 else "NOT met"
    print(f"goal p99 < 15 ms while training: {verdict}")
    window.close()


async def until(condition, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the window did not reach the expected state")
        await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="training time measured")
    parser.add_argument("--baseline", type=float, default=5.0, help="paused time measured")
    parser.add_argument("--target", default="U3")
    parser.add_argument("--flow", default="dsf")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="Python's GIL switch interval, s"
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    app = QApplication.instance() or QApplication(sys.argv)
    set_thread_budget(max(1, (os.cpu_count() or 2) - 1))
    window = MainWindow({"flows": FlowExperiment})
    window.resize(1400, 880)
    window.show()
    window.controls.set_values({"target": args.target, "flow": args.flow, "layers": args.layers})
    window.reset()
    qasync.run(measure(window, args))
    del app


if __name__ == "__main__":
    main()
