"""The training loop shared by the window, the command line and the tests.

A :class:`Runner` owns one run: it validates the configuration, seeds, picks the device, builds
the experiment, takes steps, evaluates on a fixed step cadence, keeps the metric history and
stops at the first non-finite loss with the last good state kept. It never sleeps or waits; the
window's worker thread and the command line decide when to call it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.experiment import Experiment
from core.params import ParamError, resolve
from core.training import DivergenceError
from core.views import Curves, Series, View

log = logging.getLogger(__name__)


_thread_budget: int | None = None


def set_thread_budget(threads: int | None) -> None:
    """Cap the CPU threads a run may give torch (``None``: every core).

    The window keeps a core for drawing; the command line uses them all.
    """
    global _thread_budget
    if threads is not None and threads < 1:
        raise ValueError(f"a thread budget must be at least 1, got {threads}")
    _thread_budget = threads


def intra_op_threads(experiment_cls: type[Experiment]) -> int:
    """Return the torch threads for a run of ``experiment_cls`` under the current budget."""
    budget = _thread_budget or os.cpu_count() or 1
    wanted = experiment_cls.max_threads or budget
    return max(1, min(budget, wanted))


def resolve_device(choice: str) -> torch.device:
    """Map the ``device`` parameter to a torch device, refusing CUDA where there is none."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ParamError(
            "device: 'cuda' was asked for but this machine has no usable CUDA device; "
            "choose 'auto' or 'cpu'"
        )
    return torch.device(choice)


@dataclass(frozen=True)
class HistoryTable:
    """A read-only view of the metric history up to some row.

    Columns are prefixes of the history's buffers; the history only ever appends, so the rows a
    table shows never change and the table can be handed to another thread without a copy.
    """

    steps: np.ndarray
    seconds: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)

    def rows(self) -> tuple[list[str], list[list[Any]]]:
        """Return a header and rows (step, seconds, every metric) for CSV export."""
        names = list(self.columns)
        header = ["step", "seconds", *names]
        body = [
            [int(self.steps[i]), round(float(self.seconds[i]), 4)]
            + [float(self.columns[n][i]) for n in names]
            for i in range(len(self))
        ]
        return header, body


