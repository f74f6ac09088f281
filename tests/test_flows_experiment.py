"""The flow experiment end to end: reverse KL on U1–U4, maximum likelihood, views, command line.

The training budgets are short (a few seconds each on two cores) and the seeds fixed; the
margins asserted are several times the run-to-run spread seen across seeds.
"""

import csv
import json
import math

import numpy as np
import pytest
import torch

from core.cli import run_headless
from core.flows.energies import log_partition
from core.flows.experiment import FlowExperiment
from core.flows.toy_data import dataset, true_test_nll
from core.runner import Runner

#: Steps of every reverse-KL run below: DSF and affine flows get the same budget.
KL_STEPS = 800
#: Steps of the maximum-likelihood runs.
ML_STEPS = 1000


def trained(target, flow="dsf", layers=2, steps=KL_STEPS, **config):
    runner = Runner(
        FlowExperiment,
        {"target": target, "flow": flow, "layers": layers, "seed": 0, **config},
        eval_every=steps,
    )
    initial = dict(runner.latest)
    runner.run(steps)
    assert runner.diverged is None
    return initial, runner


@pytest.fixture(scope="module")
def dsf_runs():
    return {target: trained(target) for target in ("U1", "U2", "U3", "U4")}


@pytest.fixture(scope="module")
def affine_runs():
    return {target: trained(target, flow="affine", layers=6) for target in ("U1", "U3")}


@pytest.mark.parametrize("target", ["U1", "U2", "U3", "U4"])
def test_reverse_kl_lowers_the_true_kl_far_below_the_untrained_flow(dsf_runs, target):
    initial, runner = dsf_runs[target]
    assert initial["kl"] > 3.0  # N(0, I) against the target
    assert runner.latest["kl"] < 0.1 * initial["kl"]
    assert runner.latest["kl"] > -0.02  # a KL estimate far below zero would mean a wrong log Z
    assert 0.2 < runner.latest["ess"] <= 1.0


@pytest.mark.parametrize("target", ["U1", "U3"])
def test_two_dsf_layers_beat_six_affine_layers_at_equal_steps(dsf_runs, affine_runs, target):
    # Across seeds 0–3 the affine KL was 1.6–6 times the DSF one at this budget.
    _, dsf = dsf_runs[target]
    _, affine = affine_runs[target]
    assert dsf.latest["kl"] * 1.5 < affine.latest["kl"]


@pytest.mark.parametrize("target", ["two_moons", "eight_gaussians"])
def test_maximum_likelihood_nears_the_true_densitys_test_nll(target):
    _, runner = trained(target, steps=ML_STEPS)
    truth = true_test_nll(target)
    assert truth - 0.03 < runner.latest["test_nll"] < truth + 0.15


def test_learned_density_holds_the_mass_its_samples_put_in_the_box(dsf_runs):
    # The learned heatmap comes from the inverse flow and the change of variables; its integral
    # over the box must match the share of q's samples that land in the box.
    _, runner = dsf_runs["U3"]
    experiment = runner.experiment
    views = {view.key: view for view in runner.refresh_views()}
    learned, target = views["learned"], views["target"]
    assert learned.extent == target.extent and learned.levels == target.levels

    x_min, x_max, y_min, y_max = learned.extent
    cell = (x_max - x_min) * (y_max - y_min) / learned.values.size
    with torch.no_grad():
        x, _ = experiment.flow(experiment.eval_noise)
    inside = ((x[:, 0].abs() < 4) & (x[:, 1].abs() < 4)).double().mean().item()
    assert learned.values.sum() * cell == pytest.approx(inside, abs=0.02)
    # The target's mass in the box: the walls of U3 put some 6 % of it beyond |x1| = 4.
    in_box = math.exp(log_partition("U3", 801, 4.0) - log_partition("U3"))
    assert 0.9 < in_box < 0.97
    assert target.values.sum() * cell == pytest.approx(in_box, abs=0.01)
    assert learned.points.shape[1] == 2 and len(learned.points) > 100


def test_data_views_show_samples_from_the_inverse_flow():
    _, runner = trained("two_moons", steps=300)
    views = {view.key: view for view in runner.refresh_views()}
    samples = views["learned"].points
    assert np.isfinite(samples).all() and len(samples) > 500
    # Samples of a model of two moons sit mostly where the true density is high.
    density = dataset("two_moons").log_prob(torch.from_numpy(samples)).exp()
    assert (density > 0.01).double().mean().item() > 0.8


def test_annealing_raises_beta_linearly_to_one():
    runner = Runner(
        FlowExperiment, {"target": "U2", "anneal": True, "anneal_steps": 100}, eval_every=1000
    )
    runner.run(60)
    betas = runner.history.table().columns["beta"][1:]
    assert betas[0] == pytest.approx(0.01)
    assert betas[50] == pytest.approx(0.51)
    runner.run(60)
    assert runner.latest["beta"] == 1.0


def test_headless_run_writes_its_files(tmp_path):
    status = run_headless(
        FlowExperiment,
        {"target": "U3", "flow": "dsf", "layers": 2, "seed": 0},
        steps=60,
        out=tmp_path,
        eval_every=20,
    )
    assert status == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["target"] == "U3" and config["experiment"] == "flows"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 60 and 0 < summary["kl"] < 5
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"step", "seconds", "loss", "kl", "ess"} <= set(rows[0])
    assert [r["step"] for r in rows if r["kl"]] == ["0", "20", "40", "60"]


def test_config_is_refused_with_the_range():
    with pytest.raises(ValueError, match="layers: 9 is out of range; expected an integer from 1"):
        Runner(FlowExperiment, {"layers": 9})
