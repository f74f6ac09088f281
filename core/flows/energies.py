r"""The four 2D energies of Rezende & Mohamed, their normaliser, and the true KL of a sampler.

Each target density is :math:`p(z) \propto \exp(-U(z))`. U2–U4 do not depend on :math:`z_1`
far from the origin, so :math:`\exp(-U)` would not be normalisable; Benchtop adds the wall
:math:`\frac12 (\max(|z_1| - 4, 0) / 0.2)^2` to them, which changes nothing inside the plotting
box :math:`[-4, 4]^2`. The log-normaliser :math:`\log Z` is integrated on a fine grid in
float64 and cached, so the true :math:`\mathrm{KL}(q \| p) = E_q[\log q + U] + \log Z` can be
estimated by Monte Carlo.

References:
    | Variational Inference with Normalizing Flows (Rezende & Mohamed, 2015), Table 1
    | https://arxiv.org/abs/1505.05770
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

ENERGY_NAMES = ("U1", "U2", "U3", "U4")


def _w1(z1: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z1 / 4)


def _w2(z1: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)


def _w3(z1: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z1 - 1) / 0.3)


def wall(z: Tensor) -> Tensor:
    """Return the confining term ½ (max(|z₁| − 4, 0) / 0.2)² added to U2–U4."""
    return 0.5 * (torch.relu(z[..., 0].abs() - 4) / 0.2) ** 2


def u1(z: Tensor) -> Tensor:
    """Ring with two lobes: ½((‖z‖ − 2)/0.4)² − ln(e^{−½((z₁−2)/0.6)²} + e^{−½((z₁+2)/0.6)²})."""
    z1 = z[..., 0]
    ring = 0.5 * ((torch.linalg.vector_norm(z, dim=-1) - 2) / 0.4) ** 2
    lobes = torch.logaddexp(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)
    return ring - lobes


def u2(z: Tensor) -> Tensor:
    """Sine wave: ½((z₂ − w₁)/0.4)², plus the wall."""
    z1, z2 = z[..., 0], z[..., 1]
    return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2 + wall(z)


def u3(z: Tensor) -> Tensor:
    """Two sine waves: −ln(e^{−½((z₂−w₁)/0.35)²} + e^{−½((z₂−w₁+w₂)/0.35)²}), plus the wall."""
    z1, z2 = z[..., 0], z[..., 1]
    r = z2 - _w1(z1)
    return -torch.logaddexp(-0.5 * (r / 0.35) ** 2, -0.5 * ((r + _w2(z1)) / 0.35) ** 2) + wall(z)


def u4(z: Tensor) -> Tensor:
    """Sine and step: −ln(e^{−½((z₂−w₁)/0.4)²} + e^{−½((z₂−w₁+w₃)/0.35)²}), plus the wall."""
    z1, z2 = z[..., 0], z[..., 1]
    r = z2 - _w1(z1)
    return -torch.logaddexp(-0.5 * (r / 0.4) ** 2, -0.5 * ((r + _w3(z1)) / 0.35) ** 2) + wall(z)


ENERGIES: dict[str, Callable[[Tensor], Tensor]] = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def energy(name: str) -> Callable[[Tensor], Tensor]:
    """Return the energy function called ``name`` (U1–U4)."""
    if name not in ENERGIES:
        raise KeyError(f"no energy {name!r}; expected one of {', '.join(ENERGY_NAMES)}")
    return ENERGIES[name]


def annealing_weight(step: int, steps: int) -> float:
    """Return the energy's weight β = min(1, 0.01 + step / steps) of Rezende and Mohamed."""
    return min(1.0, 0.01 + step / steps)


@functools.cache
def log_partition(name: str, points: int = 1000, bound: float = 7.0) -> float:
    """Return log Z = log ∫ exp(−U) on a ``points``² grid over ``[−bound, bound]²``, in float64.

    The integrand is below e^−70 on the border of the default box for every energy, so the
    sum over the grid (trapezoid and rectangle rules coincide here) is exact to float64
    precision up to the grid's resolution.
    """
    u = energy(name)
    axis = torch.linspace(-bound, bound, points, dtype=torch.float64)
    cell = (axis[1] - axis[0]).item() ** 2
    z = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    return (torch.logsumexp(-u(z), dim=0).item()) + math.log(cell)


def density_grid(name: str, xs: Tensor, ys: Tensor) -> Tensor:
    """Return the normalised density p on the grid ``values[i, j] = p(xs[j], ys[i])``."""
    z = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).to(torch.float64)
    return torch.exp(-energy(name)(z) - log_partition(name))


def reverse_kl(log_q: Tensor, u: Tensor, log_z: float) -> float:
    """Estimate KL(q ‖ p) = E_q[log q + U] + log Z from samples of q.

    ``log_q`` and ``u`` hold log q and U at the same samples drawn from q.
    """
    return (log_q.double() + u.double()).mean().item() + log_z


def effective_sample_size(log_q: Tensor, u: Tensor) -> float:
    """Return the effective sample size fraction of importance weights exp(−U) / q, in (0, 1].

    ``(Σ w)² / (n Σ w²)``, computed in log space.
    """
    log_w = -u.double() - log_q.double()
    n = log_w.numel()
    log_ratio = 2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)
    return math.exp(log_ratio.item()) / n
