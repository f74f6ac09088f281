r"""Deep sigmoidal transformers (DSF and DDSF), kept finite in the tails, and their inverse.

Both are strictly increasing maps of the real line onto a bounded interval: the last operation
is the logit of a convex combination of sigmoids, squeezed into :math:`(\delta/2, 1 - \delta/2)`,
so :math:`|y| < \log((1 - \delta/2) / (\delta/2)) \approx 14.5`. Their log-space forms carry
every quantity that could underflow (the mixture, its complement, the derivative) as a
logarithm combined by log-sum-exp, so the output and its log-derivative stay accurate in
float32 even when every sigmoid saturates.

Both also have a faster path in probability space, where the mixtures are sums of positive
terms (accurate when tiny) and only the derivative can underflow; the elements where it does
are recomputed in log space. For DSF that path is one autograd node with a hand-written
gradient (:class:`FusedDeepSigmoid`); DDSF's runs on autograd, with sigmoid pairs whose
gradient stays accurate when saturated (:class:`SigmoidPair`).

References:
    | Neural Autoregressive Flows (Huang et al., 2018)
    | https://arxiv.org/abs/1804.00779
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from core.flows.elementwise import MonotoneTransformer, inverse_softplus

#: Floor of the slopes and width of the squeeze that keeps the logit finite.
DELTA = 1e-6
LOG_1M_DELTA = math.log1p(-DELTA)
LOG_HALF_DELTA = math.log(DELTA / 2)
#: Supremum of |y|: the logit of 1 − δ/2.
Y_BOUND = math.log1p(-DELTA / 2) - LOG_HALF_DELTA
#: A sigmoid with |pre-activation| beyond this is saturated to far below float64 resolution of
#: the output, which sets the bracket of the inverse.
SATURATION = 60.0


def squeezed_logit(log_d: Tensor, log_1md: Tensor) -> tuple[Tensor, Tensor]:
    r"""Return the logit of :math:`D_c = (1 - \delta) D + \delta/2` and :math:`\log D_c(1 - D_c)`.

    Takes :math:`\log D` and :math:`\log(1 - D)`; uses
    :math:`1 - D_c = (1 - \delta)(1 - D) + \delta/2`, so neither end loses precision.
    """
    # log D_c − log(δ/2) = softplus(log D + log(1 − δ) − log(δ/2)), and alike for 1 − D_c;
    # the argument never exceeds 14.5, below softplus's linear cut-off.
    shift = LOG_1M_DELTA - LOG_HALF_DELTA
    s = F.softplus(log_d + shift)
    t = F.softplus(log_1md + shift)

    return s - t, s + t + 2 * LOG_HALF_DELTA


def _positive(a: Tensor) -> Tensor:
    # The copy pays for itself: softplus runs about ten times slower on the strided view that a
    # chunk of the conditioner's output is (112 µs instead of 10 µs for 256 × 2 × 16).
    return F.softplus(a.contiguous()) + DELTA


def underflow_floor(dtype: torch.dtype) -> float:
    """Return the derivative sum below which its terms may have lost precision to underflow.

    ``2**24`` times the smallest normal number: above it, the largest of up to a million terms
    is itself a normal number, so the sum keeps the dtype's relative precision.
    """
    return torch.finfo(dtype).tiny * 2.0**24


class FusedDeepSigmoid(torch.autograd.Function):
    r"""``(x, params) -> (y, log dy/dx, underflow)`` of the DSF transformer, one autograd node.

    ``params`` holds :math:`(\tilde a, b, \tilde w)` of ``K`` sigmoids on its last dimension.
    ``underflow`` marks the elements whose derivative sum fell below :func:`underflow_floor`;
    their ``log dy/dx`` is a finite placeholder (too large) and their gradient through it is
    finite, for the caller to replace.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # Slopes a = softplus(ã) + δ, offsets b and mixture weights w = softmax(w̃)
        raw_a, b, raw_w = params.chunk(3, dim=-1)
        raw_a = raw_a.contiguous()  # kept for the backward's σ(ã), on a contiguous copy
        a = _positive(raw_a)
        w = torch.softmax(raw_w, dim=-1)

        # Sigmoids of the pre-activations C = a x + b and of −C, each accurate when tiny
        x = x.unsqueeze(-1)
        c = torch.addcmul(b, a, x)
        s = torch.sigmoid(c)
        s_neg = torch.sigmoid(c.neg_())

        # With the squeeze's 1 − δ in the weights, w' = (1 − δ) w: the squeezed mixtures
        # D_c = Σ w' σ(C) + δ/2 and 1 − D_c = Σ w' σ(−C) + δ/2, and the derivative sum
        # Σ w' a σ(C) σ(−C), from terms the gradient reuses
        ws = w * s
        ws.mul_(1 - DELTA)
        ws_neg = (w * s_neg).mul_(1 - DELTA)
        t = ws * s_neg
        ta = t * a
        d_c, e_c, dd = ws.sum(dim=-1), ws_neg.sum(dim=-1), ta.sum(dim=-1)
        floor = underflow_floor(dd.dtype)
        underflow = dd < floor
        dd = dd.clamp_min_(floor)
        d_c.add_(DELTA / 2)
        e_c.add_(DELTA / 2)

        # y = logit(D_c) and log dy/dx = log Σ w' a σ(C) σ(−C) − log D_c (1 − D_c)
        y = torch.log(d_c / e_c)
        ladj = torch.log(dd / (d_c * e_c))

        ctx.save_for_backward(x, raw_a, a, w, s, s_neg, ws, ws_neg, t, ta, d_c, e_c, dd)
        ctx.mark_non_differentiable(underflow)
        return y, ladj, underflow

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, grad_y: Tensor, grad_ladj: Tensor, _: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        x, raw_a, a, w, s, s_neg, ws, ws_neg, t, ta, d_c, e_c, dd = ctx.saved_tensors

        # Gradients of the loss with respect to D_c, −(1 − D_c) and the derivative sum. Out
        # of place throughout, so that torch.func can batch the backward (vmap'd Jacobians).
        g_d = ((grad_y - grad_ladj) / d_c).unsqueeze(-1)
        g_e_neg = ((grad_y + grad_ladj) / e_c).unsqueeze(-1)
        g_dd = (grad_ladj / dd).unsqueeze(-1)

        # Through the weights, times w (w ∂/∂w = w' ∂/∂w'):
        # g_D w' σ(C_j) + g_E w' σ(−C_j) + g_dd w' a σ(C_j) σ(−C_j)
        w_g_w = torch.addcmul(torch.addcmul(ws * g_d, ws_neg, g_e_neg, value=-1), ta, g_dd)

        # Through the pre-activations: ∂/∂C_j = w' σσ' (g_D − g_E) + g_dd w' a σσ' (σ(−C) − σ(C))
        g_c = torch.addcmul(t * (g_d + g_e_neg), ta * (s_neg - s), g_dd)

        # C = a x + b, a = softplus(ã) + δ, w = softmax(w̃)
        g_x = (g_c * a).sum(dim=-1)
        g_raw_a = torch.addcmul(t * g_dd, g_c, x) * torch.sigmoid(raw_a)
        g_raw_w = w_g_w - w * w_g_w.sum(dim=-1, keepdim=True)

        return g_x, torch.cat([g_raw_a, g_c, g_raw_w], dim=-1)