class MetricHistory:
    """Append-only columns of metrics, one row per logged step; missing cells hold NaN."""

    def __init__(self, capacity: int = 1024) -> None:
        self._n = 0
        self._steps = np.zeros(capacity, dtype=np.int64)
        self._seconds = np.zeros(capacity, dtype=np.float64)
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n

    def log(self, step: int, seconds: float, metrics: Mapping[str, float]) -> None:
        """Append one row."""
        if self._n == len(self._steps):
            self._grow()

        for name in metrics:
            if name not in self._columns:
                self._columns[name] = np.full(len(self._steps), np.nan)

        i = self._n
        self._steps[i] = step
        self._seconds[i] = seconds
        for name, column in self._columns.items():
            column[i] = metrics.get(name, math.nan)
        self._n += 1

    def table(self) -> HistoryTable:
        """Return the rows logged so far as a :class:`HistoryTable`."""
        n = self._n
        return HistoryTable(
            self._steps[:n], self._seconds[:n], {k: v[:n] for k, v in self._columns.items()}
        )

    def _grow(self) -> None:
        # New buffers, so tables handed out earlier keep pointing at unchanged memory.
        size = 2 * len(self._steps)
        self._steps = np.concatenate([self._steps, np.zeros(size // 2, dtype=np.int64)])
        self._seconds = np.concatenate([self._seconds, np.zeros(size // 2)])
        self._columns = {
            k: np.concatenate([v, np.full(size // 2, np.nan)]) for k, v in self._columns.items()
        }


@dataclass(frozen=True)
class Snapshot:
    """Everything the window draws for one moment of a run; immutable, safe across threads."""

    run_id: int
    experiment: str
    config: dict[str, Any]
    step: int
    seconds: float
    steps_per_second: float
    device: str
    latest: dict[str, float]
    headline: tuple[str, ...]
    views: tuple[View, ...]
    history: HistoryTable
    diverged: str | None = None


class Runner:
    """Drives one run of an experiment.

    Parameters
    ----------
    experiment_cls
        The experiment to train.
    config
        Parameter values; missing ones take their defaults, bad ones raise ``ParamError``.
    eval_every
        Steps between evaluations of the slower metrics (also evaluated before the first step).
    run_id
        Number that tells snapshots of successive runs apart.
    """

    def __init__(
        self,
        experiment_cls: type[Experiment],
        config: Mapping[str, Any] | None = None,
        *,
        eval_every: int = 100,
        run_id: int = 0,
    ) -> None:
        if eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, got {eval_every}")
        self.experiment_cls = experiment_cls
        self.config = resolve(experiment_cls.params(), config)
        self.device = resolve_device(self.config["device"])
        self.eval_every = eval_every
        self.run_id = run_id

        torch.set_num_threads(intra_op_threads(experiment_cls))
        torch.manual_seed(self.config["seed"])
        self.experiment = experiment_cls(self.config, self.device)

        self.step_count = 0
        self.seconds = 0.0
        self.diverged: str | None = None
        self.history = MetricHistory()
        self.latest: dict[str, float] = {}
        self._views: tuple[View, ...] = ()
        self._recent: deque[tuple[float, int]] = deque(maxlen=64)
        self._evaluated_at = -1

        self._log_evaluation()

    def step(self, evaluate: bool = False) -> dict[str, float] | None:
        """Take one step; return its metrics, or ``None`` if it diverged (see ``diverged``).

        The slower metrics are evaluated every ``eval_every`` steps, or now if ``evaluate``.
        """
        start = time.perf_counter()

        # One optimisation step; a divergence leaves the experiment's state untouched.
        try:
            metrics = dict(self.experiment.train_step())
        except DivergenceError as e:
            self._stop_diverged(f"{e}")
            return None
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            self._stop_diverged(", ".join(f"{k} is {v}" for k, v in bad.items()))
            return None
        self.step_count += 1
        self.diverged = None

        # Slower metrics on a fixed cadence, logged in the same row as the step's own.
        if evaluate or self.step_count % self.eval_every == 0:
            metrics.update(self.experiment.evaluate())
            self._evaluated_at = self.step_count

        end = time.perf_counter()
        self.seconds += end - start
        self._recent.append((end, self.step_count))
        self.history.log(self.step_count, self.seconds, metrics)
        self.latest.update(metrics)
        return metrics

    def run(self, steps: int, should_stop: Callable[[], bool] | None = None) -> int:
        """Take up to ``steps`` steps; stop early on divergence or when ``should_stop()``.

        Returns the number of steps taken. The last of the ``steps`` is always evaluated, so a
        completed run's history ends with the slower metrics of its final state.
        """
        taken = 0
        while taken < steps:
            if should_stop is not None and should_stop():
                break
            if self.step(evaluate=taken == steps - 1) is None:
                break
            taken += 1
        return taken

    @property
    def steps_per_second(self) -> float:
        """Recent training speed, over the last few dozen steps."""
        if len(self._recent) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self._recent[0], self._recent[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def curves(self) -> tuple[Curves, ...]:
        """Build the experiment's declared curve panels from the history."""
        table = self.history.table()
        panels = []
        for panel in self.experiment.curve_panels():
            series = []
            for name in panel.metrics:
                if name not in table.columns:
                    continue
                y = table.columns[name]
                keep = np.isfinite(y)
                series.append(Series(name, table.steps[keep], y[keep]))
            panels.append(
                Curves(
                    panel.key,
                    panel.title,
                    tuple(series),
                    "step",
                    panel.y_label,
                    panel.log_y,
                    panel.references,
                )
            )
        return tuple(panels)

    def refresh_views(self) -> tuple[View, ...]:
        """Recompute the experiment's expensive views and keep them for later snapshots."""
        self._views = tuple(self.experiment.views())
        return self._views

    def snapshot(self, refresh_views: bool = False) -> Snapshot:
        """Capture the run's current state; expensive views are recomputed only on request."""
        if refresh_views or not self._views:
            self.refresh_views()
        return Snapshot(
            run_id=self.run_id,
            experiment=self.experiment_cls.name,
            config=dict(self.config),
            step=self.step_count,
            seconds=self.seconds,
            steps_per_second=self.steps_per_second,
            device=str(self.device),
            latest=dict(self.latest),
            headline=self.experiment.headline_metrics(),
            views=self.curves() + self._views,
            history=self.history.table(),
            diverged=self.diverged,
        )

    def summary(self) -> dict[str, Any]:
        """Return the final metrics written to ``summary.json``."""
        return {
            "experiment": self.experiment_cls.name,
            "steps": self.step_count,
            "seconds": round(self.seconds, 3),
            "device": str(self.device),
            "diverged": self.diverged,
            **self.latest,
        }

    def evaluate(self) -> dict[str, float]:
        """Evaluate the slower metrics of the current state and log them, unless already done.

        For a run that ends between evaluations (diverged or interrupted), so that its final
        metrics describe its final state.
        """
        if self._evaluated_at == self.step_count:
            return {}
        return self._log_evaluation()

    def _log_evaluation(self) -> dict[str, float]:
        start = time.perf_counter()
        metrics = self.experiment.evaluate()
        self._evaluated_at = self.step_count
        self.seconds += time.perf_counter() - start
        if metrics:
            self.history.log(self.step_count, self.seconds, metrics)
            self.latest.update(metrics)
        return metrics

    def _stop_diverged(self, reason: str) -> None:
        # Said to the user by the window or the command line; logged here for diagnostics.
        self.diverged = (
            f"Diverged at step {self.step_count + 1}: {reason}. The last good state is kept."
        )
        log.info(self.diverged)
