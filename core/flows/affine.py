"""Affine transformers: the masked autoregressive flow baseline and a free elementwise layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.flows.elementwise import MonotoneTransformer

#: Bound of the log-scale; the soft clip keeps exp(α) within about [e^-4, e^4] per layer.
LOG_SCALE_BOUND = 4.0


def soft_clip(x: Tensor, bound: float = LOG_SCALE_BOUND) -> Tensor:
    """Squash ``x`` smoothly into ``(-bound, bound)``, the identity near zero."""
    return bound * torch.tanh(x / bound)


class AffineTransformer(MonotoneTransformer):
    r"""Affine transformer :math:`y = x \exp(\alpha) + \mu` with a soft-clipped log-scale.

    The conditioner emits :math:`(\tilde\alpha, \mu)` and
    :math:`\alpha = 4 \tanh(\tilde\alpha / 4)`. Stacked with a MADE conditioner this is the
    masked (or, used as the sampling map, inverse) autoregressive flow.

    References:
        | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017)
        | https://arxiv.org/abs/1705.07057
    """

    num_params = 2

    def identity_params(self) -> Tensor:
        return torch.zeros(2, dtype=torch.float64)

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # Log-scale and shift
        alpha, mu = params.unbind(dim=-1)
        alpha = soft_clip(alpha)

        return torch.addcmul(mu, x, alpha.exp()), alpha

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # Analytic inverse; every target is reachable
        alpha, mu = params.unbind(dim=-1)
        alpha = soft_clip(alpha)

        x = (y - mu) * torch.exp(-alpha)
        return x, torch.ones_like(x, dtype=torch.bool)


class ElementwiseAffine(nn.Module):
    r"""A free per-feature affine map :math:`y = x \exp(\alpha) + \mu`, starting at identity.

    The element-wise linear layer the NAF authors put after their flow layers for density
    estimation.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.addcmul(self.shift, x, self.log_scale.exp())
        return y, self.log_scale.sum().expand(x.shape[:-1])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            x = (y - self.shift) * torch.exp(-self.log_scale)
        return x, torch.ones(y.shape[:-1], dtype=torch.bool, device=y.device)
