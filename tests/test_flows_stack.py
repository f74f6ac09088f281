"""MADE conditioners, autoregressive layers and stacks of them: structure, log-det, inverse."""

import math

import pytest
import torch
from flow_references import transformer_reference
from torch import nn
from torch.autograd.functional import jacobian

from core.flows.autoregressive import (
    FLOW_KINDS,
    AutoregressiveFlow,
    standard_normal_log_prob,
)
from core.flows.made import MADE, masked_layers
from core.flows.sigmoidal import Y_BOUND

FEATURES = 3


def make_flow(kind, layers=2, final_affine=False, features=FEATURES, seed=0, spread=1.0):
    """Return a float64 flow whose conditioners are randomised away from the identity start.

    Every masked weight gets Gaussian noise of standard deviation ``spread / sqrt(fan_in)`` and
    every bias, free DDSF logit and final affine parameter noise of standard deviation
    ``spread``; the masks still hold, since they multiply the weights on every call.
    """
    torch.manual_seed(seed)
    flow = AutoregressiveFlow(
        features, kind, layers, hidden=16, hidden_layers=2, sigmoids=4, final_affine=final_affine
    ).double()
    with torch.no_grad():
        for module in flow.modules():
            if isinstance(module, nn.Linear):  # masked or, in two dimensions, dense
                scale = spread / module.in_features**0.5
                module.weight.add_(scale * torch.randn_like(module.weight))
                module.bias.add_(spread * torch.randn_like(module.bias))
        for name, p in flow.named_parameters():
            if "logits" in name or "constants" in name or name.startswith("final."):
                p.add_(spread * torch.randn_like(p))
    return flow


def rank_of(order):
    """Return each feature's position in the autoregressive order."""
    rank = torch.empty(len(order), dtype=torch.long)
    rank[torch.as_tensor(order)] = torch.arange(len(order))
    return rank


def per_row_jacobian(f, x):
    """Return ``J[i] = d f(x)[i] / d x[i]`` for a row-wise map, checking rows do not interact."""
    full = jacobian(f, x, vectorize=True)  # (n, *out, n, features)
    n = x.shape[0]
    rows = torch.stack([full[i, ..., i, :] for i in range(n)])
    others = full.clone()
    for i in range(n):
        others[i, ..., i, :] = 0
    assert torch.equal(others, torch.zeros_like(others))  # no row sees another row
    return rows


@pytest.mark.parametrize("features", [1, 2, 5])
@pytest.mark.parametrize("hidden", [(8,), (16, 16), (3, 7, 5)])
@pytest.mark.parametrize("order", ["default", "reversed", "shuffled"])
def test_made_outputs_depend_only_on_earlier_features(features, hidden, order):
    torch.manual_seed(features)
    permutation = {
        "default": None,
        "reversed": list(range(features))[::-1],
        "shuffled": torch.randperm(features).tolist(),
    }[order]
    made = MADE(features, 3, hidden, permutation).double()
    x = torch.randn(4, features, dtype=torch.float64)

    jac = per_row_jacobian(made, x)  # (n, features, params, features)

    assert made(x).shape == (4, features, 3)
    rank = rank_of(made.order)
    earlier = rank[None, :] < rank[:, None]  # earlier[t, s]: s comes before t in the order
    moved = jac.abs().amax(dim=(0, 2)) > 0  # moved[t, s]: some output of t moves with x_s
    assert not (moved & ~earlier).any()

    # With at least D − 1 units per layer every hidden degree exists, so each output sees every
    # earlier feature (random ELU network: no derivative vanishes by accident)
    if min(hidden) >= features - 1:
        assert torch.equal(moved, earlier)


