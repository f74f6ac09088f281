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
from torch.autograd.function import FunctionCtx, once_differentiable

ENERGY_NAMES = ("U1", "U2", "U3", "U4")


# Each energy below returns U(z) and, when asked, its gradient dU/dz, written out by hand. An
# energy is a few dozen operations on a batch of 2D points, and recording them for autograd
# and running their backward cost more than the values; the gradient computed alongside the
# value takes one node. Without a gradient to track, the same code returns the value alone,
# through plain (still differentiable) operations. Every derivative is checked by gradcheck.


def _sine(z1: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    # w1 = sin(2π z1 / 4) and dw1/dz1
    angle = z1 * (math.pi / 2)
    return torch.sin(angle), (math.pi / 2) * torch.cos(angle) if grad else None


def _wall(z1: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    # ½ v² with v = max(|z1| − 4, 0) / 0.2, and d/dz1 = v sign(z1) / 0.2
    v = torch.relu(z1.abs() - 4) / 0.2
    return 0.5 * v.square(), v * torch.sign(z1) / 0.2 if grad else None


def _two_branches(r: Tensor, m: Tensor, s_a: float, s_b: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""Return :math:`-\ln(e^{-\frac12 (r/s_a)^2} + e^{-\frac12 ((r+m)/s_b)^2})`, dU/dr, dU/dm."""
    a = -0.5 * (r / s_a).square()
    b = -0.5 * ((r + m) / s_b).square()
    p_b = torch.sigmoid(b - a)  # the share of the second branch
    du_dm = p_b * (r + m) / s_b**2
    return -torch.logaddexp(a, b), (1 - p_b) * r / s_a**2 + du_dm, du_dm


def _on_sine(
    z: Tensor, grad: bool, u_of_r: Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
) -> tuple[Tensor, Tensor | None]:
    # U2-U4: a function of r = z2 − w1(z1) and of z1, plus the wall.
    z1, z2 = z[..., 0], z[..., 1]
    w1, dw1 = _sine(z1, grad)
    wall_value, dwall = _wall(z1, grad)
    value, du_dr, du_dz1 = u_of_r(z2 - w1, z1)
    if not grad:
        return value + wall_value, None
    return value + wall_value, torch.stack([du_dz1 - du_dr * dw1 + dwall, du_dr], dim=-1)


def _u1(z: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    z1 = z[..., 0]
    norm = torch.linalg.vector_norm(z, dim=-1)
    a = -0.5 * ((z1 - 2) / 0.6).square()
    b = -0.5 * ((z1 + 2) / 0.6).square()
    value = 0.5 * ((norm - 2) / 0.4).square() - torch.logaddexp(a, b)
    if not grad:
        return value, None

    # The ring pulls along z / ‖z‖ (taken as 0 at the origin, as autograd does); the lobes
    # along z1, with the share p_b of the lobe at −2.
    ring = torch.where(norm > 0, (norm - 2) / (0.16 * norm), 0.0).unsqueeze(-1) * z
    lobes = (z1 - 2 + 4 * torch.sigmoid(b - a)) / 0.36
    return value, ring + torch.stack([lobes, torch.zeros_like(lobes)], dim=-1)


def _u2(z: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    def sine_wave(r: Tensor, z1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return 0.5 * (r / 0.4).square(), r / 0.16, torch.zeros_like(r)

    return _on_sine(z, grad, sine_wave)


def _u3(z: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    def two_waves(r: Tensor, z1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # w2 = 3 exp(−½((z1 − 1)/0.6)²), dw2/dz1 = −w2 (z1 − 1) / 0.36
        w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6).square())
        value, du_dr, du_dw2 = _two_branches(r, w2, 0.35, 0.35)
        return value, du_dr, du_dw2 * w2 * (1 - z1) / 0.36

    return _on_sine(z, grad, two_waves)


def _u4(z: Tensor, grad: bool) -> tuple[Tensor, Tensor | None]:
    def wave_and_step(r: Tensor, z1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # w3 = 3 σ((z1 − 1)/0.3), dw3/dz1 = w3 (1 − w3/3) / 0.3
        w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
        value, du_dr, du_dw3 = _two_branches(r, w3, 0.4, 0.35)
        return value, du_dr, du_dw3 * w3 * (1 - w3 / 3) / 0.3

    return _on_sine(z, grad, wave_and_step)


class _Energy(torch.autograd.Function):
    """U(z) as one autograd node whose gradient was computed with the value."""

    @staticmethod
    def forward(ctx: FunctionCtx, z: Tensor, value_and_grad: Callable) -> Tensor:
        value, grad = value_and_grad(z, True)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_value: Tensor) -> tuple[Tensor, None]:
        (grad,) = ctx.saved_tensors
        return grad_value.unsqueeze(-1) * grad, None


def _energy_function(
    value_and_grad: Callable[[Tensor, bool], tuple[Tensor, Tensor | None]], doc: str
) -> Callable[[Tensor], Tensor]:
    def u(z: Tensor) -> Tensor:
        if torch.is_grad_enabled() and z.requires_grad:
            return _Energy.apply(z, value_and_grad)
        return value_and_grad(z, False)[0]

    u.__doc__ = doc
    return u


def wall(z: Tensor) -> Tensor:
    """Return the confining term ½ (max(|z₁| − 4, 0) / 0.2)² added to U2–U4."""
    return _wall(z[..., 0], False)[0]


u1 = _energy_function(
    _u1, "Ring with two lobes: ½((‖z‖ − 2)/0.4)² − ln(e^{−½((z₁−2)/0.6)²} + e^{−½((z₁+2)/0.6)²})."
)
u2 = _energy_function(_u2, "Sine wave: ½((z₂ − w₁)/0.4)², plus the wall.")
u3 = _energy_function(
    _u3, "Two sine waves: −ln(e^{−½((z₂−w₁)/0.35)²} + e^{−½((z₂−w₁+w₂)/0.35)²}), plus the wall."
)
u4 = _energy_function(
    _u4, "Sine and step: −ln(e^{−½((z₂−w₁)/0.4)²} + e^{−½((z₂−w₁+w₃)/0.35)²}), plus the wall."
)


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
