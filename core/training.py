"""A guarded optimisation step: a non-finite loss or gradient never reaches the parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient; the parameters were left as they were."""


def apply_gradients(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[torch.nn.Parameter],
    max_grad_norm: float | None = None,
) -> float:
    """Back-propagate ``loss`` and step ``optimizer`` only if everything is finite.

    Returns the gradient norm before clipping. Raises :class:`DivergenceError` without touching
    the parameters or the optimizer's state when the loss or any gradient is NaN or infinite, so
    the caller keeps its last good state.
    """
    parameters = [p for p in parameters if p.requires_grad]

    # A non-finite loss stops here, before any gradient exists.
    value = loss.detach()
    if not torch.isfinite(value):
        optimizer.zero_grad(set_to_none=True)
        raise DivergenceError(f"loss is {value.item()}")

    # Gradients, checked through their total norm (NaN or inf in any entry propagates to it).
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(
        parameters, math.inf if max_grad_norm is None else max_grad_norm
    )
    if not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        raise DivergenceError(f"gradient norm is {norm.item()} (loss {value.item():.4g})")

    optimizer.step()
    return float(norm)
