"""A small, fast experiment for testing the runner and the window without the flow models."""

from __future__ import annotations

import numpy as np
import torch

from core.experiment import Experiment
from core.params import BoolParam, ChoiceParam, FloatParam, IntParam
from core.training import apply_gradients
from core.views import CurvePanel, Heatmap, Scatter


class LineFit(Experiment):
    """Least-squares fit of a line to noisy points; can be told to diverge at a given step."""

    name = "linefit"
    title = "Line fit (test)"
    summary = "Fits y = a x + b by gradient descent."

    @classmethod
    def declared_params(cls):
        return (
            FloatParam("lr", "Learning rate", 0.05, "Step size.", low=1e-4, high=1.0, log=True),
            FloatParam("noise", "Noise", 0.1, "Noise standard deviation.", low=0.0, high=1.0),
            IntParam("points", "Points", 64, "Number of points.", low=8, high=512),
            ChoiceParam("optimizer", "Optimizer", "sgd", "", choices=("sgd", "adam")),
            BoolParam("center", "Center x", False, "Center the inputs."),
            IntParam(
                "diverge_at",
                "Diverge at",
                0,
                "Step whose loss is NaN (0: never).",
                low=0,
                high=10**6,
            ),
        )

    def __init__(self, config, device):
        super().__init__(config, device)
        n = config["points"]
        self.x = torch.linspace(-1, 1, n, device=device)
        if config["center"]:
            self.x = self.x - self.x.mean()
        self.y = 2.0 * self.x - 0.5 + config["noise"] * torch.randn(n, device=device)
        self.a = torch.nn.Parameter(torch.zeros((), device=device))
        self.b = torch.nn.Parameter(torch.zeros((), device=device))
        opt = torch.optim.Adam if config["optimizer"] == "adam" else torch.optim.SGD
        self.optimizer = opt([self.a, self.b], lr=config["lr"])
        self.steps = 0

    def train_step(self):
        self.steps += 1
        loss = ((self.a * self.x + self.b - self.y) ** 2).mean()
        if self.steps == self.config["diverge_at"]:
            loss = loss * float("nan")
        apply_gradients(loss, self.optimizer, [self.a, self.b])
        return {"loss": loss.item()}

    def evaluate(self):
        with torch.no_grad():
            return {"error_a": abs(self.a.item() - 2.0), "error_b": abs(self.b.item() + 0.5)}

    def curve_panels(self):
        return (
            CurvePanel("loss", "Training loss", ("loss",), "mean squared error", log_y=True),
            CurvePanel("errors", "Parameter error", ("error_a", "error_b"), "absolute error"),
        )

    def views(self):
        xs = np.linspace(-2, 2, 48)
        ys = np.linspace(-3, 3, 64)
        a, b = self.a.item(), self.b.item()
        field = np.exp(-((ys[:, None] - a * xs[None, :] - b) ** 2))
        pts = np.stack([self.x.cpu().numpy(), self.y.cpu().numpy()], 1)
        return (
            Heatmap(
                "fit",
                "Fitted line",
                field,
                (-2.0, 2.0, -3.0, 3.0),
                (0.0, 1.0),
                x_label="x",
                y_label="y",
                colorbar_label="closeness",
                points=pts,
                points_label="data",
            ),
            Scatter("data", "Data", pts, x_label="x", y_label="y"),
        )

    def headline_metrics(self):
        return ("loss", "error_a")

    def state_dict(self):
        return {"a": self.a.detach(), "b": self.b.detach()}
