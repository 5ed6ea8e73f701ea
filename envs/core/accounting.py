"""Exact accounting of one account: fills, costs, funding, margin, liquidation.

Positions carry mid prices; spread and impact are charged as separate costs, so
every cent lands in a named bucket and the books reconcile:

    equity = initial + realised + unrealised - fees - funding - spread - impact
             - liquidation fees + bad debt

(`bad debt` is the shortfall an exchange's insurance fund absorbs when a
liquidation leaves the wallet below zero; the wallet is then reset to zero and
the shortfall reported, never hidden.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from envs.core.layout import (
    BAD_DEBT,
    BARS_LEFT,
    ENTRY,
    EQUITY,
    EV_ASSET,
    EV_BAD_DEBT,
    EV_BAR,
    EV_FEE,
    EV_FUNDING,
    EV_IMPACT,
    EV_KIND,
    EV_PRICE,
    EV_QTY,
    EV_REALIZED,
    EV_SPREAD,
    FEES,
    FUNDING,
    IMPACT,
    K_FUNDING,
    K_LIQUIDATION,
    LIQ_FEES,
    LIQUIDATED,
    M_HALF_SPREAD,
    M_MARK,
    MAINT,
    OPENED_AT,
    QTY,
    REALIZED,
    REMAIN,
    SL_PX,
    SPREAD,
    TP_PX,
    TRADED,
    WALLET,
)
from envs.core.params import P_MAX_HALF_SPREAD, P_MIN_HALF_SPREAD


@njit(cache=True, inline="always")
def half_spread(mkt, params, b, a):
    """The half-spread paid on a taker fill at bar b's information: the data's estimate,
    bounded by the env's floor and cap (CostConfig), so a backtest's slippage setting
    applies to data built once and shared by every env."""
    return min(max(mkt[b, a, M_HALF_SPREAD], params[P_MIN_HALF_SPREAD]), params[P_MAX_HALF_SPREAD])


@njit(cache=True, inline="always")
def record(
    events, count, bar, asset, kind, qty, price, fee, spread, impact, funding, realized, bad
):
    """Append one ledger row if there is room; returns the new count."""
    if count < events.shape[0]:
        row = events[count]
        row[EV_BAR] = bar
        row[EV_ASSET] = asset
        row[EV_KIND] = kind
        row[EV_QTY] = qty
        row[EV_PRICE] = price
        row[EV_FEE] = fee
        row[EV_SPREAD] = spread
        row[EV_IMPACT] = impact
        row[EV_FUNDING] = funding
        row[EV_REALIZED] = realized
        row[EV_BAD_DEBT] = bad
    return count + 1


@njit(cache=True, inline="always")
def apply_fill(acct, book, asset, qty, price, fee, spread, impact, bar):
    """Trade `qty` (signed) of `asset` at mid `price`, paying the given costs.

    Adding to a position moves the entry to the volume-weighted price; reducing
    realises PnL against the entry; crossing through zero closes the old position
    in full and opens the remainder at `price`. Returns the realised PnL.
    """
    pos = book[asset, QTY]
    entry = book[asset, ENTRY]
    realized = 0.0
    if pos == 0.0 or (pos > 0.0) == (qty > 0.0):
        new = pos + qty
        book[asset, ENTRY] = (pos * entry + qty * price) / new
        if pos == 0.0:
            book[asset, OPENED_AT] = bar
        book[asset, QTY] = new
    else:
        closed = min(abs(qty), abs(pos))
        realized = closed * (price - entry) * (1.0 if pos > 0.0 else -1.0)
        if abs(qty) < abs(pos):
            book[asset, QTY] = pos + qty
        elif abs(qty) == abs(pos):
            book[asset, QTY] = 0.0
            book[asset, ENTRY] = 0.0
        else:
            book[asset, QTY] = pos + qty
            book[asset, ENTRY] = price
            book[asset, OPENED_AT] = bar
    acct[WALLET] += realized - fee - spread - impact
    acct[REALIZED] += realized
    acct[FEES] += fee
    acct[SPREAD] += spread
    acct[IMPACT] += impact
    acct[TRADED] += abs(qty) * price
    return realized


@njit(cache=True, inline="always")
def maintenance_margin(notional, floors, rates, allowances):
    """Tiered maintenance margin of one position: notional * rate - allowance of its bracket."""
    k = 0
    while k + 1 < floors.shape[0] and notional >= floors[k + 1]:
        k += 1
    return notional * rates[k] - allowances[k]


@njit(cache=True, inline="always")
def mark_to_market(acct, book, mkt, b, floors, rates, allowances):
    """Equity and maintenance margin at bar b's mark prices (stored in acct); each asset
    is margined with its own bracket table (row a of floors, rates, allowances)."""
    unrealized = 0.0
    maint = 0.0
    for a in range(book.shape[0]):
        pos = book[a, QTY]
        if pos != 0.0:
            mark = mkt[b, a, M_MARK]
            unrealized += pos * (mark - book[a, ENTRY])
            maint += maintenance_margin(abs(pos) * mark, floors[a], rates[a], allowances[a])
    acct[EQUITY] = acct[WALLET] + unrealized
    acct[MAINT] = maint
    return acct[EQUITY]


@njit(cache=True, inline="always")
def pay_funding(acct, book, asset, mark, rate, multiplier, bar, events, count):
    """Charge one funding event: notional at mark x rate x multiplier; longs pay a positive rate."""
    pos = book[asset, QTY]
    if pos == 0.0:
        return count
    payment = pos * mark * rate * multiplier
    acct[WALLET] -= payment
    acct[FUNDING] += payment
    return record(events, count, bar, asset, K_FUNDING, pos, mark, 0.0, 0.0, 0.0, payment, 0.0, 0.0)


@njit(cache=True, inline="always")
def liquidate(acct, book, mkt, bar, fee_rate, events, count):
    """Close every position at bar's mark price, charge the liquidation fee, book any bad debt."""
    for a in range(book.shape[0]):
        mark = mkt[bar, a, M_MARK]
        pos = book[a, QTY]
        book[a, REMAIN] = 0.0
        book[a, BARS_LEFT] = 0.0
        book[a, SL_PX] = 0.0
        book[a, TP_PX] = 0.0
        if pos == 0.0:
            continue
        fee = abs(pos) * mark * fee_rate
        realized = apply_fill(acct, book, a, -pos, mark, 0.0, 0.0, 0.0, bar)
        acct[WALLET] -= fee
        acct[LIQ_FEES] += fee
        count = record(
            events, count, bar, a, K_LIQUIDATION, -pos, mark, fee, 0.0, 0.0, 0.0, realized, 0.0
        )
    if acct[WALLET] < 0.0:
        shortfall = -acct[WALLET]
        acct[BAD_DEBT] += shortfall
        acct[WALLET] = 0.0
        count = record(
            events, count, bar, -1, K_LIQUIDATION, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, shortfall
        )
    acct[EQUITY] = acct[WALLET]
    acct[LIQUIDATED] = 1.0
    return count


@njit(cache=True, inline="always")
def impact_cost(notional, daily_vol, daily_notional, k):
    """Square-root impact in quote currency: notional * k * sigma_day * sqrt(notional / ADV)."""
    if notional <= 0.0 or daily_notional <= 0.0 or not math.isfinite(daily_notional):
        return 0.0
    return notional * k * daily_vol * math.sqrt(notional / daily_notional)


def bracket_arrays(margin, assets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each asset's bracket table (envs.config.MarginConfig.table) as rows of contiguous
    (assets, brackets) arrays for the kernels; shorter tables are padded with brackets
    that start at infinite notional (never reached)."""
    from envs.config import allowances_of

    tables = [margin.table(asset) for asset in assets]
    width = max(len(t) for t in tables)
    floors = np.full((len(tables), width), np.inf)
    rates = np.zeros((len(tables), width))
    allowances = np.zeros((len(tables), width))
    for a, table in enumerate(tables):
        k = len(table)
        floors[a, :k] = [f for f, _ in table]
        rates[a, :k] = [r for _, r in table]
        allowances[a, :k] = allowances_of(table)
        rates[a, k:], allowances[a, k:] = rates[a, k - 1], allowances[a, k - 1]
    return floors, rates, allowances
