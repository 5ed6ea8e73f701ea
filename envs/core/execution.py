"""Working orders and protective stops, one bar at a time.

A decision taken after bar t closes becomes a working order; it executes from
bar t+1 on. The costs of a fill at bar b are estimated from data up to b-1
(half-spread, daily volatility, daily notional), and its price is a price of
bar b itself (its open, or its typical price (H+L+C)/3 for slices worked through
the bar), so no fill ever uses a price the decision saw as the future, and no
cost estimate uses the bar being traded.
"""

from __future__ import annotations

from numba import njit

from envs.config import ExecStyle
from envs.core.accounting import apply_fill, half_spread, impact_cost, record
from envs.core.layout import (
    BARS_LEFT,
    CLIP,
    ENTRY,
    K_CANCEL,
    K_FILL,
    K_STOP_LOSS,
    K_TAKE_PROFIT,
    K_TIME_STOP,
    LIMIT_PX,
    M_ATR,
    M_AVG_VOLUME,
    M_CLOSE,
    M_DAILY_NOTIONAL,
    M_DAILY_VOL,
    M_FUNDING_LAST,
    M_HIGH,
    M_LOW,
    M_NEXT_EVENT,
    M_OPEN,
    M_VOLUME,
    OPENED_AT,
    QTY,
    REMAIN,
    SL_PX,
    STYLE,
    TP_PX,
)
from envs.core.params import (
    P_BREAK_EVEN_ATR,
    P_FUNDING_WINDOW,
    P_IMPACT_K,
    P_MAKER_FEE,
    P_TAKER_FEE,
    P_TIME_STOP,
    P_TRAIL_ATR,
)

MARKET = int(ExecStyle.MARKET)
TWAP = int(ExecStyle.TWAP)
VWAP = int(ExecStyle.VWAP)
LIMIT = int(ExecStyle.LIMIT)
FUNDING_AWARE = int(ExecStyle.FUNDING_AWARE)


@njit(cache=True, inline="always")
def taker_fill(acct, book, mkt, params, a, b, qty, price, kind, events, count):
    """Fill `qty` at mid `price` in bar b as a taker: fee, half-spread and impact."""
    notional = abs(qty) * price
    fee = notional * params[P_TAKER_FEE]
    spread = notional * half_spread(mkt, params, b - 1, a)
    impact = impact_cost(
        notional, mkt[b - 1, a, M_DAILY_VOL], mkt[b - 1, a, M_DAILY_NOTIONAL], params[P_IMPACT_K]
    )
    realized = apply_fill(acct, book, a, qty, price, fee, spread, impact, b)
    return record(events, count, b, a, kind, qty, price, fee, spread, impact, 0.0, realized, 0.0)


@njit(cache=True, inline="always")
def _defer_for_funding(book, mkt, params, a, b):
    """True if the order leaves exposure on its own side that pays the next, imminent
    funding: an open, an add, or a flip through zero (short -> long ends long, and the long
    would pay). A pure reduction never waits."""
    remain = book[a, REMAIN]
    pos = book[a, QTY]
    adds = (pos + remain) * remain > 0.0
    rate = mkt[b - 1, a, M_FUNDING_LAST]
    pays = (remain > 0.0 and rate > 0.0) or (remain < 0.0 and rate < 0.0)
    return adds and pays and mkt[b - 1, a, M_NEXT_EVENT] <= params[P_FUNDING_WINDOW]


@njit(cache=True, inline="always")
def work_orders(acct, book, mkt, params, b, events, count):
    """Execute every working order's share for bar b."""
    for a in range(book.shape[0]):
        remain = book[a, REMAIN]
        if remain == 0.0:
            continue
        style = int(book[a, STYLE])
        typical = (mkt[b, a, M_HIGH] + mkt[b, a, M_LOW] + mkt[b, a, M_CLOSE]) / 3.0
        if style == FUNDING_AWARE and _defer_for_funding(book, mkt, params, a, b):
            continue
        if style == MARKET or style == FUNDING_AWARE:
            count = taker_fill(
                acct, book, mkt, params, a, b, remain, mkt[b, a, M_OPEN], K_FILL, events, count
            )
            book[a, REMAIN] = 0.0
            continue
        left = book[a, BARS_LEFT]
        if style == TWAP or style == VWAP:
            qty = remain if left <= 1.0 else remain / left
            if style == VWAP and left > 1.0:
                expected = mkt[b - 1, a, M_AVG_VOLUME] * left
                share = mkt[b, a, M_VOLUME] / expected if expected > 0.0 else 1.0 / left
                qty = remain * min(1.0, share)
            if qty != 0.0:
                count = taker_fill(
                    acct, book, mkt, params, a, b, qty, typical, K_FILL, events, count
                )
            book[a, REMAIN] = 0.0 if qty == remain else remain - qty
        elif style == LIMIT:
            limit = book[a, LIMIT_PX]
            through = mkt[b, a, M_LOW] < limit if remain > 0.0 else mkt[b, a, M_HIGH] > limit
            if through:
                qty = (
                    remain
                    if abs(remain) <= book[a, CLIP]
                    else book[a, CLIP] * (1.0 if remain > 0 else -1.0)
                )
                notional = abs(qty) * limit
                fee = notional * params[P_MAKER_FEE]
                realized = apply_fill(acct, book, a, qty, limit, fee, 0.0, 0.0, b)
                count = record(
                    events, count, b, a, K_FILL, qty, limit, fee, 0.0, 0.0, 0.0, realized, 0.0
                )
                book[a, REMAIN] = 0.0 if qty == remain else remain - qty
        book[a, BARS_LEFT] = left - 1.0
        if book[a, BARS_LEFT] <= 0.0 and book[a, REMAIN] != 0.0:
            count = record(
                events, count, b, a, K_CANCEL, book[a, REMAIN], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
            )
            book[a, REMAIN] = 0.0
    return count


