"""The observation, built in one place for training, backtests, serving and the LLM.

- market    (window, assets, features) float32: the feature rows of bars b-window+1..b
- risk      (risk_window, N_RISK) float32: the last risk vectors, oldest first
- portfolio (assets, N_PORTFOLIO [+ 2]) float32: per-asset position state (and, with
  ShieldConfig.observe, the risk shield's SHIELD_FEATURES)

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
    SHIELD_SCALE,
    SL_PX,
    TP_PX,
)
from envs.core.params import P_INITIAL, P_MAX_CONCENTRATION, P_MAX_LEVERAGE
from envs.core.shield import asset_room

RISK_FEATURES = ("log_return", "drawdown", "leverage_used", "margin_ratio", "day_pnl", "ew_vol")
PORTFOLIO_FEATURES = (
    "exposure",
    "unrealized_return",
    "log_bars_held",
    "working_order",
    "stop_loss_atr",
    "take_profit_atr",
)
SHIELD_FEATURES = ("shield_scale", "shield_room")
"""With ShieldConfig.observe, per asset after PORTFOLIO_FEATURES: the share of its last
target the shield left (1 before any decision), and the room its per-asset rules leave
now (envs.core.shield.asset_room) as a fraction of the asset's budget, at most 1."""
N_RISK = len(RISK_FEATURES)
N_PORTFOLIO = len(PORTFOLIO_FEATURES)


def portfolio_features(config) -> tuple[str, ...]:
    """The portfolio part's features per asset under an EnvConfig."""
    return PORTFOLIO_FEATURES + (SHIELD_FEATURES if config.shield.observe else ())


@njit(cache=True, inline="always")
def copy_run(src, start, dst):
    """dst[:] = src[start:start + dst.size] for 1-D arrays, as one flat loop that compiles
    to wide vector moves (and converts float64 to float32 on the way where needed)."""
    run = src[start : start + dst.size]
    for i in range(dst.size):
        dst[i] = run[i]


@njit(cache=True, inline="always")
def record_risk(acc, hist, params, log_return, gross):
    """Append the risk vector after a step (gross: notional at the last marks) to the ring
    buffer `hist`; the ring saves shifting the history every step."""
    equity = max(acc[EQUITY], params[P_INITIAL] * 1e-9)
    head = int(acc[HIST_HEAD])
    row = hist[head]
    row[0] = log_return
    row[1] = 1.0 - equity / acc[PEAK]
    row[2] = gross / equity / params[P_MAX_LEVERAGE]
    row[3] = acc[MAINT] / equity
    row[4] = equity / acc[DAY_START] - 1.0 if acc[DAY_START] > 0.0 else 0.0
    row[5] = math.sqrt(acc[EWVAR])
    acc[HIST_HEAD] = (head + 1) % hist.shape[0]


@njit(cache=True, inline="always")
def observe_portfolio(acc, bk, mkt, params, b, out):
    """Per-asset position state at bar b, scale-free (see PORTFOLIO_FEATURES)."""
    equity = max(acc[EQUITY], params[P_INITIAL] * 1e-9)
    for a in range(bk.shape[0]):
        pos = bk[a, QTY]
        mark = mkt[b, a, M_MARK]
        close = mkt[b, a, M_CLOSE]
        atr = mkt[b, a, M_ATR]
        row = out[a]
        row[0] = pos * mark / equity
        row[1] = 0.0 if pos == 0.0 else (mark / bk[a, ENTRY] - 1.0) * (1.0 if pos > 0.0 else -1.0)
        row[2] = 0.0 if pos == 0.0 else math.log1p(b - bk[a, OPENED_AT]) / 10.0
        row[3] = bk[a, REMAIN] * close / equity
        row[4] = abs(close - bk[a, SL_PX]) / atr if bk[a, SL_PX] > 0.0 else 0.0
        row[5] = abs(bk[a, TP_PX] - close) / atr if bk[a, TP_PX] > 0.0 else 0.0
        if row.shape[0] > N_PORTFOLIO:
            budget = params[P_MAX_LEVERAGE] * params[P_MAX_CONCENTRATION]
            row[6] = bk[a, SHIELD_SCALE]
            row[7] = min(asset_room(acc, mkt, params, b, a) / budget, 1.0)


@njit(cache=True, inline="always")
def observe_batch(
    acct, book, hist, mkt, feats, params, t, mask, obs_market, obs_risk, obs_portfolio
):
    """Write the observation of every env with mask[n] at its bar t[n] (after `record_risk`).

    It reads the state only, so the kernels run it as a pass of its own after simulating
    every env: the copies then stream through memory back to back instead of competing
    with the simulation for the caches. The arrays are viewed flat once, up front (the
    C-ordered `feats` rows of bars b-window+1..b are one contiguous run; so is each
    env's observation), so each copy is one flat loop.
    """
    n_envs, window = obs_market.shape[0], obs_market.shape[1]
    row = feats.shape[1] * feats.shape[2]
    width = hist.shape[2]
    feats_flat = feats.reshape(-1)
    rings = hist.reshape(n_envs, -1)
    market = obs_market.reshape(n_envs, -1)
    risk = obs_risk.reshape(n_envs, -1)
    for n in range(n_envs):
        if not mask[n]:
            continue
        b = t[n]
        copy_run(feats_flat, (b - window + 1) * row, market[n])
        # the ring oldest first: rows head..end, then 0..head
        split = int(acct[n, HIST_HEAD]) * width
        older = rings.shape[1] - split
        copy_run(rings[n], split, risk[n, :older])
        copy_run(rings[n], 0, risk[n, older:])
        observe_portfolio(acct[n], book[n], mkt, params, b, obs_portfolio[n])
