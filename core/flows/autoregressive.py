"""Autoregressive flow layers (MADE conditioner + monotone transformer) and stacks of them.

One stack serves both directions of use. As the *sampling* map z → x (the inverse
autoregressive flow style, for reverse KL) it yields samples and their log-density in one pass,
and the learned density at given points needs the inverse. As the *normalising* map x → z (the
masked autoregressive flow style, for maximum likelihood) it yields the density in one pass,
and samples need the inverse. The inverse runs one conditioner pass per dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from core.flows.affine import AffineTransformer, ElementwiseAffine
from core.flows.elementwise import MonotoneTransformer
from core.flows.made import MADE
from core.flows.sigmoidal import DeepDenseSigmoidalTransformer, DeepSigmoidalTransformer

#: The transformer families by the names the experiment and the command line use.
FLOW_KINDS = ("dsf", "ddsf", "affine")


def make_transformer(kind: str, sigmoids: int = 16, depth: int = 2) -> MonotoneTransformer:
    """Return a fresh transformer: ``"dsf"``, ``"ddsf"`` (``depth`` sub-layers) or ``"affine"``.

    ``sigmoids`` is the number of sigmoid units of DSF, and the width of DDSF's sub-layers.
    """
    if kind == "dsf":
        return DeepSigmoidalTransformer(sigmoids)
    if kind == "ddsf":
        return DeepDenseSigmoidalTransformer(sigmoids, depth)
    if kind == "affine":
        return AffineTransformer()
    raise ValueError(f"unknown flow kind {kind!r}; expected one of {', '.join(FLOW_KINDS)}")


class AutoregressiveLayer(nn.Module):
    r"""One autoregressive flow layer :math:`y_t = \tau(x_t; c(x_{<t}))`.

    The MADE conditioner :math:`c` starts with near-zero weights and the transformer's identity
    parameters as biases, so the layer starts at :math:`y \approx x`.

    Arguments:
        features: Number of dimensions :math:`D`.
        transformer: The elementwise monotone transformer :math:`\tau`.
        hidden: Widths of the conditioner's hidden layers.
        order: The autoregressive order, a permutation of ``range(features)``.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779
    """

    def __init__(
        self,
        features: int,
        transformer: MonotoneTransformer,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.conditioner = MADE(features, transformer.num_params, hidden, order)
        self.conditioner.reset_output(transformer.identity_params())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``y`` and ``log |det dy/dx|`` (shape ``x.shape[:-1]``) in one pass."""
        # Every dimension's transformer parameters in one conditioner pass
        params = self.conditioner(x)

        # Elementwise transform; the Jacobian is triangular in the order
        y, ladj = self.transformer(x, params)

        return y, ladj.sum(dim=-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``x`` with ``forward(x)[0] = y`` and the mask of rows the layer reaches.

        Runs one conditioner pass per dimension, in the autoregressive order. Not
        differentiable.
        """
        with torch.no_grad():
            x = torch.zeros_like(y)
            reachable = torch.ones(y.shape[:-1], dtype=torch.bool, device=y.device)

            for t in self.conditioner.order.tolist():
                # Parameters of dimension t depend only on the dimensions already solved
                params = self.conditioner(x)[..., t, :]

                # Invert the scalar transformer of dimension t
                x_t, ok = self.transformer.inverse(y[..., t], params)
                x[..., t] = x_t
                reachable &= ok

        return x, reachable


class AutoregressiveFlow(nn.Module):
    r"""A stack of autoregressive layers with the order reversed between consecutive layers.

    Arguments:
        features: Number of dimensions :math:`D`.
        kind: Transformer family: ``"dsf"``, ``"ddsf"`` or ``"affine"``.
        layers: Number of autoregressive layers.
        hidden: Width of each of the conditioner's ``hidden_layers`` hidden layers.
        hidden_layers: Number of hidden layers of each conditioner.
        sigmoids: Sigmoid units per DSF transformer, or width of DDSF's sub-layers.
        final_affine: Whether a free elementwise affine layer ends the stack (the authors'
            density-estimation setting).

    ``forward(x)`` applies the layers in order and returns ``(y, log |det dy/dx|)``;
    ``inverse(y)`` undoes them and returns ``(x, reachable)``.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779
    """

    def __init__(
        self,
        features: int = 2,
        kind: str = "dsf",
        layers: int = 2,
        hidden: int = 64,
        hidden_layers: int = 2,
        sigmoids: int = 16,
        final_affine: bool = False,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.features = features
        self.kind = kind

        forward_order = list(range(features))
        self.layers = nn.ModuleList(
            AutoregressiveLayer(
                features,
                make_transformer(kind, sigmoids),
                [hidden] * hidden_layers,
                forward_order if i % 2 == 0 else forward_order[::-1],
            )
            for i in range(layers)
        )
        self.final = ElementwiseAffine(features) if final_affine else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Layers in turn, summing their log-determinants. (Slicing the ModuleList would build a
        # new module on every call, a tenth of the flow's forward time.)
        y, ladj = x, None
        for layer in self.layers:
            y, l_ = layer(y)
            ladj = l_ if ladj is None else ladj + l_

        # Optional elementwise affine end
        if self.final is not None:
            y, l_ = self.final(y)
            ladj = ladj + l_

        return y, ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Undo :meth:`forward`; rows some layer cannot reach are ``False`` in the mask."""
        x, reachable = y, None
        if self.final is not None:
            x, reachable = self.final.inverse(x)

        for layer in reversed(self.layers):
            x, ok = layer.inverse(x)
            reachable = ok if reachable is None else reachable & ok

        return x, reachable


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Log-density of the standard normal on the last dimension of ``z``."""
    return -0.5 * (z.square().sum(dim=-1) + z.shape[-1] * math.log(2 * math.pi))