def _matvec(m: Tensor, v: Tensor) -> Tensor:
    # Batches of small matrix-vector products as a product and a sum: the backward of a
    # batched matmul is a batch of outer products, ten times slower on the CPU for 16 × 16.
    return (m * v.unsqueeze(-2)).sum(dim=-1)


class SigmoidPair(torch.autograd.Function):
    """``c -> (σ(c), σ(−c))``, with the gradient from their product σ(c) σ(−c).

    Autograd's own sigmoid derives σ' from its output as σ (1 − σ), where 1 − σ rounds to
    zero as σ nears 1; the product of the pair stays accurate however far C saturates.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, c: Tensor) -> tuple[Tensor, Tensor]:
        s, s_neg = torch.sigmoid(c), torch.sigmoid(-c)
        ctx.save_for_backward(s, s_neg)
        return s, s_neg

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_s: Tensor, grad_s_neg: Tensor) -> Tensor:
        s, s_neg = ctx.saved_tensors
        return (grad_s - grad_s_neg) * (s * s_neg)


def with_log_space_fallback(
    fast: Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]],
    log_space: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    x: Tensor,
    params: Tensor,
) -> tuple[Tensor, Tensor]:
    """Run ``fast`` and recompute by ``log_space`` the elements it reports as underflowed.

    ``fast(x, params)`` returns ``(y, log dy/dx, underflow)``; the merged result is
    differentiable through both paths.
    """
    y, ladj, underflow = fast(x, params)
    if underflow.any():
        where = underflow.nonzero(as_tuple=True)
        y_log, ladj_log = log_space(x[where], params[where])
        y, ladj = y.index_put(where, y_log), ladj.index_put(where, ladj_log)

    return y, ladj


class DeepSigmoidalTransformer(MonotoneTransformer):
    r"""Deep sigmoidal flow (DSF) transformer with :math:`K` sigmoid units.

    .. math:: y = \operatorname{logit}\big((1 - \delta) \textstyle\sum_j w_j
        \sigma(a_j x + b_j) + \delta/2\big)

    with :math:`a = \operatorname{softplus}(\tilde a) + \delta` and
    :math:`w = \operatorname{softmax}(\tilde w)`. The conditioner emits
    :math:`(\tilde a, b, \tilde w)`, ``3 * sigmoids`` numbers per scalar.

    Arguments:
        sigmoids: Number of sigmoid units :math:`K`.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779
    """

    def __init__(self, sigmoids: int = 16) -> None:
        super().__init__()
        if sigmoids < 1:
            raise ValueError(f"sigmoids must be at least 1, got {sigmoids}")
        self.sigmoids = sigmoids
        self.num_params = 3 * sigmoids

    def identity_params(self) -> Tensor:
        # a = 1, b = 0, w uniform: y = logit((1 − δ) σ(x) + δ/2) ≈ x.
        k = self.sigmoids
        a = inverse_softplus(1 - DELTA).expand(k)
        return torch.cat([a, torch.zeros(2 * k, dtype=torch.float64)])

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # The fused node, then log space for any element whose derivative sum underflowed
        return with_log_space_fallback(FusedDeepSigmoid.apply, self.log_space_forward, x, params)

    def log_space_forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """Compute the same map from log-space operations, exact where every sigmoid saturates."""
        # Slopes, offsets and log mixture weights of the K sigmoids
        a, b, w = params.chunk(3, dim=-1)
        a = _positive(a)
        log_w = torch.log_softmax(w, dim=-1)

        # Log-sigmoids of the pre-activations C = a x + b and of −C
        c = torch.addcmul(b, a, x.unsqueeze(-1))
        ls_pos = F.logsigmoid(c)
        ls_neg = F.logsigmoid(-c)

        # log D and log(1 − D), so that neither end of the mixture underflows
        log_d = torch.logsumexp(log_w + ls_pos, dim=-1)
        log_1md = torch.logsumexp(log_w + ls_neg, dim=-1)
        y, log_dc_1mdc = squeezed_logit(log_d, log_1md)

        # log dy/dx = log Σ w σ(C) σ(−C) a + log(1 − δ) − log D_c (1 − D_c)
        log_dd = torch.logsumexp(log_w + torch.log(a) + ls_pos + ls_neg, dim=-1)
        ladj = log_dd + LOG_1M_DELTA - log_dc_1mdc

        return y, ladj

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # Beyond [lo, hi] every sigmoid is saturated, so the root, if any, lies inside
        a, b, _ = params.chunk(3, dim=-1)
        a = _positive(a)
        lo = ((-SATURATION - b) / a).amin(dim=-1)
        hi = ((SATURATION - b) / a).amax(dim=-1)

        return invert_monotone(self.forward, y, params, lo, hi)

    def extra_repr(self) -> str:
        return f"sigmoids={self.sigmoids}"


class DeepDenseSigmoidalTransformer(MonotoneTransformer):
    r"""Deep dense sigmoidal flow (DDSF) transformer.

    A stack of ``depth`` sub-layers maps :math:`h^{(0)} = x \in \mathbb{R}` to
    :math:`h^{(L)} = y \in \mathbb{R}` through widths ``hidden``. Sub-layer :math:`l` computes

    .. math:: C = a \odot (u h^{(l-1)}) + b, \quad
        h^{(l)} = \operatorname{logit}\big((1 - \delta)\, w \sigma(C) + \delta/2\big)

    where the rows of :math:`u` and :math:`w` are softmaxes. As in the authors' code, the
    logits of :math:`u` and :math:`w` are free parameters plus a conditioner offset per column
    of :math:`u` and per column of :math:`w`, so the conditioner emits :math:`d_{l-1} + 3H`
    numbers per sub-layer: the :math:`u` offsets, :math:`\tilde a`, :math:`b` and the
    :math:`w` offsets. The log-derivative is a product of Jacobians taken in log space.

    Arguments:
        hidden: Number of sigmoid units :math:`H` per sub-layer.
        depth: Number of sub-layers :math:`L \ge 1`.

    References:
        | Neural Autoregressive Flows (Huang et al., 2018)
        | https://arxiv.org/abs/1804.00779
    """

    def __init__(self, hidden: int = 16, depth: int = 2) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden ({hidden}) and depth ({depth}) must be at least 1")
        self.hidden = hidden
        self.depth = depth
        self.widths = [1] + [hidden] * (depth - 1) + [1]
        self.splits = [(d_in, hidden, hidden, hidden) for d_in in self.widths[:-1]]
        self.num_params = sum(sum(s) for s in self.splits)

        # Free logits of u (H × d_in) and w (d_out × H); small noise tells the units apart.
        self.u_logits = nn.ParameterList(
            nn.Parameter(1e-2 * torch.randn(hidden, d_in)) for d_in in self.widths[:-1]
        )
        self.w_logits = nn.ParameterList(
            nn.Parameter(1e-2 * torch.randn(d_out, hidden)) for d_out in self.widths[1:]
        )

    def identity_params(self) -> Tensor:
        # Every sub-layer starts as logit((1 − δ) σ(mean of its inputs) + δ/2).
        a = inverse_softplus(1 - DELTA)
        parts = []
        for d_in, h, _, _ in self.splits:
            parts += [torch.zeros(d_in), a.expand(h), torch.zeros(2 * h)]
        return torch.cat([p.to(torch.float64) for p in parts])

    def _sublayers(self, params: Tensor, log: bool = True):
        """Yield every sub-layer's ``u, a, b, w``; ``u`` and ``w`` as logs unless ``log=False``."""
        normalise = torch.log_softmax if log else torch.softmax
        chunks = params.split([sum(s) for s in self.splits], dim=-1)
        params_per_layer = zip(chunks, self.splits, self.u_logits, self.w_logits, strict=True)
        for chunk, split, u, w in params_per_layer:
            cu, a, b, cw = chunk.split(split, dim=-1)
            u = normalise(u + cu.unsqueeze(-2), dim=-1)
            w = normalise(w + cw.unsqueeze(-2), dim=-1)
            yield u, _positive(a), b, w

    def forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # Probability space, then log space for any element whose derivative underflowed
        return with_log_space_fallback(self.probability_forward, self.log_space_forward, x, params)

    def probability_forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Return ``y``, ``log dy/dx`` and where the derivative may have underflowed.

        The mixtures :math:`D = w \sigma(C)` and :math:`1 - D = w \sigma(-C)` are
        matrix-vector products of positive terms, accurate even when tiny, and the derivative
        is carried forward as :math:`dh/dx` itself, by the chain rule
        :math:`dh_o/dx = (1 - \delta) \sum_j w_{oj} \sigma(C_j) \sigma(-C_j) a_j
        \sum_i u_{ji} dh_i/dx \,/\, D_c (1 - D_c)`. That product is what can underflow (or,
        many sub-layers deep, overflow); such elements are flagged for the log-space version.
        """
        floor = underflow_floor(x.dtype)
        h = x.unsqueeze(-1)
        g = torch.ones_like(h)
        out_of_range = torch.zeros_like(x, dtype=torch.bool)

        for u, a, b, w in self._sublayers(params, log=False):
            # Pre-activations C = a ⊙ (u h) + b and both sigmoids
            c = torch.addcmul(b, a, _matvec(u, h))
            s, s_neg = SigmoidPair.apply(c)

            # The squeezed mixtures and their logit
            d_c = _matvec(w, s) * (1 - DELTA) + DELTA / 2
            e_c = _matvec(w, s_neg) * (1 - DELTA) + DELTA / 2
            h = d_c.log() - e_c.log()

            # dh/dx through u, the sigmoids and w
            q = _matvec(w, s * s_neg * a * _matvec(u, g))
            out_of_range |= (q < floor).any(dim=-1)
            g = q * (1 - DELTA) / (d_c * e_c)

        # Flagged elements get a placeholder log-derivative of 0, so that no 0 · ∞ reaches the
        # gradient of those the caller replaces
        g = g.squeeze(-1)
        out_of_range |= ~torch.isfinite(g)
        ladj = torch.where(out_of_range, 1.0, g).log()
        return h.squeeze(-1), ladj, out_of_range

    def log_space_forward(self, x: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """Compute the same map from log-space operations, exact where every sigmoid saturates."""
        # h^(0) = x with log dh/dx = 0
        h = x.unsqueeze(-1)
        lj = torch.zeros_like(h)

        for log_u, a, b, log_w in self._sublayers(params):
            # Pre-activations C = a ⊙ (u h) + b and their log-sigmoids
            uh = (log_u.exp() @ h.unsqueeze(-1)).squeeze(-1)
            c = torch.addcmul(b, a, uh)
            ls_pos = F.logsigmoid(c)
            ls_neg = F.logsigmoid(-c)

            # Each output unit: log D and log(1 − D) by log-sum-exp over the sigmoids
            log_d = torch.logsumexp(log_w + ls_pos.unsqueeze(-2), dim=-1)
            log_1md = torch.logsumexp(log_w + ls_neg.unsqueeze(-2), dim=-1)
            h, log_dc_1mdc = squeezed_logit(log_d, log_1md)

            # Chain rule in log space: log dC_j/dx, then log dh_o/dx
            log_dcdx = torch.logsumexp(log_u + lj.unsqueeze(-2), dim=-1) + torch.log(a)
            log_dh = ls_pos + ls_neg + log_dcdx
            lj = torch.logsumexp(log_w + log_dh.unsqueeze(-2), dim=-1)
            lj = lj + LOG_1M_DELTA - log_dc_1mdc

        return h.squeeze(-1), lj.squeeze(-1)

    def inverse(self, y: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        # The first sub-layer reads x alone (d_0 = 1, so u = 1); once its sigmoids saturate,
        # every later value is constant, so its slopes and offsets bound the root.
        _, a, b, _ = next(self._sublayers(params))
        lo = ((-SATURATION - b) / a).amin(dim=-1)
        hi = ((SATURATION - b) / a).amax(dim=-1)

        return invert_monotone(self.forward, y, params, lo, hi)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, depth={self.depth}"


def invert_monotone(
    f: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    y: Tensor,
    params: Tensor,
    lo: Tensor,
    hi: Tensor,
    max_iterations: int = 200,
) -> tuple[Tensor, Tensor]:
    """Solve ``f(x, params) = y`` elementwise for a strictly increasing ``f`` on ``[lo, hi]``.

    ``f`` returns the value and the log-derivative; ``params`` holds the parameters of every
    element on its last dimension. Each iteration takes a Newton step when that step lands
    inside the bracket and shrinks at least as fast as halving would, and halves the bracket
    otherwise (the safeguarded Newton–bisection of *Numerical Recipes*' ``rtsafe``), so it
    converges for every reachable target. It starts from ``x = y``, where a flow near the
    identity already is, and works only on the elements not yet converged.

    A target at or beyond ``f(lo)`` or ``f(hi)``, where ``f`` has flattened to its limit, is
    unreachable: it is reported ``False`` in the returned mask and its ``x`` is the nearer
    bracket end.
    """
    with torch.no_grad():
        shape = y.shape
        y = y.reshape(-1)
        params = params.reshape(len(y), -1)
        lo, hi = (t.expand(shape).reshape(-1).clone() for t in (lo, hi))

        # Targets the bracket's ends do not enclose are out of reach
        f_lo, _ = f(lo, params)
        f_hi, _ = f(hi, params)
        reachable = (y > f_lo) & (y < f_hi)
        placeholder = torch.where(y <= f_lo, lo, hi)

        # Safeguarded Newton–bisection on the elements still moving
        tol = 4 * torch.finfo(y.dtype).eps
        x = torch.minimum(torch.maximum(y, lo), hi)
        dx_old = hi - lo
        active = reachable.nonzero().squeeze(-1)
        for _ in range(max_iterations):
            if len(active) == 0:
                break
            xa, la, ha, da = x[active], lo[active], hi[active], dx_old[active]
            fx, log_df = f(xa, params[active])
            r = fx - y[active]
            la = torch.where(r < 0, xa, la)
            ha = torch.where(r > 0, xa, ha)

            step = r * torch.exp(-log_df)
            newton = xa - step
            take = (newton > la) & (newton < ha) & (2 * step.abs() <= da.abs())
            x_new = torch.where(take, newton, 0.5 * (la + ha))
            x_new = torch.where(r == 0, xa, x_new)

            da = x_new - xa
            x[active], lo[active], hi[active], dx_old[active] = x_new, la, ha, da
            moving = da.abs() > tol * (1 + x_new.abs())
            active = active[moving]

        x = torch.where(reachable, x, placeholder)
        return x.reshape(shape), reachable.reshape(shape)