@pytest.mark.parametrize("hidden", [(8,), (16, 16), (3, 7, 5)])
@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_two_dimensional_made_computes_what_its_masked_layers_compute(hidden, order):
    # From the same seed, the dense layers take their values from the masked ones; with every
    # parameter then moved at random (the masks still apply), both give the same numbers.
    torch.manual_seed(3)
    made = MADE(2, 4, hidden, order).double()
    torch.manual_seed(3)
    masked = nn.Sequential(*masked_layers(2, 4, hidden, order)).double()
    x = 3 * torch.randn(50, 2, dtype=torch.float64)
    torch.testing.assert_close(made(x), masked(x).unflatten(-1, (2, 4)), rtol=1e-12, atol=1e-12)

    torch.manual_seed(4)
    made.reset_output(torch.randn(4, dtype=torch.float64), weight_scale=1.0, noise=1.0)
    with torch.no_grad():
        first, second = order
        dense = [m for m in made.network if isinstance(m, nn.Linear)]
        linear = [m for m in masked if isinstance(m, nn.Linear)]
        linear[0].weight[:, first] = dense[0].weight[:, 0]
        linear[0].weight[:, second] = 100.0  # masked out: never read
        for a, b in zip(linear[1:-1], dense[1:-1], strict=True):
            a.weight.copy_(b.weight)
        for a, b in zip(linear[:-1], dense[:-1], strict=True):
            a.bias.copy_(b.bias)
        linear[-1].weight[second * 4 : second * 4 + 4] = dense[-1].weight
        linear[-1].weight[first * 4 : first * 4 + 4] = 100.0  # masked out
        linear[-1].bias[second * 4 : second * 4 + 4] = dense[-1].bias
        linear[-1].bias[first * 4 : first * 4 + 4] = made.constants

    torch.testing.assert_close(made(x), masked(x).unflatten(-1, (2, 4)), rtol=1e-12, atol=1e-12)
    assert made.constants is not None and made.constants.shape == (4,)


def test_made_rejects_an_order_that_is_not_a_permutation():
    with pytest.raises(ValueError, match="not a permutation"):
        MADE(3, 2, (8,), order=[0, 0, 2])


