"""The elementwise transformers of the flows: DSF, DDSF and affine, and their inverses."""

import math

import pytest
import torch
from flow_references import transformer_reference
from torch.autograd.functional import jacobian

from core.flows.affine import LOG_SCALE_BOUND, AffineTransformer
from core.flows.sigmoidal import (
    Y_BOUND,
    DeepDenseSigmoidalTransformer,
    DeepSigmoidalTransformer,
    FusedDeepSigmoid,
    invert_monotone,
)

#: Every transformer family, in the shapes the flows use and at the edges (K = 1, depth 1, 3).
CASES = {
    "dsf-K1": lambda: DeepSigmoidalTransformer(1),
    "dsf-K5": lambda: DeepSigmoidalTransformer(5),
    "ddsf-H4-L1": lambda: DeepDenseSigmoidalTransformer(4, 1),
    "ddsf-H6-L2": lambda: DeepDenseSigmoidalTransformer(6, 2),
    "ddsf-H5-L3": lambda: DeepDenseSigmoidalTransformer(5, 3),
    "affine": AffineTransformer,
}
SIGMOIDAL = [name for name in CASES if name != "affine"]


def make(name, seed=0, dtype=torch.float64):
    """Return a transformer with random free logits (DDSF), far from its initial state."""
    torch.manual_seed(seed)
    transformer = CASES[name]().to(dtype)
    with torch.no_grad():
        for p in transformer.parameters():
            p.normal_(0.0, 1.0)
    return transformer


def random_params(transformer, n, spread=1.5, seed=1, dtype=torch.float64):
    """Draw ``n`` rows of conditioner numbers, Gaussian of standard deviation ``spread``."""
    g = torch.Generator().manual_seed(seed)
    return spread * torch.randn(n, transformer.num_params, generator=g, dtype=dtype)


