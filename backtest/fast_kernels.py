"""The hierarchical policy's per-step part in numba: cross-asset attention, risk LSTM,
fusion and the ordered heads, deterministic (mode of each head), for one account.

Why a second implementation: a year of minute bars is 525,600 sequential decisions,
and the torch forward of these small layers at batch 1 costs about 0.9 ms, almost all
of it per-op overhead (8 minutes a year). The same maths as plain loops costs tens of
microseconds. The market transformer does not depend on the account, so it stays in
torch and runs batched over time (backtest.fast). ``tests/unit/backtest/test_fast.py``
checks these kernels against the torch module's forward_inference on many states.

Weights arrive as float64 arrays in the torch layout (Linear: (out, in)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-4
"""rl.distribution.EPS: Beta actions are kept in [EPS, 1 - EPS]."""

_FAST = {"reassoc", "contract", "nsz", "arcp"}
"""Let dot products vectorise (reassociation); no assumptions about NaN or inf."""


@njit(cache=True, inline="always", fastmath=_FAST)
def _linear(w, bias, x, out):
    for o in range(w.shape[0]):
        acc = bias[o]
        for i in range(w.shape[1]):
            acc += w[o, i] * x[i]
        out[o] = acc


@njit(cache=True, inline="always", fastmath=_FAST)
def _add_columns(w, lo, x, out):
    """out += w[:, lo:lo + len(x)] @ x: one block of a Linear whose input is a concatenation."""
    for o in range(w.shape[0]):
        acc = 0.0
        for i in range(x.shape[0]):
            acc += w[o, lo + i] * x[i]
        out[o] += acc


@njit(cache=True, inline="always")
def _add_column(w, col, scale, out):
    """out += scale * w[:, col]: a one-hot or scalar input of a Linear."""
    for o in range(w.shape[0]):
        out[o] += scale * w[o, col]


@njit(cache=True, inline="always")
def _gelu(x):
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@njit(cache=True, inline="always")
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def _softplus(x):
    return x if x > 20.0 else math.log1p(math.exp(x))


@njit(cache=True, inline="always")
def _layer_norm(x, weight, bias, out):
    n = x.shape[0]
    mean = 0.0
    for i in range(n):
        mean += x[i]
    mean /= n
    var = 0.0
    for i in range(n):
        var += (x[i] - mean) ** 2
    scale = 1.0 / math.sqrt(var / n + 1e-5)
    for i in range(n):
        out[i] = (x[i] - mean) * scale * weight[i] + bias[i]


@njit(cache=True, inline="always")
def _argmax(x, lo, hi):
    best = lo
    for i in range(lo + 1, hi):
        if x[i] > x[best]:
            best = i
    return best - lo


@njit(cache=True, inline="always")
def _beta_mean(raw0, raw1):
    c0 = 1.0 + _softplus(raw0)
    c1 = 1.0 + _softplus(raw1)
    return min(max(c0 / (c0 + c1), EPS), 1.0 - EPS)


@njit(cache=True, fastmath=_FAST)
def cross_attention(encoded, portfolio, w, x_out):
    """CrossAssetAttention: (A, d) encodings and (A, P) portfolio -> (A, d) into x_out."""
    (wp, bp, asset, ln1w, ln1b, in_w, in_b, out_w, out_b, ln2w, ln2b, f1w, f1b, f2w, f2b,
     n_heads) = w
    n_assets, d = encoded.shape
    dh = d // n_heads
    proj = np.empty(d)
    h = np.empty((n_assets, d))
    qkv = np.empty((n_assets, 3 * d))
    for a in range(n_assets):
        _linear(wp, bp, portfolio[a], proj)
        for i in range(d):
            x_out[a, i] = encoded[a, i] + proj[i] + asset[a, i]
        _layer_norm(x_out[a], ln1w, ln1b, h[a])
        _linear(in_w, in_b, h[a], qkv[a])
    attended = np.zeros((n_assets, d))
    scores = np.empty(n_assets)
    scale = 1.0 / math.sqrt(dh)
    for head in range(n_heads):
        lo = head * dh
        for a in range(n_assets):
            top = -np.inf
            for j in range(n_assets):
                s = 0.0
                for i in range(dh):
                    s += qkv[a, lo + i] * qkv[j, d + lo + i]
                scores[j] = s * scale
                top = max(top, scores[j])
            total = 0.0
            for j in range(n_assets):
                scores[j] = math.exp(scores[j] - top)
                total += scores[j]
            for j in range(n_assets):
                p = scores[j] / total
                for i in range(dh):
                    attended[a, lo + i] += p * qkv[j, 2 * d + lo + i]
    hidden = np.empty(f1w.shape[0])
    for a in range(n_assets):
        _linear(out_w, out_b, attended[a], proj)
        for i in range(d):
            x_out[a, i] += proj[i]
        _layer_norm(x_out[a], ln2w, ln2b, h[a])
        _linear(f1w, f1b, h[a], hidden)
        for i in range(hidden.shape[0]):
            hidden[i] = _gelu(hidden[i])
        _linear(f2w, f2b, hidden, proj)
        for i in range(d):
            x_out[a, i] += proj[i]


@njit(cache=True, fastmath=_FAST)
def risk_lstm(risk, w, out):
    """RiskLSTM: an LSTM over the (T, R) risk history, attention-pooled into out (H,)."""
    w_ih, w_hh, b_ih, b_hh, score_w, score_b = w
    steps = risk.shape[0]
    hidden = w_hh.shape[1]
    h = np.zeros(hidden)
    c = np.zeros(hidden)
    gates = np.empty(4 * hidden)
    outs = np.empty((steps, hidden))
    for t in range(steps):
        for g in range(4 * hidden):
            acc = b_ih[g] + b_hh[g]
            for i in range(risk.shape[1]):
                acc += w_ih[g, i] * risk[t, i]
            for i in range(hidden):
                acc += w_hh[g, i] * h[i]
            gates[g] = acc
        for i in range(hidden):  # torch's gate order: input, forget, cell, output
            gi = _sigmoid(gates[i])
            gf = _sigmoid(gates[hidden + i])
            gg = math.tanh(gates[2 * hidden + i])
            go = _sigmoid(gates[3 * hidden + i])
            c[i] = gf * c[i] + gi * gg
            h[i] = go * math.tanh(c[i])
            outs[t, i] = h[i]
    scores = np.empty(steps)
    top = -np.inf
    for t in range(steps):
        s = score_b[0]
        for i in range(hidden):
            s += score_w[0, i] * outs[t, i]
        scores[t] = s
        top = max(top, s)
    total = 0.0
    for t in range(steps):
        scores[t] = math.exp(scores[t] - top)
        total += scores[t]
    out[:] = 0.0
    for t in range(steps):
        for i in range(hidden):
            out[i] += scores[t] / total * outs[t, i]


@njit(cache=True, fastmath=_FAST)
def decide(encoded, risk, portfolio, w_cross, w_lstm, w_fusion, w_heads, n_styles,
           trade, size, limits, execution):
    """One deterministic decision: writes trade (A,), size (A,), limits (A, 2), execution (A, 2)."""
    fw, fb = w_fusion
    tw1, tb1, tw2, tb2, sw1, sb1, sw2, sb2, lw1, lb1, lw2, lb2 = w_heads
    n_assets, d = encoded.shape
    assets = np.empty((n_assets, d))
    cross_attention(encoded, portfolio, w_cross, assets)
    pooled = np.empty(w_lstm[1].shape[1])
    risk_lstm(risk, w_lstm, pooled)
    fused_in = np.empty(fw.shape[1])
    for a in range(n_assets):
        fused_in[a * d : (a + 1) * d] = assets[a]
    fused_in[n_assets * d :] = pooled
    context = np.empty(fw.shape[0])
    _linear(fw, fb, fused_in, context)
    for i in range(context.shape[0]):
        context[i] = _gelu(context[i])
    n_ctx = context.shape[0]
    base = n_ctx + d
    # each head's first layer reads [context, own encoding, choices]: the context block is
    # the same for every asset, and the choices are one-hots and scalars, so compute the
    # block once and add single columns instead of multiplying whole zero-padded inputs
    pre = np.empty(tw1.shape[0])
    shared = np.empty(tw1.shape[0])
    hidden = np.empty(tw1.shape[0])
    raw = np.empty(max(3, lw2.shape[0]))
    _linear(tw1[:, :n_ctx], tb1, context, shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(tw1, n_ctx, assets[a], pre)
        _head_out(pre, hidden, tw2, tb2, raw)
        trade[a] = _argmax(raw, 0, 3)
    _linear(sw1[:, :n_ctx], sb1, context, shared)
    for j in range(n_assets):
        _add_column(sw1, base + 3 + 3 * j + trade[j], 1.0, shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(sw1, n_ctx, assets[a], pre)
        _add_column(sw1, base + trade[a], 1.0, pre)
        _head_out(pre, hidden, sw2, sb2, raw)
        size[a] = _beta_mean(raw[0], raw[1])
    _linear(lw1[:, :n_ctx], lb1, context, shared)
    for j in range(n_assets):
        _add_column(lw1, base + 4 + j, (trade[j] - 1.0) * size[j], shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(lw1, n_ctx, assets[a], pre)
        _add_column(lw1, base + trade[a], 1.0, pre)
        _add_column(lw1, base + 3, size[a], pre)
        _head_out(pre, hidden, lw2, lb2, raw)
        limits[a, 0] = _beta_mean(raw[0], raw[1])
        limits[a, 1] = _beta_mean(raw[2], raw[3])
        execution[a, 0] = _argmax(raw, 4, 4 + n_styles)
        execution[a, 1] = _argmax(raw, 4 + n_styles, lw2.shape[0])


@njit(cache=True, inline="always", fastmath=_FAST)
def _head_out(pre, hidden, w2, b2, out):
    """tanh, then the head's output layer (into out[:len(b2)])."""
    for i in range(pre.shape[0]):
        hidden[i] = math.tanh(pre[i])
    _linear(w2, b2, hidden, out[: b2.shape[0]])
