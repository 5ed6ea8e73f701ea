"""The hierarchical policy's per-step part in numba: cross-asset attention, risk LSTM,
fusion and the ordered heads, deterministic (mode of each head), for one account.

Why a second implementation: a year of minute bars is 525,600 sequential decisions,
and the torch forward of these small layers at batch 1 costs about 0.9 ms, almost all
of it per-op overhead (8 minutes a year). The same maths as plain loops costs tens of
microseconds. The market transformer does not depend on the account, so it stays in
torch and runs batched over time (backtest.fast).

The kernels read the module's weights only through ``rl.modules.twin``'s declared
layout: ``export_twin(module)`` checks the module against it and returns a
``TwinWeights`` of named groups (``twin.cross``, ``twin.lstm``, ``twin.fusion``,
``twin.heads``) of float64 arrays in the torch layout (Linear: (out, in)) and integer
settings (head counts, column offsets of the heads' input blocks), read here by
field name. ``tests/unit/backtest/test_fast_policy_parity.py`` checks every head's
distribution inputs and action against the torch module's forward_inference, and
``tests/unit/backtest/test_fast.py`` whole backtests.
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
    """CrossAssetAttention: (A, d) encodings and (A, P) portfolio -> (A, d) into x_out;
    ``w`` is the twin's ``cross`` group (rl.modules.twin)."""
    n_heads = w.n_heads
    n_assets, d = encoded.shape
    dh = d // n_heads
    proj = np.empty(d)
    h = np.empty((n_assets, d))
    qkv = np.empty((n_assets, 3 * d))
    for a in range(n_assets):
        _linear(w.portfolio_w, w.portfolio_b, portfolio[a], proj)
        for i in range(d):
            x_out[a, i] = encoded[a, i] + proj[i] + w.asset[a, i]
        _layer_norm(x_out[a], w.norm1_w, w.norm1_b, h[a])
        _linear(w.qkv_w, w.qkv_b, h[a], qkv[a])
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
    hidden = np.empty(w.ff1_w.shape[0])
    for a in range(n_assets):
        _linear(w.out_w, w.out_b, attended[a], proj)
        for i in range(d):
            x_out[a, i] += proj[i]
        _layer_norm(x_out[a], w.norm2_w, w.norm2_b, h[a])
        _linear(w.ff1_w, w.ff1_b, h[a], hidden)
        for i in range(hidden.shape[0]):
            hidden[i] = _gelu(hidden[i])
        _linear(w.ff2_w, w.ff2_b, hidden, proj)
        for i in range(d):
            x_out[a, i] += proj[i]


@njit(cache=True, fastmath=_FAST)
def risk_lstm(risk, w, out):
    """RiskLSTM: an LSTM over the (T, R) risk history, attention-pooled into out (H,);
    ``w`` is the twin's ``lstm`` group (rl.modules.twin)."""
    w_ih, w_hh, b_ih, b_hh, score_w, score_b = w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.score_w, w.score_b
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
def decide(encoded, risk, portfolio, twin, trade, size, limits, execution, inputs):
    """One deterministic decision from one state: writes trade (A,), size (A,), limits (A, 2),
    execution (A, 2), and ``inputs``, the action distribution's inputs (ActionLayout.input_dim,)
    in rl.distribution's order (execution, risk, size, trade), as forward_inference returns
    them. ``twin`` is rl.modules.twin.TwinWeights."""
    fw, fb = twin.fusion.w, twin.fusion.b
    hw = twin.heads
    n_assets, d = encoded.shape
    assets = np.empty((n_assets, d))
    cross_attention(encoded, portfolio, twin.cross, assets)
    pooled = np.empty(twin.lstm.w_hh.shape[1])
    risk_lstm(risk, twin.lstm, pooled)
    fused_in = np.empty(fw.shape[1])
    for a in range(n_assets):
        fused_in[a * d : (a + 1) * d] = assets[a]
    fused_in[n_assets * d :] = pooled
    context = np.empty(fw.shape[0])
    _linear(fw, fb, fused_in, context)
    for i in range(context.shape[0]):
        context[i] = _gelu(context[i])
    n_ctx = context.shape[0]  # every head's first input block (rl.modules.twin.HEAD_INPUTS)
    n_later = hw.later_b2.shape[0]
    n_exec = n_later - 4  # style and horizon logits
    at_risk = n_assets * n_exec  # offsets of the distribution inputs' parts (ActionLayout.sizes)
    at_size = at_risk + 4 * n_assets
    at_trade = at_size + 2 * n_assets
    # each head's first layer reads [context, own encoding, choices]: the context block is
    # the same for every asset, and the choices are one-hots and scalars, so compute the
    # block once and add single columns instead of multiplying whole zero-padded inputs
    w1 = hw.trade_w1
    pre = np.empty(w1.shape[0])
    shared = np.empty(w1.shape[0])
    hidden = np.empty(w1.shape[0])
    raw = np.empty(max(3, n_later))
    _linear(w1[:, :n_ctx], hw.trade_b1, context, shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(w1, n_ctx, assets[a], pre)
        _head_out(pre, hidden, hw.trade_w2, hw.trade_b2, raw)
        trade[a] = _argmax(raw, 0, 3)
        for k in range(3):
            inputs[at_trade + 3 * a + k] = raw[k]
    w1 = hw.size_w1
    _linear(w1[:, :n_ctx], hw.size_b1, context, shared)
    for j in range(n_assets):
        _add_column(w1, hw.size_book + 3 * j + trade[j], 1.0, shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(w1, n_ctx, assets[a], pre)
        _add_column(w1, hw.size_own_trade + trade[a], 1.0, pre)
        _head_out(pre, hidden, hw.size_w2, hw.size_b2, raw)
        size[a] = _beta_mean(raw[0], raw[1])
        for k in range(2):
            inputs[at_size + 2 * a + k] = raw[k]
    w1 = hw.later_w1
    _linear(w1[:, :n_ctx], hw.later_b1, context, shared)
    for j in range(n_assets):
        _add_column(w1, hw.later_book + j, (trade[j] - 1.0) * size[j], shared)
    for a in range(n_assets):
        pre[:] = shared
        _add_columns(w1, n_ctx, assets[a], pre)
        _add_column(w1, hw.later_own_trade + trade[a], 1.0, pre)
        _add_column(w1, hw.later_own_size, size[a], pre)
        _head_out(pre, hidden, hw.later_w2, hw.later_b2, raw)
        limits[a, 0] = _beta_mean(raw[0], raw[1])
        limits[a, 1] = _beta_mean(raw[2], raw[3])
        execution[a, 0] = _argmax(raw, 4, 4 + hw.n_styles)
        execution[a, 1] = _argmax(raw, 4 + hw.n_styles, n_later)
        for k in range(4):
            inputs[at_risk + 4 * a + k] = raw[k]
        for k in range(n_exec):
            inputs[n_exec * a + k] = raw[4 + k]


@njit(cache=True, inline="always", fastmath=_FAST)
def _head_out(pre, hidden, w2, b2, out):
    """tanh, then the head's output layer (into out[:len(b2)])."""
    for i in range(pre.shape[0]):
        hidden[i] = math.tanh(pre[i])
    _linear(w2, b2, hidden, out[: b2.shape[0]])
