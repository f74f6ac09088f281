"""MADE, the masked autoregressive conditioner of the flows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed binary mask on every call."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        if mask.shape != (out_features, in_features):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}, expected ({out_features}, {in_features})"
            )
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder that emits ``params`` numbers per feature, autoregressively.

    The numbers for feature ``order[k]`` depend only on the features ``order[:k]``; those for
    ``order[0]`` are constants (biases). Hidden units are ELUs.

    Arguments:
        features: Number of input features :math:`D`.
        params: Numbers emitted per feature :math:`P`.
        hidden: Widths of the hidden layers.
        order: The autoregressive order, a permutation of ``range(features)``.

    The output has shape ``(*batch, features, params)``.

    References:
        | MADE: Masked Autoencoder for Distribution Estimation (Germain et al., 2015)
        | https://arxiv.org/abs/1502.03509
    """

    def __init__(
        self,
        features: int,
        params: int,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if features < 1 or params < 1:
            raise ValueError(f"features ({features}) and params ({params}) must be positive")
        order = list(range(features)) if order is None else [int(i) for i in order]
        if sorted(order) != list(range(features)):
            raise ValueError(f"order {order} is not a permutation of range({features})")

        self.features = features
        self.params = params
        self.register_buffer("order", torch.tensor(order, dtype=torch.long))

        # Degrees: input i has degree 1 + its rank in the order; a hidden unit of degree m may
        # see inputs of degree ≤ m; an output of degree d may see hidden units of degree < d.
        degree_in = torch.empty(features, dtype=torch.long)
        degree_in[torch.tensor(order)] = torch.arange(1, features + 1)
        degrees = [degree_in]
        for width in hidden:
            degrees.append(torch.arange(width) % max(features - 1, 1) + 1)
        degree_out = degree_in.repeat_interleave(params)

        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True):
            mask = d_out[:, None] >= d_in[None, :]
            layers += [MaskedLinear(len(d_in), len(d_out), mask), nn.ELU()]
        mask = degree_out[:, None] > degrees[-1][None, :]
        layers.append(MaskedLinear(len(degrees[-1]), features * params, mask))
        self.network = nn.Sequential(*layers)

    @property
    def output_layer(self) -> MaskedLinear:
        """The last masked layer, whose bias sets the emitted numbers at initialisation."""
        return self.network[-1]

    def reset_output(self, bias: Tensor, weight_scale: float = 1e-2, noise: float = 1e-2) -> None:
        """Start near constant output ``bias`` (one value per emitted number, ``(params,)``).

        The last layer's weights are drawn uniformly in ``±weight_scale / sqrt(fan_in)`` and
        its biases are ``bias`` plus Gaussian noise of standard deviation ``noise``; the small
        random part keeps interchangeable units (sigmoids of a mixture) from staying identical.
        """
        layer = self.output_layer
        bias = torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device)
        if bias.shape != (self.params,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({self.params},)")
        with torch.no_grad():
            bound = weight_scale / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound)
            layer.bias.copy_(bias.repeat(self.features))
            layer.bias.add_(noise * torch.randn_like(layer.bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x).unflatten(-1, (self.features, self.params))
