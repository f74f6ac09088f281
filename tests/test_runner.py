import math

import numpy as np
import pytest
import torch
from fakes import LineFit

from core.params import ParamError
from core.runner import MetricHistory, Runner, resolve_device
from core.views import Curves, Heatmap, Scatter


def test_runner_trains_and_logs_every_step():
    runner = Runner(LineFit, {"lr": 0.3}, eval_every=10)
    assert runner.run(200) == 200

    table = runner.history.table()
    assert table.steps[0] == 0  # evaluation of the untrained state
    assert list(table.steps[1:]) == list(range(1, 201))
    assert runner.latest["error_a"] < 0.05
    assert runner.latest["loss"] < 0.05
    # The last step was evaluated even though 200 is a multiple of the cadence anyway.
    assert math.isfinite(table.columns["error_a"][-1])
    assert np.isnan(table.columns["error_a"][5])


def test_final_step_is_evaluated_off_cadence():
    runner = Runner(LineFit, eval_every=100)
    runner.run(37)
    table = runner.history.table()
    assert table.steps[-1] == 37
    assert math.isfinite(table.columns["error_a"][-1])
    assert list(table.steps).count(37) == 1


def test_same_seed_same_run_and_other_seed_differs():
    def losses(seed):
        r = Runner(LineFit, {"seed": seed, "noise": 0.5})
        r.run(20)
        return r.history.table().columns["loss"][1:].copy()

    assert np.array_equal(losses(3), losses(3))
    assert not np.array_equal(losses(3), losses(4))


def test_divergence_pauses_and_keeps_last_good_state():
    runner = Runner(LineFit, {"diverge_at": 6})
    assert runner.run(100) == 5
    good = {k: v.clone() for k, v in runner.experiment.state_dict().items()}

    assert runner.diverged.startswith("Diverged at step 6: loss is nan")
    assert runner.step_count == 5
    state = runner.experiment.state_dict()
    assert all(torch.equal(good[k], state[k]) for k in good)
    assert all(torch.isfinite(v).all() for v in state.values())

    # Resuming goes on from the kept state (the fake only diverges once).
    assert runner.run(3) == 3
    assert runner.diverged is None
    assert runner.step_count == 8


def test_bad_config_is_refused_with_the_range():
    with pytest.raises(ParamError, match=r"lr: 5\.0 is out of range; expected a number from"):
        Runner(LineFit, {"lr": 5.0})
    with pytest.raises(ParamError, match="unknown parameter"):
        Runner(LineFit, {"learning_rate": 0.1})
    with pytest.raises(ParamError, match="one of sgd, adam"):
        Runner(LineFit, {"optimizer": "rmsprop"})


def test_cuda_refused_when_absent():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ParamError, match="no usable CUDA"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_snapshot_holds_curves_and_views_and_does_not_change_later():
    runner = Runner(LineFit, eval_every=5)
    runner.run(10)
    snap = runner.snapshot()
    kinds = {v.key: type(v) for v in snap.views}
    assert kinds == {"loss": Curves, "errors": Curves, "fit": Heatmap, "data": Scatter}
    loss = next(v for v in snap.views if v.key == "loss").series[0]
    assert list(loss.x) == list(range(1, 11))
    errors = next(v for v in snap.views if v.key == "errors")
    assert [s.label for s in errors.series] == ["error_a", "error_b"]
    assert list(errors.series[0].x) == [0, 5, 10]

    before = snap.history.columns["loss"].copy()
    runner.run(2000)  # forces the history buffers to grow
    assert np.array_equal(snap.history.columns["loss"], before, equal_nan=True)
    assert len(snap.history) == 11


def test_history_rows_leave_missing_cells_empty_for_csv():
    history = MetricHistory(capacity=2)
    history.log(0, 0.0, {"kl": 1.5})
    history.log(1, 0.1, {"loss": 2.0})
    history.log(2, 0.2, {"loss": 1.0, "kl": 0.5})
    header, rows = history.table().rows()
    assert header == ["step", "seconds", "kl", "loss"]
    assert rows[1][0] == 1 and math.isnan(rows[1][2]) and rows[1][3] == 2.0
    assert rows[2] == [2, 0.2, 0.5, 1.0]
