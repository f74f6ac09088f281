r"""Two-dimensional toy data sets with their true generating log-density.

Every set is drawn from a seeded generator, so its train split and held-out test split are the
same in every run. The generating density is exact for the Gaussian mixture and the
checkerboard. For the sets made of a curve plus isotropic Gaussian noise (two moons, two
spirals, rings) a point on the curve is drawn uniformly in the curve's parameter
:math:`s \in [0, 1]`, so the density is the integral
:math:`p(x) = \sum_k \pi_k \int_0^1 \mathcal N(x; c_k(s), \sigma^2 I)\, ds`, computed by a
fine midpoint rule along the curve (node spacing far below :math:`\sigma`). The true test NLL
is thus computed, not guessed.
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

#: Sizes of the fixed splits and the seeds that draw them.
TRAIN_SIZE = 20_000
TEST_SIZE = 5_000
_SPLIT_SEEDS = {"train": 20_180_401, "test": 20_180_402}

Curve = Callable[[Tensor], Tensor]


class ToyDataset(abc.ABC):
    """A 2D distribution that can be sampled and whose log-density is known."""

    #: Identifier used by the experiment's ``target`` parameter.
    name: str
    #: Plotting box ``(x_min, x_max, y_min, y_max)`` that holds nearly all the mass.
    box: tuple[float, float, float, float]

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` points as a float64 tensor of shape ``(n, 2)`` on the CPU."""

    @abc.abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """Return the true log-density at ``x`` (float64, shape ``x.shape[:-1]``)."""


class GaussianMixture(ToyDataset):
    """Equal mixture of isotropic Gaussians with standard deviation ``std`` at ``centres``."""

    def __init__(
        self, name: str, centres: Tensor, std: float, box: tuple[float, float, float, float]
    ) -> None:
        self.name = name
        self.centres = centres.to(torch.float64)
        self.std = std
        self.box = box

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.randint(len(self.centres), (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return self.centres[k] + self.std * noise

    def log_prob(self, x: Tensor) -> Tensor:
        # log (1/K) Σ_k N(x; μ_k, σ² I)
        x = x.to(torch.float64)
        sq = (x.unsqueeze(-2) - self.centres).square().sum(dim=-1)
        log_n = -0.5 * sq / self.std**2 - math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(log_n, dim=-1) - math.log(len(self.centres))


class Checkerboard(ToyDataset):
    """Uniform on the eight dark squares of side ``2`` of a 4 × 4 board over ``[−4, 4]²``."""

    name = "checkerboard"
    box = (-4.5, 4.5, -4.5, 4.5)
    side = 2.0

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        # Column uniformly in [−2, 2); row in the same-parity squares of that column
        x1 = 4 * torch.rand(n, generator=generator, dtype=torch.float64) - 2
        x2 = torch.rand(n, generator=generator, dtype=torch.float64)
        x2 = x2 - 2 * torch.randint(2, (n,), generator=generator) + torch.floor(x1) % 2
        return self.side * torch.stack([x1, x2], dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        # Density 1/8 per square of area side²; zero off the board and on light squares
        cell = torch.floor(x.to(torch.float64) / self.side)
        on_board = ((cell >= -2) & (cell <= 1)).all(dim=-1)
        dark = (cell[..., 0] - cell[..., 1]) % 2 == 0
        inside = on_board & dark
        value = -math.log(8 * self.side**2)
        return torch.where(inside, value, -math.inf).to(torch.float64)


class NoisyCurves(ToyDataset):
    r"""Points on curves :math:`c_k(s)`, :math:`s \sim U[0, 1]`, plus Gaussian noise.

    Arguments:
        name: Identifier.
        curves: Functions from ``s`` of shape ``(m,)`` to points of shape ``(m, 2)``.
        weights: Probability of each curve.
        noise: Standard deviation of the isotropic Gaussian noise.
        box: Plotting box.
        nodes: Midpoint-rule nodes per curve for the density.
        squared_nodes: Place the nodes at ``s = u²`` for midpoints ``u`` (weight ``2u``), which
            keeps the rule accurate for curves that are smooth in ``√s`` rather than in ``s``.
    """

    def __init__(
        self,
        name: str,
        curves: Sequence[Curve],
        weights: Sequence[float],
        noise: float,
        box: tuple[float, float, float, float],
        nodes: int = 1024,
        squared_nodes: bool = False,
    ) -> None:
        self.name = name
        self.curves = tuple(curves)
        self.weights = torch.tensor(weights, dtype=torch.float64) / sum(weights)
        self.noise = noise
        self.box = box
        self.nodes = nodes
        self.squared_nodes = squared_nodes

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        s = torch.rand(n, generator=generator, dtype=torch.float64)
        on_curve = torch.empty(n, 2, dtype=torch.float64)
        for i, curve in enumerate(self.curves):
            pick = k == i
            on_curve[pick] = curve(s[pick])
        return on_curve + self.noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def log_prob(self, x: Tensor, nodes: int | None = None) -> Tensor:
        # Midpoint nodes along every curve, with their log-weights log π_k + log ds
        m = self.nodes if nodes is None else nodes
        u = (torch.arange(m, dtype=torch.float64) + 0.5) / m
        if self.squared_nodes:
            s, log_ds = u.square(), torch.log(2 * u / m)
        else:
            s, log_ds = u, torch.full((m,), -math.log(m), dtype=torch.float64)
        c = torch.cat([curve(s) for curve in self.curves])
        log_pi = (self.weights.log()[:, None] + log_ds).reshape(-1)

        # log Σ π_k ds N(x; c, σ² I), a chunk of points at a time to bound memory
        x = x.to(torch.float64)
        flat = x.reshape(-1, 2)
        out = torch.empty(len(flat), dtype=torch.float64)
        const = -math.log(2 * math.pi * self.noise**2)
        for i in range(0, len(flat), 1024):
            xi = flat[i : i + 1024]
            sq = (xi.square().sum(-1, keepdim=True) - 2 * xi @ c.T + c.square().sum(-1)).clamp(
                min=0
            )
            out[i : i + 1024] = torch.logsumexp(log_pi - 0.5 * sq / self.noise**2, dim=-1)
        return out.reshape(x.shape[:-1]) + const


def _circle(radius: float) -> Curve:
    def curve(s: Tensor) -> Tensor:
        return radius * torch.stack([torch.cos(2 * math.pi * s), torch.sin(2 * math.pi * s)], -1)

    return curve


def _moon(upper: bool) -> Curve:
    # The two half circles of scikit-learn's make_moons, centred and scaled by 2
    def curve(s: Tensor) -> Tensor:
        t = math.pi * s
        if upper:
            p = torch.stack([torch.cos(t), torch.sin(t)], -1)
        else:
            p = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], -1)
        return 2 * (p - torch.tensor([0.5, 0.25], dtype=p.dtype))

    return curve


def _spiral_arm(sign: float) -> Curve:
    # Radius θ/3 at angle θ = 3π √s: s uniform is close to uniform in arc length
    def curve(s: Tensor) -> Tensor:
        theta = 3 * math.pi * torch.sqrt(s)
        direction = torch.stack([-torch.cos(theta), torch.sin(theta)], -1)
        return sign * theta.unsqueeze(-1) / 3 * direction

    return curve


def _eight_centres() -> Tensor:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return 2 * math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], -1)


