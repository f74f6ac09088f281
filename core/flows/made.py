"""MADE, the masked autoregressive conditioner of the flows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import skip_init


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
    ``order[0]`` are constants (biases). Hidden units are ELUs. In two dimensions the masked
    layers are replaced by the dense ones they amount to (:func:`_two_dimensional`).

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
        self._first = order[0]  # a Python int, for slicing without reading the buffer

        layers = masked_layers(features, params, hidden, order)
        self.constants: nn.Parameter | None = None
        if features == 2 and len(hidden) > 0:
            layers, self.constants = _two_dimensional(layers, order, params)
        self.network = nn.Sequential(*layers)

    @property
    def output_layer(self) -> nn.Linear:
        """The last layer, whose bias sets the emitted numbers at initialisation."""
        return self.network[-1]

    def reset_output(self, bias: Tensor, weight_scale: float = 1e-2, noise: float = 1e-2) -> None:
        """Start near constant output ``bias`` (one value per emitted number, ``(params,)``).

        The last layer's weights are drawn uniformly in ``±weight_scale / sqrt(fan_in)`` and
        its biases (and the constants, in two dimensions) are ``bias`` plus Gaussian noise of
        standard deviation ``noise``; the small random part keeps interchangeable units
        (sigmoids of a mixture) from staying identical.
        """
        layer = self.output_layer
        bias = torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device)
        if bias.shape != (self.params,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({self.params},)")
        with torch.no_grad():
            bound = weight_scale / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound)
            biases = [layer.bias] if self.constants is None else [self.constants, layer.bias]
            for b in biases:
                b.copy_(bias.repeat(b.numel() // self.params))
                b.add_(noise * torch.randn_like(b))

    def forward(self, x: Tensor) -> Tensor:
        if self.constants is None:
            return self.network(x).unflatten(-1, (self.features, self.params))

        first = self._first
        varying = self.network(x[..., first : first + 1])
        constants = self.constants.expand_as(varying)
        pair = (constants, varying) if first == 0 else (varying, constants)
        return torch.stack(pair, dim=-2)


def masked_layers(
    features: int, params: int, hidden: Sequence[int], order: Sequence[int]
) -> list[nn.Module]:
    """Return the masked linear layers, with ELUs between, of a MADE in the order ``order``."""
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
    return layers


def _two_dimensional(
    layers: list[nn.Module], order: Sequence[int], params: int
) -> tuple[list[nn.Module], nn.Parameter]:
    """Return the dense layers and the constants of a two-dimensional MADE's masked ``layers``.

    In two dimensions the masks say little: every hidden unit sees the first input in the
    order and nothing else, and the first feature's numbers are constants (biases). The same
    function is then a dense network from that input to the second feature's numbers, with the
    constants beside it, and skips the zero half of the products and the multiplies by masks.
    The dense layers take their values from the masked ones, so the start is the same.
    """
    first, second = order
    masked = [layer for layer in layers if isinstance(layer, MaskedLinear)]
    rows = slice(second * params, (second + 1) * params)
    values = {
        masked[0]: (masked[0].weight[:, first : first + 1], masked[0].bias),
        **{layer: (layer.weight, layer.bias) for layer in masked[1:-1]},
        masked[-1]: (masked[-1].weight[rows], masked[-1].bias[rows]),
    }

    dense: list[nn.Module] = []
    for layer in layers:
        if layer in values:
            weight, bias = values[layer]
            layer = skip_init(nn.Linear, weight.shape[1], weight.shape[0])  # no random draws
            with torch.no_grad():
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
        dense.append(layer)

    constants = masked[-1].bias[first * params : (first + 1) * params]
    return dense, nn.Parameter(constants.detach().clone())
