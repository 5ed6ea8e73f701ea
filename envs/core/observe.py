"""The observation, built in one place for training, backtests, serving and the LLM.

- market    (window, assets, features) float32: the feature rows of bars b-window+1..b
- risk      (risk_window, N_RISK) float32: the last risk vectors, oldest first
- portfolio (assets, N_PORTFOLIO) float32: per-asset position state

Everything is scale-free (fractions of equity, ATR multiples, returns), so a
policy trained on one account size or price level transfers to another.
"""

from __future__ import annotations

import math

from numba import njit

from envs.core.layout import (
    DAY_START,
    ENTRY,
    EQUITY,
    EWVAR,
    HIST_HEAD,
    M_ATR,
    M_CLOSE,
    M_MARK,
    MAINT,
    OPENED_AT,
    PEAK,
    QTY,
    REMAIN,
    SL_PX,
    TP_PX,
)
from envs.core.params import P_INITIAL, P_MAX_LEVERAGE

RISK_FEATURES = ("log_return", "drawdown", "leverage_used", "margin_ratio", "day_pnl", "ew_vol")
PORTFOLIO_FEATURES = (
    "exposure",
    "unrealized_return",
    "log_bars_held",
    "working_order",
    "stop_loss_atr",
    "take_profit_atr",
)
N_RISK = len(RISK_FEATURES)
N_PORTFOLIO = len(PORTFOLIO_FEATURES)


@njit(cache=True, inline="always")
def observe(
    acc, bk, hist, mkt, feats, params, b, log_return, gross, out_market, out_risk, out_portfolio
):
    """Write the observation after bar b (gross: notional at bar b's marks) into the outputs."""
    window, n_assets, n_feats = out_market.shape
    first = b - window + 1
    for w in range(window):
        for a in range(n_assets):
            for f in range(n_feats):
                out_market[w, a, f] = feats[first + w, a, f]
    equity = max(acc[EQUITY], params[P_INITIAL] * 1e-9)
    length = hist.shape[0]
    head = int(acc[HIST_HEAD])
    row = hist[head]
    row[0] = log_return
    row[1] = 1.0 - equity / acc[PEAK]
    row[2] = gross / equity / params[P_MAX_LEVERAGE]
    row[3] = acc[MAINT] / equity
    row[4] = equity / acc[DAY_START] - 1.0 if acc[DAY_START] > 0.0 else 0.0
    row[5] = math.sqrt(acc[EWVAR])
    head = (head + 1) % length
    acc[HIST_HEAD] = head
    for i in range(length):  # oldest first: the ring buffer saves shifting the history
        src = hist[(head + i) % length]
        for k in range(hist.shape[1]):
            out_risk[i, k] = src[k]
    for a in range(bk.shape[0]):
        pos = bk[a, QTY]
        mark = mkt[b, a, M_MARK]
        close = mkt[b, a, M_CLOSE]
        atr = mkt[b, a, M_ATR]
        row = out_portfolio[a]
        row[0] = pos * mark / equity
        row[1] = 0.0 if pos == 0.0 else (mark / bk[a, ENTRY] - 1.0) * (1.0 if pos > 0.0 else -1.0)
        row[2] = 0.0 if pos == 0.0 else math.log1p(b - bk[a, OPENED_AT]) / 10.0
        row[3] = bk[a, REMAIN] * close / equity
        row[4] = abs(close - bk[a, SL_PX]) / atr if bk[a, SL_PX] > 0.0 else 0.0
        row[5] = abs(bk[a, TP_PX] - close) / atr if bk[a, TP_PX] > 0.0 else 0.0