@njit(cache=True, inline="always")
def check_stops(acct, book, mkt, params, b, events, count):
    """Close positions whose stop-loss or take-profit traded in bar b.

    Stops are set for a direction: a long's stop lies below its take-profit, a
    short's above; a stop for the other direction (e.g. left over while an order
    flips the position) is ignored. When both trade in one bar the stop-loss is
    assumed first (the conservative reading of a bar). A bar that opens beyond the
    level fills at the open (a gap), otherwise at the level.
    """
    for a in range(book.shape[0]):
        pos = book[a, QTY]
        sl = book[a, SL_PX]
        tp = book[a, TP_PX]
        if pos == 0.0 or sl <= 0.0 or tp <= 0.0 or (pos > 0.0) != (sl < tp):
            continue
        o = mkt[b, a, M_OPEN]
        hi = mkt[b, a, M_HIGH]
        lo = mkt[b, a, M_LOW]
        kind = -1
        price = 0.0
        if pos > 0.0:
            if lo <= sl:
                kind, price = K_STOP_LOSS, min(o, sl)
            elif hi >= tp:
                kind, price = K_TAKE_PROFIT, max(o, tp)
        else:
            if hi >= sl:
                kind, price = K_STOP_LOSS, max(o, sl)
            elif lo <= tp:
                kind, price = K_TAKE_PROFIT, min(o, tp)
        if kind >= 0:
            count = _close(acct, book, mkt, params, a, b, price, kind, events, count)
    if params[P_TIME_STOP] > 0.0:
        for a in range(book.shape[0]):
            pos = book[a, QTY]
            if pos != 0.0 and b - book[a, OPENED_AT] >= params[P_TIME_STOP]:
                count = _close(acct, book, mkt, params, a, b, mkt[b, a, M_OPEN], K_TIME_STOP,
                               events, count)
    return count


@njit(cache=True, inline="always")
def _close(acct, book, mkt, params, a, b, price, kind, events, count):
    """Close asset a's position at ``price`` (taker) and drop its orders and stops."""
    count = taker_fill(acct, book, mkt, params, a, b, -book[a, QTY], price, kind, events, count)
    book[a, REMAIN] = 0.0
    book[a, BARS_LEFT] = 0.0
    book[a, SL_PX] = 0.0
    book[a, TP_PX] = 0.0
    return count


@njit(cache=True, inline="always")
def move_stops(book, mkt, params, b):
    """After bar b's close: trail each position's stop-loss to ``trailing_stop_atr`` ATRs
    from the close, and move it to the entry price once the position is
    ``break_even_atr`` ATRs in profit; either only ever tightens the stop, and it takes
    effect from bar b + 1 (the close of b is known then, not before)."""
    trail = params[P_TRAIL_ATR]
    even = params[P_BREAK_EVEN_ATR]
    for a in range(book.shape[0]):
        pos = book[a, QTY]
        sl = book[a, SL_PX]
        if pos == 0.0 or sl <= 0.0 or book[a, TP_PX] <= 0.0:
            continue
        close = mkt[b, a, M_CLOSE]
        atr = mkt[b, a, M_ATR]
        entry = book[a, ENTRY]
        if pos > 0.0:
            if trail > 0.0:
                sl = max(sl, close - trail * atr)
            if even > 0.0 and close - entry >= even * atr:
                sl = max(sl, entry)
        else:
            if trail > 0.0:
                sl = min(sl, close + trail * atr)
            if even > 0.0 and entry - close >= even * atr:
                sl = min(sl, entry)
        book[a, SL_PX] = sl