def tail_inputs(n, scale, seed=2):
    """Return ``n`` inputs of magnitude about ``scale`` with both signs, float64."""
    g = torch.Generator().manual_seed(seed)
    magnitude = scale * (0.5 + torch.rand(n, generator=g, dtype=torch.float64))
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    return sign * magnitude


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("scale", [1.0, 10.0, 50.0])
def test_log_derivative_matches_autograd(name, scale):
    transformer = make(name)
    params = random_params(transformer, 48)
    x = tail_inputs(48, scale)

    y, ladj = transformer(x, params)
    jac = jacobian(lambda v: transformer(v, params)[0], x)
    diag = torch.diagonal(jac)

    # Each output depends on its own input only, with a positive (increasing) derivative
    assert torch.equal(jac, torch.diag(diag))
    assert (diag > 0).all()
    assert torch.isfinite(ladj).all()
    torch.testing.assert_close(ladj, diag.log(), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("name", SIGMOIDAL)
def test_log_derivative_matches_mpmath_where_every_sigmoid_saturates(name):
    # Far in the tails the float64 derivative of the plain formula underflows (σ(−C) = e^−1000),
    # so autograd of any float64 implementation reads 0 there. The mpmath reference evaluates
    # the same formula at 50 digits with an unbounded exponent, where it is exact. Moderate and
    # large parameters alike: slopes up to e^7, offsets up to ±50.
    transformer = make(name)
    params = torch.cat(
        [random_params(transformer, 24), random_params(transformer, 24, spread=8.0, seed=3)]
    )
    x = torch.cat([tail_inputs(16, 50.0), tail_inputs(16, 200.0), tail_inputs(16, 1e3)])

    y, ladj = transformer(x, params)
    y_ref, ladj_ref = transformer_reference(transformer, x, params)

    # Saturated outputs round to the bound itself, never beyond it
    assert torch.isfinite(ladj).all() and (y.abs() <= Y_BOUND).all()
    assert ladj_ref.min() < -100  # the tails were reached: derivatives below e^−100
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(ladj, ladj_ref, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("name", SIGMOIDAL)
def test_float32_stays_accurate_in_the_tails(name):
    # The log-space computation keeps float32 within its own precision even when saturated,
    # where a float32 product of sigmoids would have underflowed long before (e^−104).
    transformer = make(name, dtype=torch.float32)
    params = random_params(transformer, 32, dtype=torch.float32)
    x = torch.cat([tail_inputs(16, 1.0), tail_inputs(16, 1e3)]).float()

    y, ladj = transformer(x, params)
    y_ref, ladj_ref = transformer_reference(transformer, x, params)

    assert y.dtype == ladj.dtype == torch.float32
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=2e-5)
    torch.testing.assert_close(ladj.double(), ladj_ref, rtol=2e-6, atol=2e-5)


def gradients(f, x, params, seed=11):
    """Return the gradients of a random weighting of ``f(x, params)``'s two outputs."""
    x, params = x.clone().requires_grad_(), params.clone().requires_grad_()
    y, ladj = f(x, params)
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(2, *y.shape, generator=g, dtype=y.dtype)
    return torch.autograd.grad((weights[0] * y + weights[1] * ladj).sum(), (x, params))


@pytest.mark.parametrize("name", ["dsf-K5", "ddsf-H6-L2"])
@pytest.mark.parametrize("spread", [1.5, 8.0])
@pytest.mark.parametrize("scale", [1.0, 10.0, 50.0])
def test_fast_path_gradients_match_the_log_space_composition(name, spread, scale):
    # DSF's fused node (a hand-written backward) and DDSF's probability-space path against
    # autograd through the log-space version, for the conditioner's numbers as well as the
    # input (the Jacobian test covers dy/dx only)
    transformer = make(name)
    params = random_params(transformer, 48, spread)
    x = tail_inputs(48, scale)

    assert not fast_path(transformer)(x, params)[2].any()  # no fallback: the fast path alone
    fast = gradients(transformer, x, params)
    composed = gradients(transformer.log_space_forward, x, params)

    for got, expected in zip(fast, composed, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    if name.startswith("dsf"):
        inputs = (x[:6].clone().requires_grad_(), params[:6].clone().requires_grad_())
        assert torch.autograd.gradcheck(lambda *a: FusedDeepSigmoid.apply(*a)[:2], inputs)


def fast_path(transformer):
    """Return the transformer's fast path, ``(x, params) -> (y, ladj, underflow)``."""
    if isinstance(transformer, DeepSigmoidalTransformer):
        return FusedDeepSigmoid.apply
    return transformer.probability_forward


@pytest.mark.parametrize("name", ["dsf-K5", "ddsf-H6-L2", "ddsf-H5-L3"])
def test_fast_paths_fall_back_to_log_space_where_the_derivative_underflows(name):
    # In float32 far in the tails the derivative underflows for some elements only: those
    # take the log-space path and the rest stay on the fast one; the merged values are exact
    # to float32 precision and the gradients are those of the log-space version throughout.
    transformer = make(name, dtype=torch.float32)
    params = random_params(transformer, 64, dtype=torch.float32)
    x = torch.cat([tail_inputs(32, 1.0), tail_inputs(32, 300.0)]).float()

    _, ladj_fast, underflow = fast_path(transformer)(x, params)
    assert 0 < underflow.sum() < len(x)

    # Values: the merged result within float32's reach of the exact one (mpmath)
    y, ladj = transformer(x, params)
    y_ref, ladj_ref = transformer_reference(transformer, x, params)
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=2e-5)
    torch.testing.assert_close(ladj.double(), ladj_ref, rtol=2e-6, atol=2e-5)
    assert not torch.isclose(ladj_fast[underflow], ladj[underflow], rtol=0, atol=1).all()

    fast = gradients(transformer, x, params)
    composed = gradients(transformer.log_space_forward, x, params)
    for got, expected in zip(fast, composed, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_affine_transformer_is_the_soft_clipped_scale_and_shift():
    transformer = AffineTransformer().double()
    g = torch.Generator().manual_seed(4)
    params = 10 * torch.randn(64, 2, generator=g, dtype=torch.float64)
    x = torch.cat([tail_inputs(32, 1.0), tail_inputs(32, 1e3)])

    y, ladj = transformer(x, params)

    # y = x exp(4 tanh(α̃ / 4)) + μ, written out
    alpha = [4 * math.tanh(a / 4) for a in params[:, 0].tolist()]
    mu = params[:, 1].tolist()
    expected = [xi * math.exp(a) + m for xi, a, m in zip(x.tolist(), alpha, mu, strict=True)]
    torch.testing.assert_close(y, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(ladj, torch.tensor(alpha, dtype=torch.float64))
    assert ladj.abs().max() < LOG_SCALE_BOUND


@pytest.mark.parametrize("name", SIGMOIDAL)
def test_sigmoidal_transformers_are_strictly_increasing(name):
    transformer = make(name)
    params = random_params(transformer, 8, seed=5)
    grid = torch.linspace(-40, 40, 8001, dtype=torch.float64)
    x = grid.expand(8, -1)
    params = params[:, None, :].expand(-1, grid.numel(), -1)

    y, ladj = transformer(x, params)
    step = y.diff(dim=-1)

    # Never decreasing anywhere; strictly increasing wherever the output is not within float64
    # resolution of its bound; the derivative is positive and finite everywhere
    assert (step >= 0).all()
    inside = (y[:, :-1].abs() < Y_BOUND - 1e-6) & (y[:, 1:].abs() < Y_BOUND - 1e-6)
    assert inside.float().mean() > 0.5
    assert (step[inside] > 0).all()
    assert torch.isfinite(ladj).all()
    assert (y.abs() <= Y_BOUND).all()


@pytest.mark.parametrize("name", CASES)
def test_identity_parameters_give_the_identity(name):
    transformer = CASES[name]().double()
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    params = transformer.identity_params().expand(len(x), -1)

    y, ladj = transformer(x, params)

    # Each sigmoidal layer is logit((1 − δ) σ(x) + δ/2), x up to δ / σ'(x) ≈ 1e−4 at |x| = 5;
    # DDSF's sub-layers add up
    torch.testing.assert_close(y, x, rtol=0, atol=5e-4)
    torch.testing.assert_close(ladj, torch.zeros_like(x), rtol=0, atol=5e-4)


def limits(transformer, params):
    """Return the infimum and supremum of the map, its values far beyond every sigmoid."""
    far = torch.full(params.shape[:-1], 1e6, dtype=params.dtype)
    return transformer(-far, params)[0], transformer(far, params)[0]


@pytest.mark.parametrize("name", CASES)
def test_inverse_recovers_the_input(name):
    transformer = make(name)
    params = torch.cat(
        [random_params(transformer, 200, seed=6), random_params(transformer, 56, 4.0, seed=7)]
    )
    g = torch.Generator().manual_seed(8)
    x = torch.cat([3 * torch.randn(200, generator=g, dtype=torch.float64), tail_inputs(56, 8.0)])
    y, ladj = transformer(x, params)

    x_back, reachable = transformer.inverse(y, params)
    y_back, _ = transformer(x_back, params)

    # Reachable exactly when strictly inside the map's limits (a saturated output rounds to
    # the limit itself); that is nearly every point here
    y_min, y_max = limits(transformer, params)
    assert torch.equal(reachable, (y > y_min) & (y < y_max))
    assert reachable.float().mean() > 0.95

    # x comes back to within the root's conditioning: a few tens of float64 ulps of y (the
    # forward pass's own rounding) divided by dy/dx; y comes back to a few ulps
    eps = torch.finfo(torch.float64).eps
    tolerance = 32 * eps * ((1 + y.abs()) * torch.exp(-ladj) + 1 + x.abs())
    assert ((x_back - x).abs() <= tolerance)[reachable].all()
    assert ((y_back - y).abs() <= 8 * eps * (1 + y.abs()))[reachable].all()
    assert tolerance.median() < 1e-12  # most inputs are well conditioned: the test is tight


@pytest.mark.parametrize("name", SIGMOIDAL)
def test_unreachable_targets_are_flagged_and_finite(name):
    transformer = make(name)
    beyond = [Y_BOUND, Y_BOUND + 1e-9, 14.6, 20.0, 1e6, math.inf]
    targets = torch.tensor(beyond + [-v for v in beyond], dtype=torch.float64)
    params = random_params(transformer, len(targets) + 2, seed=9)

    # Just beyond the map's own limits, which for DDSF lie inside ±14.5: its first sub-layer
    # saturates, and the later ones map that saturated value to less than the bound
    y_min, y_max = limits(transformer, params[-2:])
    targets = torch.cat([targets, torch.stack([y_min[0] - 1e-6, y_max[1] + 1e-6])])

    # Reachable targets in the same batch as the unreachable ones
    x_ok = torch.linspace(-3, 3, len(targets), dtype=torch.float64)
    y_ok, _ = transformer(x_ok, params)
    y = torch.cat([targets, y_ok])

    x, reachable = transformer.inverse(y, torch.cat([params, params]))

    n = len(targets)
    assert not reachable[:n].any()
    assert reachable[n:].all()
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x[n:], x_ok, rtol=0, atol=1e-9)

    # The placeholder is the bracket end on the target's side, where the map has flattened
    y_placeholder, _ = transformer(x[:n], params)
    y_min, y_max = limits(transformer, params)
    expected = torch.where(targets >= y_max, y_max, y_min)
    torch.testing.assert_close(y_placeholder, expected, rtol=0, atol=1e-12)


def test_invert_monotone_solves_a_known_function():
    def cubic(x, params):
        # f(x) = c x³ + x, f' = 3 c x² + 1, with c > 0 per element
        c = params[..., 0]
        return c * x**3 + x, torch.log(3 * c * x**2 + 1)

    g = torch.Generator().manual_seed(10)
    n = 300
    params = torch.rand(n, 1, generator=g, dtype=torch.float64) + 0.01
    x_true = 8 * torch.rand(n, generator=g, dtype=torch.float64) - 4
    y, _ = cubic(x_true, params)
    lo = torch.full((n,), -5.0, dtype=torch.float64)
    hi = torch.full((n,), 6.0, dtype=torch.float64)

    x, reachable = invert_monotone(cubic, y, params, lo, hi)

    assert reachable.all()
    torch.testing.assert_close(x, x_true, rtol=0, atol=1e-12)

    # Beyond f(lo) or f(hi): unreachable, placed on the nearer end of the bracket
    f_lo, _ = cubic(lo, params)
    f_hi, _ = cubic(hi, params)
    y_out = torch.where(torch.arange(n) % 2 == 0, f_lo - 1, f_hi + 1)
    x_out, reachable_out = invert_monotone(cubic, y_out, params, lo, hi)

    assert not reachable_out.any()
    torch.testing.assert_close(x_out, torch.where(torch.arange(n) % 2 == 0, lo, hi))