_RING_RADII = (0.75, 1.5, 2.25, 3.0)

DATASETS: dict[str, ToyDataset] = {
    d.name: d
    for d in (
        GaussianMixture("eight_gaussians", _eight_centres(), 0.5 / math.sqrt(2), (-4, 4, -4, 4)),
        NoisyCurves("two_moons", [_moon(True), _moon(False)], [1, 1], 0.2, (-3.5, 3.5, -3.5, 3.5)),
        Checkerboard(),
        NoisyCurves(
            "two_spirals",
            [_spiral_arm(1.0), _spiral_arm(-1.0)],
            [1, 1],
            0.1,
            (-4, 4, -4, 4),
            squared_nodes=True,
        ),
        NoisyCurves("rings", [_circle(r) for r in _RING_RADII], _RING_RADII, 0.08, (-4, 4, -4, 4)),
    )
}
DATASET_NAMES = tuple(DATASETS)


def dataset(name: str) -> ToyDataset:
    """Return the toy data set called ``name``."""
    if name not in DATASETS:
        raise KeyError(f"no data set {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


@functools.cache
def split(name: str, which: str) -> Tensor:
    """Return the fixed ``"train"`` or ``"test"`` split of a data set (float64, CPU).

    The tensor is cached and shared: do not modify it in place.
    """
    if which not in _SPLIT_SEEDS:
        raise KeyError(f"no split {which!r}; expected 'train' or 'test'")
    size = TRAIN_SIZE if which == "train" else TEST_SIZE
    generator = torch.Generator().manual_seed(_SPLIT_SEEDS[which])
    return dataset(name).sample(size, generator)


@functools.cache
def true_test_nll(name: str) -> float:
    """Return the mean negative log-likelihood of the test split under the true density."""
    return -dataset(name).log_prob(split(name, "test")).mean().item()