def test_made_reset_output_starts_near_the_bias():
    torch.manual_seed(0)
    made = MADE(2, 3, (16, 16)).double()
    bias = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    made.reset_output(bias)
    x = 3 * torch.randn(64, 2, dtype=torch.float64)

    out = made(x)

    assert (out - bias).abs().max() < 0.2
    assert (out - bias).abs().max() > 0  # the small random part tells the units apart


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("final_affine", [False, True], ids=["plain", "final_affine"])
def test_flow_log_det_matches_autograd(kind, layers, final_affine):
    flow = make_flow(kind, layers, final_affine, seed=layers)
    x = 2 * torch.randn(12, FEATURES, dtype=torch.float64)

    y, ladj = flow(x)
    jac = per_row_jacobian(lambda v: flow(v)[0], x)
    sign, logabsdet = torch.linalg.slogdet(jac)

    # Every layer is increasing in each dimension given the earlier ones: orientation kept
    assert (sign == 1).all()
    torch.testing.assert_close(ladj, logabsdet, rtol=1e-10, atol=1e-10)
    assert ladj.std() > 0.1  # not the identity start


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("scale", [50.0, 1e3])
@pytest.mark.parametrize("final_affine", [False, True], ids=["plain", "final_affine"])
def test_flow_log_det_in_the_tails(kind, scale, final_affine):
    # Far out, the stack's Jacobian is so ill-conditioned (entries from e^−700 to 1) that the
    # slogdet of the product of the layers' Jacobians is off by tens to hundreds of nats, or
    # infinite (measured here: DSF 252 at |x| ~ 1e3, DDSF 191 at |x| ~ 50). The reference uses
    # det(J_L ⋯ J_1) = Π det J_l instead: each layer's autograd Jacobian is checked to be
    # triangular in that layer's order, so its log-det is the sum of the logs of its diagonal.
    # For sigmoidal layers, whose diagonal can underflow to 0 in float64 there, the diagonal
    # derivatives come from the mpmath transformer at the parameters the conditioner emits.
    flow = make_flow(kind, layers=2, final_affine=final_affine, seed=11)
    g = torch.Generator().manual_seed(12)
    x = scale * torch.randn(8, FEATURES, generator=g, dtype=torch.float64)

    y, ladj = flow(x)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()

    h, reference = x, torch.zeros(len(x), dtype=torch.float64)
    for layer in flow.layers:
        jac = per_row_jacobian(lambda v, layer=layer: layer(v)[0], h)
        rank = rank_of(layer.conditioner.order)
        later = rank[None, :] > rank[:, None]
        assert torch.equal(jac[:, later], torch.zeros_like(jac[:, later]))
        diag = torch.diagonal(jac, dim1=-2, dim2=-1)

        if kind == "affine":
            log_diag = diag.log()
        else:
            params = layer.conditioner(h).detach()
            _, log_diag = transformer_reference(
                layer.transformer, h.reshape(-1), params.reshape(-1, params.shape[-1])
            )
            log_diag = log_diag.reshape(h.shape)
            # Where float64 autograd still resolves the derivative, it agrees with mpmath
            normal = diag > 1e-280
            torch.testing.assert_close(log_diag[normal], diag[normal].log(), rtol=1e-9, atol=1e-9)

        reference += log_diag.sum(dim=-1)
        h = layer(h)[0].detach()

    if final_affine:
        jac = per_row_jacobian(lambda v: flow.final(v)[0], h)
        reference += torch.linalg.slogdet(jac)[1]
        h = flow.final(h)[0]

    torch.testing.assert_close(y, h)
    torch.testing.assert_close(ladj, reference, rtol=1e-9, atol=1e-9)
    if kind != "affine":
        assert ladj.min() < -min(100.0, scale / 2)  # the saturated tails were reached


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_flow_has_no_state_between_calls(kind):
    # The log-det of a batch must not come from a cache of an earlier call, nor depend on the
    # other rows of the batch
    flow = make_flow(kind, layers=2)
    a = torch.randn(5, FEATURES, dtype=torch.float64)
    b = torch.randn(7, FEATURES, dtype=torch.float64)

    ya, la = flow(a)
    flow(b)
    ya_again, la_again = flow(a)
    y_row, l_row = flow(a[2:3])

    assert torch.equal(ya, ya_again) and torch.equal(la, la_again)
    torch.testing.assert_close(y_row, ya[2:3], rtol=0, atol=1e-14)
    torch.testing.assert_close(l_row, la[2:3], rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_flow_starts_near_the_identity(kind):
    torch.manual_seed(0)
    flow = AutoregressiveFlow(FEATURES, kind, layers=3, hidden=16, final_affine=True).double()
    x = 2 * torch.randn(64, FEATURES, dtype=torch.float64)

    y, ladj = flow(x)

    # Conditioner output weights of ±1e−2/√fan_in and bias noise of 1e−2 move y by a few 1e−2
    assert (y - x).abs().max() < 0.15
    assert ladj.abs().max() < 0.15


def test_orders_alternate_between_layers():
    flow = AutoregressiveFlow(4, "dsf", layers=3)
    orders = [layer.conditioner.order.tolist() for layer in flow.layers]
    assert orders == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("final_affine", [False, True], ids=["plain", "final_affine"])
def test_flow_inverse_recovers_the_input(kind, layers, final_affine):
    flow = make_flow(kind, layers, final_affine, seed=20 + layers)
    g = torch.Generator().manual_seed(21)
    x = 2 * torch.randn(48, FEATURES, generator=g, dtype=torch.float64)
    y, ladj = flow(x)

    x_back, reachable = flow.inverse(y)
    y_back, ladj_back = flow(x_back)

    assert reachable.shape == (48,) and reachable.all()
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-9)
    torch.testing.assert_close(y_back, y, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj_back, ladj, rtol=0, atol=1e-9)
    assert ladj.std() > 0.1  # not the identity start


@pytest.mark.parametrize("kind", ["dsf", "ddsf"])
@pytest.mark.parametrize("layers", [1, 2])
def test_flow_inverse_flags_unreachable_rows(kind, layers):
    flow = make_flow(kind, layers, seed=30)
    g = torch.Generator().manual_seed(31)
    x = torch.randn(6, FEATURES, generator=g, dtype=torch.float64)
    y, _ = flow(x)

    # Rows 0–2 keep their image; rows 3–5 get one coordinate beyond the sigmoidal bound
    y = y.clone()
    y[3, 0] = Y_BOUND + 0.1
    y[4, 1] = -1e6
    y[5, 2] = math.inf

    x_back, reachable = flow.inverse(y)

    assert reachable.tolist() == [True, True, True, False, False, False]
    assert torch.isfinite(x_back).all()
    torch.testing.assert_close(x_back[:3], x[:3], rtol=0, atol=1e-9)


def test_standard_normal_log_prob_is_the_closed_form():
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
    expected = [-0.5 * (a * a + b * b) - math.log(2 * math.pi) for a, b in z.tolist()]
    torch.testing.assert_close(standard_normal_log_prob(z), torch.tensor(expected).double())
