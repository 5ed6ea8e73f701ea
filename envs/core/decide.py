"""From an action to working orders: the documented action mapping and the risk caps.

The mapping, per asset a, using only data up to the decision bar t:

- direction = trade[a] - 1 (0 short, 1 flat, 2 long -> -1, 0, +1)
- target notional = direction * size[a] * max_concentration * max_leverage * equity;
  if the targets' gross exceeds max_leverage * equity they are scaled down together
- each asset's target notional is capped where its margin table allows less than the
  account's leverage (MarginConfig.position_cap: the exchange's position limit)
- with the risk shield on, the target notionals then pass through it (envs.core.shield:
  volatility targeting, regimes, drawdown schedule, correlation and gross caps, VaR/ES
  and margin of the post-trade book), which only shrinks them
- after a daily loss beyond the limit, orders may only reduce a position
- target quantity = target notional / close[t]; the order is target - position
- orders under rebalance_threshold * equity are not sent (fees for nothing), nor are
  changes of a position on the same side under rebalance_band * the asset's exposure
  budget (a no-trade band: holding is the easy action, not an exact repeat of a
  continuous size), unless skipping them would leave the book above a cap; closing to
  flat is never skipped
- stop-loss / take-profit (unless execution.stops is off) at close[t] -/+ distance
  (long) or +/- (short); with trailing or break-even stops on, a position kept on its
  side keeps its stop-loss where that is tighter (a decision never loosens it), with
  distance = ATR[t] * (lo + risk[a, k] * (hi - lo)) for k = 0 (stop) and 1 (take-profit)
- style = execution[a, 0], horizon = execution[a, 1] + 1 bars
"""

from __future__ import annotations

import math

from numba import njit

from envs.core.accounting import half_spread
from envs.core.layout import (
    BARS_LEFT,
    CLIP,
    DAY_START,
    EQUITY,
    LIMIT_PX,
    M_ATR,
    M_CLOSE,
    QTY,
    REMAIN,
    SL_PX,
    STYLE,
    TP_PX,
)
from envs.core.params import (
    P_ASSET_CAP,
    P_BREAK_EVEN_ATR,
    P_DAILY_LOSS,
    P_MAX_CONCENTRATION,
    P_MAX_LEVERAGE,
    P_REBALANCE,
    P_REBALANCE_BAND,
    P_SHIELD,
    P_SL_HI,
    P_SL_LO,
    P_STOPS,
    P_TP_HI,
    P_TP_LO,
    P_TRAIL_ATR,
)
from envs.core.shield import shield_notional


@njit(cache=True, inline="always")
def target_quantities(acct, book, mkt, params, floors, rates, allowances, t, trade, size, out,
                      scratch):
    """Capped target quantity per asset (written to `out`) for a decision at bar t; with
    the risk shield on, the targets pass through it first (``scratch``: 2 x assets)."""
    equity = acct[EQUITY]
    budget = params[P_MAX_LEVERAGE] * equity
    cap = params[P_MAX_CONCENTRATION] * budget
    gross = 0.0
    for a in range(out.shape[0]):
        out[a] = (trade[a] - 1) * size[a] * cap
        gross += abs(out[a])
    scale = budget / gross if gross > budget else 1.0
    for a in range(out.shape[0]):
        out[a] *= scale
        if P_ASSET_CAP + a < params.shape[0] and abs(out[a]) > params[P_ASSET_CAP + a]:
            out[a] = math.copysign(params[P_ASSET_CAP + a], out[a])
    if params[P_SHIELD] != 0.0:
        shield_notional(acct, book, mkt, params, floors, rates, allowances, t, out, scratch)
    reduce_only = equity < acct[DAY_START] * (1.0 - params[P_DAILY_LOSS])
    for a in range(out.shape[0]):
        target = out[a] / mkt[t, a, M_CLOSE]
        pos = book[a, QTY]
        if reduce_only:
            if pos == 0.0 or (pos > 0.0) != (target > 0.0):
                target = 0.0
            elif abs(target) > abs(pos):
                target = pos
        out[a] = target


@njit(cache=True, inline="always")
def _skip_small(book, mkt, params, t, equity, targets, skip):
    """Mark orders too small to send; un-mark them if skipping would break a cap."""
    budget = params[P_MAX_LEVERAGE] * equity
    cap = params[P_MAX_CONCENTRATION] * budget
    gross = 0.0
    over = False
    for a in range(targets.shape[0]):
        pos = book[a, QTY]
        close = mkt[t, a, M_CLOSE]
        delta = targets[a] - pos
        change = abs(delta) * close
        same_side = (targets[a] > 0.0 and pos > 0.0) or (targets[a] < 0.0 and pos < 0.0)
        skip[a] = (targets[a] != 0.0 and change < params[P_REBALANCE] * equity) or (
            same_side and change < params[P_REBALANCE_BAND] * cap
        )
        kept = pos if skip[a] else targets[a]
        gross += abs(kept) * close
        over = over or abs(kept) * close > cap
    if over or gross > budget:
        for a in range(targets.shape[0]):
            skip[a] = False


@njit(cache=True, inline="always")
def place_orders(acct, book, mkt, params, floors, rates, allowances, t, trade, size, risk,
                 execution, scratch, skip):
    """Turn one env's action at bar t into working orders and stops (replacing earlier
    ones). ``scratch`` is 3 x assets: the targets, then the shield's two rows."""
    targets = scratch[0]
    target_quantities(acct, book, mkt, params, floors, rates, allowances, t, trade, size,
                      targets, scratch[1:])
    _skip_small(book, mkt, params, t, acct[EQUITY], targets, skip)
    for a in range(targets.shape[0]):
        close = mkt[t, a, M_CLOSE]
        delta = 0.0 if skip[a] else targets[a] - book[a, QTY]
        horizon = execution[a, 1] + 1.0
        book[a, REMAIN] = delta
        book[a, STYLE] = execution[a, 0]
        book[a, BARS_LEFT] = horizon
        book[a, CLIP] = abs(delta) / horizon
        spread = half_spread(mkt, params, t, a)
        book[a, LIMIT_PX] = close * (1.0 - spread if delta > 0.0 else 1.0 + spread)
        direction = trade[a] - 1
        if direction == 0 or params[P_STOPS] == 0.0:
            book[a, SL_PX] = 0.0
            book[a, TP_PX] = 0.0
            continue
        atr = mkt[t, a, M_ATR]
        sl = atr * (params[P_SL_LO] + risk[a, 0] * (params[P_SL_HI] - params[P_SL_LO]))
        tp = atr * (params[P_TP_LO] + risk[a, 1] * (params[P_TP_HI] - params[P_TP_LO]))
        floor = close * 1e-6
        held = book[a, QTY] * direction > 0.0 and book[a, SL_PX] > 0.0
        keep = held and (params[P_TRAIL_ATR] > 0.0 or params[P_BREAK_EVEN_ATR] > 0.0)
        if direction > 0:
            book[a, SL_PX] = max(close - sl, floor, book[a, SL_PX] if keep else 0.0)
            book[a, TP_PX] = close + tp
        else:
            new = close + sl
            book[a, SL_PX] = min(new, book[a, SL_PX]) if keep else new
            book[a, TP_PX] = max(close - tp, floor)
