"""The interface of elementwise monotone transformers driven by an autoregressive conditioner.

In the language of Huang et al. (2018), an autoregressive flow is a *conditioner*, which reads
the earlier dimensions and emits parameters, and a *transformer*, a strictly increasing scalar
function of one dimension whose shape those parameters set. This module holds what every
transformer provides, so that the conditioner and the flow layer never look inside one.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor, nn


class MonotoneTransformer(nn.Module, abc.ABC):
    """A strictly increasing map of each scalar, shaped by ``num_params`` numbers per scalar.

    Shapes: ``x`` is ``(*batch)`` and ``params`` is ``(*batch, num_params)``; the log-derivative
    has the shape of ``x``. Subclasses may hold free parameters of their own (shared by every
    scalar) besides those the conditioner emits.
    """

    #: Numbers the conditioner emits per scalar.
    num_params: int

    @abc.abstractmethod
    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``y = τ(x)`` and ``log dτ/dx``, both with the shape of ``x``."""

    @abc.abstractmethod
    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``x`` with ``τ(x) = y`` and a boolean mask of the targets the map reaches.

        Where a target lies outside the transformer's range, the mask is ``False`` and ``x`` is
        a finite placeholder, never ``inf`` or NaN. The inverse is not differentiable.
        """

    @abc.abstractmethod
    def identity_params(self) -> Tensor:
        """Return the ``num_params`` numbers for which ``τ(x) ≈ x``, used at initialisation."""

    def extra_repr(self) -> str:
        return f"num_params={self.num_params}"


def inverse_softplus(y: float | Tensor) -> Tensor:
    """Return ``x`` with ``softplus(x) = y`` for ``y > 0``."""
    y = torch.as_tensor(y, dtype=torch.float64)
    return y + torch.log(-torch.expm1(-y))
