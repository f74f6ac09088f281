"""A guarded optimisation step: a non-finite loss or gradient never reaches the parameters."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient; the parameters were left as they were."""


class FlatParameters:
    """Trainable parameters re-homed as views of one flat parameter, so a step treats them as one.

    A small model's step pays per tensor, not per number: clipping takes a norm of each
    gradient, and even the fused Adam sorts its tensors into groups. Over one flat tensor the
    norm, the clip and Adam are an operation each, and the gradients are gathered into it
    with a single ``cat`` after the backward pass.

    Build it after the module has reached its device (``Module.to`` would replace the views),
    and give the optimizer :attr:`flat` alone. The module's parameters remain ordinary
    parameters for the forward pass, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, parameters: Iterable[nn.Parameter]) -> None:
        # Each parameter once, even if it is listed twice (a weight shared by two layers)
        self.views = list(dict.fromkeys(p for p in parameters if p.requires_grad))
        if not self.views:
            raise ValueError("no trainable parameters to flatten")
        first = self.views[0]
        mixed = [p for p in self.views if (p.dtype, p.device) != (first.dtype, first.device)]
        if mixed:
            raise ValueError(
                f"parameters must share one dtype and device to be flattened; {len(mixed)} "
                f"differ from {first.dtype} on {first.device}"
            )

        self.flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.views]))
        offset = 0
        for p in self.views:
            p.data = self.flat.detach()[offset : offset + p.numel()].view_as(p)
            offset += p.numel()

    def zero_grad(self) -> None:
        """Drop every gradient, of the views and of the flat parameter."""
        for p in self.views:
            p.grad = None
        self.flat.grad = None

    def gather_grad(self) -> torch.Tensor:
        """Concatenate the views' gradients (zeros where one has none) into ``flat.grad``."""
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.views]
        self.flat.grad = torch.cat([g.reshape(-1) for g in grads])
        return self.flat.grad


def apply_gradients(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    parameters: Iterable[torch.nn.Parameter] | FlatParameters,
    max_grad_norm: float | None = None,
) -> float:
    """Back-propagate ``loss`` and step ``optimizer`` only if everything is finite.

    ``parameters`` are those the optimizer steps, or a :class:`FlatParameters` whose ``flat``
    it steps. Returns the gradient norm before clipping. Raises :class:`DivergenceError`
    without touching the parameters or the optimizer's state when the loss or any gradient is
    NaN or infinite, so the caller keeps its last good state.
    """
    flat = parameters if isinstance(parameters, FlatParameters) else None
    stepped = [flat.flat] if flat else [p for p in parameters if p.requires_grad]
    max_norm = math.inf if max_grad_norm is None else max_grad_norm

    def clear() -> None:
        # With flat parameters the optimizer steps flat.flat alone, whose gradient this drops.
        if flat:
            flat.zero_grad()
        else:
            optimizer.zero_grad(set_to_none=True)

    # A non-finite loss stops here, before any gradient exists. (Python's isfinite of a float:
    # torch.isfinite takes several operations.)
    value = loss.item()
    if not math.isfinite(value):
        clear()
        raise DivergenceError(f"loss is {value}")

    # Gradients, checked through their total norm (NaN or inf in any entry propagates to it).
    clear()
    loss.backward()
    if flat:
        flat.gather_grad()
    norm = torch.nn.utils.clip_grad_norm_(stepped, max_norm).item()
    if not math.isfinite(norm):
        clear()
        raise DivergenceError(f"gradient norm is {norm} (loss {value:.4g})")

    optimizer.step()
    return norm
