"""The flow experiment: fit a 2D target with a neural or affine autoregressive flow, live.

Two targets, two directions of the same flow. For an energy U1–U4 the flow is the *sampling*
map z → x, trained by reverse KL: minimise E[log q(x) + β U(x)] over x = f(z), z ~ N(0, I),
and the true KL(q‖p) is reported with log Z integrated on a fine grid. For a 2D data set the
flow is the *normalising* map x → z, trained by maximum likelihood on a fixed training split,
and the NLL of a held-out split is reported beside that of the true generating density.

References:
    | Neural Autoregressive Flows (Huang et al., 2018)
    | https://arxiv.org/abs/1804.00779
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015)
    | https://arxiv.org/abs/1505.05770
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.experiment import Experiment
from core.flows.autoregressive import FLOW_KINDS, AutoregressiveFlow, standard_normal_log_prob
from core.flows.energies import (
    ENERGY_NAMES,
    annealing_weight,
    density_grid,
    effective_sample_size,
    energy,
    log_partition,
    reverse_kl,
)
from core.flows.toy_data import DATASET_NAMES, dataset, split, true_test_nll
from core.params import BoolParam, ChoiceParam, FloatParam, IntParam, Param
from core.training import FlatParameters, apply_gradients
from core.views import CurvePanel, Heatmap, Reference, View

#: Plotting box of the energies, ``(x_min, x_max, y_min, y_max)``.
ENERGY_BOX = (-4.0, 4.0, -4.0, 4.0)
#: Cells per side of the density heatmaps.
GRID_CELLS = 100
#: Samples of q behind each true-KL estimate; the same base noise every time, so the KL curve
#: moves only when q does.
EVAL_SAMPLES = 8192
#: Samples of q drawn over the learned density.
VIEW_SAMPLES = 600
#: Gradient-norm clipping, as in the authors' code.
MAX_GRAD_NORM = 5.0
#: Offset of the seed of the fixed evaluation noise from the run's seed.
_EVAL_SEED_OFFSET = 7919


class FlowExperiment(Experiment):
    """Deep sigmoidal, deep dense sigmoidal and affine autoregressive flows on 2D targets."""

    name = "flows"
    title = "Neural autoregressive flows"
    summary = (
        "Deep sigmoidal (DSF), deep dense sigmoidal (DDSF) and affine autoregressive flows fit "
        "the energies U1–U4 by reverse KL, or 2D data sets by maximum likelihood "
        "(Huang et al. 2018)."
    )
    # Measured on two cores: a 2-layer DSF at batch 256 trains at ~260 steps/s on one thread,
    # and at 6 steps/s on two when another process keeps the second core busy.
    max_threads = 1

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        return (
            ChoiceParam(
                "target",
                "Target",
                "U1",
                "An energy U1–U4 fitted by reverse KL, or a data set fitted by maximum "
                "likelihood.",
                choices=ENERGY_NAMES + DATASET_NAMES,
            ),
            ChoiceParam(
                "flow",
                "Flow",
                "dsf",
                "Transformer of each layer: deep sigmoidal, deep dense sigmoidal, or affine.",
                choices=FLOW_KINDS,
            ),
            IntParam("layers", "Layers", 2, "Autoregressive flow layers.", low=1, high=8),
            IntParam(
                "hidden",
                "Hidden units",
                64,
                "Width of each hidden layer of the MADE conditioners.",
                low=8,
                high=512,
                log=True,
            ),
            IntParam(
                "hidden_layers",
                "Hidden layers",
                2,
                "Hidden layers of each MADE conditioner.",
                low=1,
                high=4,
            ),
            IntParam(
                "sigmoids",
                "Sigmoid units",
                16,
                "Sigmoid units per DSF transformer, or width of each DDSF sub-layer "
                "(affine flows have none).",
                low=1,
                high=64,
            ),
            FloatParam(
                "lr", "Learning rate", 5e-3, "Adam's step size.", low=1e-5, high=1e-1, log=True
            ),
            IntParam(
                "batch_size",
                "Batch size",
                256,
                "Samples (reverse KL) or data points (maximum likelihood) per step.",
                low=16,
                high=4096,
                log=True,
            ),
            BoolParam(
                "anneal",
                "Anneal energy",
                False,
                "Scale the energy by β = min(1, 0.01 + step / anneal steps), as Rezende and "
                "Mohamed did; energy targets only.",
            ),
            IntParam(
                "anneal_steps",
                "Anneal steps",
                10_000,
                "Steps over which β rises to 1 when annealing.",
                low=100,
                high=100_000,
                log=True,
            ),
        )

    def __init__(self, config: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(config, device)
        self.target = config["target"]
        self.fits_energy = self.target in ENERGY_NAMES
        self.steps = 0

        # The flow samples (z → x) for an energy and normalises (x → z) for data; the authors
        # end a density estimator with an elementwise affine layer.
        self.flow = AutoregressiveFlow(
            features=2,
            kind=config["flow"],
            layers=config["layers"],
            hidden=config["hidden"],
            hidden_layers=config["hidden_layers"],
            sigmoids=config["sigmoids"],
            final_affine=not self.fits_energy,
        ).to(device)
        # One flat parameter and the fused Adam: the clip and the update take an operation
        # each instead of one per tensor (a step pays per operation at this size).
        self.flat_parameters = FlatParameters(self.flow.parameters())
        self.optimizer = torch.optim.Adam([self.flat_parameters.flat], lr=config["lr"], fused=True)

        # Fixed base noise for the KL estimate and the drawn samples, from its own generator
        # so that evaluating never shifts the training's random stream.
        generator = torch.Generator().manual_seed(config["seed"] + _EVAL_SEED_OFFSET)
        self.eval_noise = torch.randn(EVAL_SAMPLES, 2, generator=generator).to(device)

        # The target: energy and log Z, or the data splits and the true density's test NLL.
        if self.fits_energy:
            self.energy = energy(self.target)
            self.log_z = log_partition(self.target)
            self.box = ENERGY_BOX
        else:
            self.train_data = split(self.target, "train").to(device, torch.float32)
            self.test_data = split(self.target, "test").to(device, torch.float32)
            self.true_nll = true_test_nll(self.target)
            self.box = dataset(self.target).box

        # The heatmap grid: cell centres, so each value is drawn over the cell it stands for.
        x_min, x_max, y_min, y_max = self.box
        self.xs = _cell_centres(x_min, x_max, GRID_CELLS)
        self.ys = _cell_centres(y_min, y_max, GRID_CELLS)
        grid = torch.stack(torch.meshgrid(self.xs, self.ys, indexing="xy"), dim=-1)
        self.grid = grid.reshape(-1, 2).to(device, torch.float32)
        self.target_density = self._target_density(grid)
        self.levels = (0.0, float(self.target_density.max()))

    # ---- training ---------------------------------------------------------------------------

    def beta(self) -> float:
        """Return the weight of the energy at the current step (1 unless annealing)."""
        if not self.config["anneal"]:
            return 1.0
        return annealing_weight(self.steps, self.config["anneal_steps"])

    def train_step(self) -> dict[str, float]:
        batch = self.config["batch_size"]
        metrics: dict[str, float] = {}

        if self.fits_energy:
            # Reverse KL up to log Z: E[log q(x) + β U(x)], x = f(z), z ~ N(0, I)
            z = torch.randn(batch, 2, device=self.device)
            x, ladj = self.flow(z)
            log_q = standard_normal_log_prob(z) - ladj
            beta = self.beta()
            loss = (log_q + beta * self.energy(x)).mean()
            if self.config["anneal"]:
                metrics["beta"] = beta
        else:
            # Negative log-likelihood of a minibatch of the training split
            index = torch.randint(len(self.train_data), (batch,), device=self.device)
            loss = -self._log_prob_data(self.train_data[index]).mean()

        # A non-finite loss or gradient raises before the parameters change
        apply_gradients(loss, self.optimizer, self.flat_parameters, MAX_GRAD_NORM)
        self.steps += 1

        return {"loss": loss.item(), **metrics}

    # ---- metrics ----------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            if self.fits_energy:
                # True KL(q‖p) = E_q[log q + U] + log Z, on the fixed base noise
                x, log_q = self._sample(self.eval_noise)
                u = self.energy(x)
                return {
                    "kl": reverse_kl(log_q, u, self.log_z),
                    "ess": effective_sample_size(log_q, u),
                }

            # Held-out NLL, in nats per point
            return {"test_nll": -self._log_prob_data(self.test_data).mean().item()}

    def curve_panels(self) -> tuple[CurvePanel, ...]:
        if self.fits_energy:
            return (
                CurvePanel("loss", "Training loss", ("loss",), "E[log q + βU] (nats)"),
                CurvePanel("kl", "True KL(q ‖ p)", ("kl",), "KL (nats)", log_y=True),
            )
        return (
            CurvePanel("loss", "Training NLL", ("loss",), "NLL (nats)"),
            CurvePanel(
                "test_nll",
                "Held-out NLL",
                ("test_nll",),
                "NLL (nats)",
                references=(Reference("true density", self.true_nll),),
            ),
        )

    def headline_metrics(self) -> tuple[str, ...]:
        return ("loss", "kl") if self.fits_energy else ("loss", "test_nll")

    # ---- views ------------------------------------------------------------------------------

    def views(self) -> tuple[View, ...]:
        with torch.no_grad():
            learned = self._learned_density()
            samples = self._draw_samples()

        target_title = "Target exp(−U)/Z" if self.fits_energy else "True density"
        common = dict(
            extent=self.box,
            levels=self.levels,
            x_label="x₁",
            y_label="x₂",
            colorbar_label="density",
        )
        return (
            Heatmap("target", f"{target_title}: {self.target}", self.target_density, **common),
            Heatmap(
                "learned",
                f"Learned density q ({self.config['flow'].upper()} × {self.config['layers']})",
                learned,
                points=samples,
                points_label="samples of q",
                **common,
            ),
        )

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self.flow.state_dict().items()}

    # ---- the flow in both directions --------------------------------------------------------

    def _sample(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return samples of q and their log-density, for a sampling (energy) flow."""
        x, ladj = self.flow(z)
        return x, standard_normal_log_prob(z) - ladj

    def _log_prob_data(self, x: Tensor) -> Tensor:
        """Return log q(x) for a normalising (data) flow."""
        z, ladj = self.flow(x)
        return standard_normal_log_prob(z) + ladj

    def _learned_density(self) -> np.ndarray:
        # A sampling flow is inverted to find the noise behind each grid point; points no noise
        # reaches have density zero.
        if self.fits_energy:
            z, reachable = self.flow.inverse(self.grid)
            _, log_q = self._sample(z)
            log_q = torch.where(reachable, log_q, -torch.inf)
        else:
            log_q = self._log_prob_data(self.grid)
        return _as_image(log_q.exp(), len(self.ys), len(self.xs))

    def _draw_samples(self) -> np.ndarray:
        z = self.eval_noise[:VIEW_SAMPLES]
        if self.fits_energy:
            x, _ = self.flow(z)
        else:
            x, reachable = self.flow.inverse(z)
            x = x[reachable]
        return x.cpu().numpy().astype(np.float64)

    def _target_density(self, grid: Tensor) -> np.ndarray:
        # ``grid`` holds the float64 points (x, y) of the heatmap's cells, row by row.
        if self.fits_energy:
            values = density_grid(self.target, self.xs, self.ys)
        else:
            values = dataset(self.target).log_prob(grid).exp()
        return _as_image(values, len(self.ys), len(self.xs))


def _cell_centres(low: float, high: float, cells: int) -> Tensor:
    width = (high - low) / cells
    return low + width * (torch.arange(cells, dtype=torch.float64) + 0.5)


def _as_image(values: Tensor, rows: int, columns: int) -> np.ndarray:
    # Row i is y = ys[i]; NaN (a flow gone bad) shows as zero density rather than breaking
    # the colour scale.
    image = values.detach().reshape(rows, columns).double().cpu().numpy()
    return np.nan_to_num(image, nan=0.0, posinf=0.0)
