"""Independent references for the flow tests: the sigmoidal transformers in mpmath.

The formulas are written from REFERENCE.md ("Neural autoregressive flows") in plain
arbitrary-precision arithmetic: the naive sums of sigmoids and the chain rule, no log-space
tricks, so they share nothing with the log-sum-exp code under test. At 50 significant digits and
with mpmath's unbounded exponent range they stay exact where every float64 sigmoid saturates
(an e^−1000 is just a number here).
"""

import mpmath
import torch

mpmath.mp.dps = 50

#: δ exactly as the float64 constant the code uses, so both sides squeeze by the same amount.
DELTA = mpmath.mpf(1e-6)


def _sigmoid(c):
    return 1 / (1 + mpmath.exp(-c))


def _softplus(v):
    return mpmath.log1p(mpmath.exp(mpmath.mpf(v)))


def _softmax(logits):
    e = [mpmath.exp(mpmath.mpf(v)) for v in logits]
    total = sum(e)
    return [v / total for v in e]


def _squeeze(d, one_minus_d, dd):
    # y = logit((1 − δ) D + δ/2) and dy = (1 − δ) dD / (D_c (1 − D_c)), with 1 − D_c formed from
    # 1 − D directly so that it never cancels
    dc = (1 - DELTA) * d + DELTA / 2
    one_minus_dc = (1 - DELTA) * one_minus_d + DELTA / 2
    return mpmath.log(dc) - mpmath.log(one_minus_dc), (1 - DELTA) * dd / (dc * one_minus_dc)


def dsf(x: float, params: list[float]):
    """Return ``(y, log dy/dx)`` of the DSF with raw parameters ``(ã, b, w̃)``."""
    k = len(params) // 3
    a = [_softplus(v) + DELTA for v in params[:k]]
    b = [mpmath.mpf(v) for v in params[k : 2 * k]]
    w = _softmax(params[2 * k :])

    c = [a[j] * mpmath.mpf(x) + b[j] for j in range(k)]
    d = sum(w[j] * _sigmoid(c[j]) for j in range(k))
    one_minus_d = sum(w[j] * _sigmoid(-c[j]) for j in range(k))
    dd = sum(w[j] * a[j] * _sigmoid(c[j]) * _sigmoid(-c[j]) for j in range(k))

    y, dy = _squeeze(d, one_minus_d, dd)
    return y, mpmath.log(dy)


def ddsf(x: float, params: list[float], u_logits: list, w_logits: list):
    """Return ``(y, log dy/dx)`` of the DDSF: conditioner numbers ``params``, free logits.

    Per sub-layer the conditioner emits the offsets of u's columns, ã, b and the offsets of w's
    columns; ``u_logits[l]`` is ``H × d_in`` and ``w_logits[l]`` is ``d_out × H`` (nested lists).
    """
    h, dh = [mpmath.mpf(x)], [mpmath.mpf(1)]
    start = 0
    for u_free, w_free in zip(u_logits, w_logits, strict=True):
        width, d_in = len(u_free), len(u_free[0])
        chunk = params[start : start + d_in + 3 * width]
        start += d_in + 3 * width
        cu, cw = chunk[:d_in], chunk[d_in + 2 * width :]
        a = [_softplus(v) + DELTA for v in chunk[d_in : d_in + width]]
        b = [mpmath.mpf(v) for v in chunk[d_in + width : d_in + 2 * width]]
        u = [_softmax([row[i] + cu[i] for i in range(d_in)]) for row in u_free]
        w = [_softmax([row[j] + cw[j] for j in range(width)]) for row in w_free]

        # C = a ⊙ (u h) + b and its derivative by the chain rule
        c = [a[j] * sum(u[j][i] * h[i] for i in range(d_in)) + b[j] for j in range(width)]
        dc = [a[j] * sum(u[j][i] * dh[i] for i in range(d_in)) for j in range(width)]
        s_pos = [_sigmoid(v) for v in c]
        s_neg = [_sigmoid(-v) for v in c]

        h_next, dh_next = [], []
        for row in w:
            d = sum(row[j] * s_pos[j] for j in range(width))
            one_minus_d = sum(row[j] * s_neg[j] for j in range(width))
            dd = sum(row[j] * s_pos[j] * s_neg[j] * dc[j] for j in range(width))
            y, dy = _squeeze(d, one_minus_d, dd)
            h_next.append(y)
            dh_next.append(dy)
        h, dh = h_next, dh_next

    return h[0], mpmath.log(dh[0])


def transformer_reference(transformer, x: torch.Tensor, params: torch.Tensor):
    """Return the mpmath ``(y, log dy/dx)`` of a DSF or DDSF module as float64 tensors.

    ``x`` is ``(n,)`` and ``params`` is ``(n, num_params)``; the values are taken exactly as
    stored (float32 inputs are widened without rounding).
    """
    name = type(transformer).__name__
    xs = x.detach().double().tolist()
    ps = params.detach().double().tolist()
    if name == "DeepSigmoidalTransformer":
        pairs = [dsf(xi, pi) for xi, pi in zip(xs, ps, strict=True)]
    elif name == "DeepDenseSigmoidalTransformer":
        u = [p.detach().double().tolist() for p in transformer.u_logits]
        w = [p.detach().double().tolist() for p in transformer.w_logits]
        pairs = [ddsf(xi, pi, u, w) for xi, pi in zip(xs, ps, strict=True)]
    else:
        raise TypeError(f"no mpmath reference for {name}")
    y = torch.tensor([float(p[0]) for p in pairs], dtype=torch.float64)
    ladj = torch.tensor([float(p[1]) for p in pairs], dtype=torch.float64)
    return y, ladj
