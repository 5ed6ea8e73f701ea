"""One decision step for a batch of envs, fused into one numba loop.

Per env: the action becomes working orders at bar t (data up to t); then each of
the next `bars_per_step` bars runs, in the order things happen in a bar:
day rollover at its open, order execution, intrabar stops, funding at its close,
mark-to-market on its mark close, the maintenance-margin check (liquidation) and
the drawdown limit. Then the reward. The next observations are written afterwards,
for every env in one pass (see `observe_batch`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from envs.core.accounting import liquidate, mark_to_market, pay_funding
from envs.core.decide import place_orders
from envs.core.execution import check_stops, move_stops, work_orders
from envs.core.layout import (
    DAY,
    DAY_START,
    EP_MAX_DRAWDOWN,
    EP_REWARD,
    EP_SQ_RETURN,
    EP_STEPS,
    EP_TERMS,
    EQUITY,
    EWVAR,
    LIQUIDATED,
    M_EVENT,
    M_FUNDING,
    M_MARK,
    MAINT,
    N_ACCT,
    N_BOOK,
    PEAK,
    QTY,
    SHIELD_SCALE,
    TRADED,
    WALLET,
)
from envs.core.numba_compat import njit_without_refcount
from envs.core.observe import observe_batch, record_risk
from envs.core.params import (
    P_BARS_PER_STEP,
    P_BREAK_EVEN_ATR,
    P_EPISODE_STEPS,
    P_FUNDING_MULT,
    P_INITIAL,
    P_LIQ_FEE,
    P_MAX_DRAWDOWN,
    P_MAX_LEVERAGE,
    P_REWARD_SCALE,
    P_TRAIL_ATR,
    P_W_DRAWDOWN,
    P_W_LEVERAGE,
    P_W_TURNOVER,
)

N_TERMS = 4
"""Reward terms, in order: log_return, drawdown, turnover, leverage (see REWARD_TERMS)."""
REWARD_TERMS = ("log_return", "drawdown", "turnover", "leverage")


@njit(cache=True)
def reset_account(acct, book, hist, t0, day, initial):
    """A fresh account: flat book, wallet = initial balance, empty risk history."""
    acct[:] = 0.0
    book[:, :] = 0.0
    book[:, SHIELD_SCALE] = 1.0  # nothing cut yet
    hist[:, :] = 0.0
    acct[WALLET] = initial
    acct[EQUITY] = initial
    acct[PEAK] = initial
    acct[DAY_START] = initial
    acct[DAY] = day


@njit(cache=True, inline="always")
def run_bar(acct, book, mkt, days, params, floors, rates, allowances, b, events, count):
    """Everything that happens in bar b; returns (event count, terminated)."""
    if days[b] != acct[DAY]:
        acct[DAY] = days[b]
        acct[DAY_START] = acct[EQUITY]
    count = work_orders(acct, book, mkt, params, b, events, count)
    count = check_stops(acct, book, mkt, params, b, events, count)
    for a in range(book.shape[0]):
        if mkt[b, a, M_EVENT] > 0.0:
            count = pay_funding(
                acct,
                book,
                a,
                mkt[b, a, M_MARK],
                mkt[b, a, M_FUNDING],
                params[P_FUNDING_MULT],
                b,
                events,
                count,
            )
    equity = mark_to_market(acct, book, mkt, b, floors, rates, allowances)
    exposed = False
    for a in range(book.shape[0]):
        exposed = exposed or book[a, QTY] != 0.0
    if (exposed and equity <= acct[MAINT]) or equity < 0.0:
        # equity below zero with no position left (stops filled through a gap) is the
        # same failure: the exchange would have liquidated intrabar; book the shortfall
        count = liquidate(acct, book, mkt, b, params[P_LIQ_FEE], events, count)
        return count, True
    acct[PEAK] = max(acct[PEAK], equity)
    if params[P_TRAIL_ATR] > 0.0 or params[P_BREAK_EVEN_ATR] > 0.0:
        move_stops(book, mkt, params, b)
    return count, equity <= acct[PEAK] * (1.0 - params[P_MAX_DRAWDOWN])


@njit(cache=True, inline="always")
def _gross(book, mkt, b):
    gross = 0.0
    for a in range(book.shape[0]):
        gross += abs(book[a, QTY]) * mkt[b, a, M_MARK]
    return gross


@njit(cache=True, inline="always")
def begin_step(acc, bk, mkt, params, floors, rates, allowances, t, trade, size, risk,
               execution, scratch, skip):
    """A decision at bar t: the action becomes working orders (the step's first part)."""
    acc[TRADED] = 0.0
    place_orders(acc, bk, mkt, params, floors, rates, allowances, t, trade, size, risk,
                 execution, scratch, skip)


@njit(cache=True, inline="always")
def finish_step(acc, bk, hist, mkt, params, b, before, drawdown_before, terms):
    """After the step's last bar b: its reward terms (written to ``terms``), the episode
    totals and the risk history; returns the reward. ``before`` and ``drawdown_before``
    are the equity and drawdown at the decision."""
    floor = params[P_INITIAL] * 1e-9
    after = acc[EQUITY]
    log_return = math.log(max(after, floor) / before)
    acc[EWVAR] = 0.94 * acc[EWVAR] + 0.06 * log_return * log_return
    drawdown = max(0.0, (1.0 - after / acc[PEAK]) - drawdown_before)
    turnover = acc[TRADED] / before
    gross = _gross(bk, mkt, b)
    leverage = gross / max(after, floor) / params[P_MAX_LEVERAGE]
    terms[0] = log_return
    terms[1] = drawdown
    terms[2] = turnover
    terms[3] = leverage
    reward = params[P_REWARD_SCALE] * (
        log_return
        - params[P_W_DRAWDOWN] * drawdown
        - params[P_W_TURNOVER] * turnover
        - params[P_W_LEVERAGE] * leverage
    )
    acc[EP_STEPS] += 1.0
    acc[EP_REWARD] += reward
    acc[EP_SQ_RETURN] += log_return * log_return
    acc[EP_MAX_DRAWDOWN] = max(acc[EP_MAX_DRAWDOWN], 1.0 - after / acc[PEAK])
    for k in range(N_TERMS):
        acc[EP_TERMS + k] += terms[k]
    record_risk(acc, hist, params, log_return, gross)
    return reward


@njit(cache=True)
def step_batch(
    mkt, feats, days, params, floors, rates, allowances,
    acct, book, hist, t, steps, active,
    trade, size, risk, execution,
    events, counts, rewards, terms, terminated, truncated,
    obs_market, obs_risk, obs_portfolio,
):
    """Advance every env one decision step (see module docstring); outputs written in place.

    The observation arrays and `feats` must be C-contiguous (they are viewed flat).
    The loop itself runs in `_step_envs`, compiled without numba's reference counting:
    with it, every array argument of every inlined helper cost an atomic incref/decref
    pair that numba could not prune (about 50 pairs per env and step, some 30% of the
    kernel's time). That is safe there because the loop only takes views of arrays
    this call holds alive and allocates nothing; this wrapper allocates its scratch.
    """
    n_assets = book.shape[1]
    _step_envs(
        mkt, feats, days, params, floors, rates, allowances, acct, book, hist, t, steps, active,
        trade, size, risk, execution, events, counts, rewards, terms, terminated, truncated,
        obs_market, obs_risk, obs_portfolio, np.empty((3, n_assets)),
        np.empty(n_assets, np.bool_),
    )


@njit_without_refcount(cache=True)
def _step_envs(
    mkt, feats, days, params, floors, rates, allowances,
    acct, book, hist, t, steps, active,
    trade, size, risk, execution,
    events, counts, rewards, terms, terminated, truncated,
    obs_market, obs_risk, obs_portfolio, scratch, skip,
):
    """The loop of `step_batch`, compiled without reference counting (see there)."""
    per_step = int(params[P_BARS_PER_STEP])
    last_bar = mkt.shape[0] - 1
    for n in range(acct.shape[0]):
        if not active[n]:
            continue
        acc = acct[n]
        bk = book[n]
        before = acc[EQUITY]
        drawdown_before = 1.0 - before / acc[PEAK]
        begin_step(acc, bk, mkt, params, floors, rates, allowances, t[n], trade[n], size[n],
                   risk[n], execution[n], scratch, skip)
        count = 0
        done = False
        b = t[n]
        for _ in range(per_step):
            b += 1
            count, done = run_bar(
                acc, bk, mkt, days, params, floors, rates, allowances, b, events[n], count
            )
            if done:
                break
        t[n] = b
        steps[n] += 1
        counts[n] = count
        rewards[n] = finish_step(acc, bk, hist[n], mkt, params, b, before, drawdown_before,
                                 terms[n])
        terminated[n] = done or acc[LIQUIDATED] > 0.0
        truncated[n] = (not terminated[n]) and (
            steps[n] >= params[P_EPISODE_STEPS] or b + per_step > last_bar
        )
    observe_batch(acct, book, hist, mkt, feats, params, t, active,
                  obs_market, obs_risk, obs_portfolio)


@njit(cache=True)
def reset_batch(
    mkt, feats, days, params, acct, book, hist, t, steps, mask, starts,
    obs_market, obs_risk, obs_portfolio,
):
    """Start a new episode at bar starts[n] for every env with mask[n]; write its observation."""
    for n in range(acct.shape[0]):
        if not mask[n]:
            continue
        t[n] = starts[n]
        steps[n] = 0
        reset_account(acct[n], book[n], hist[n], starts[n], days[starts[n]], params[P_INITIAL])
        record_risk(acct[n], hist[n], params, 0.0, 0.0)
    observe_batch(acct, book, hist, mkt, feats, params, t, mask,
                  obs_market, obs_risk, obs_portfolio)


def new_state(n_envs: int, n_assets: int, risk_window: int, n_risk: int) -> dict[str, np.ndarray]:
    """Zeroed state arrays for `n_envs` accounts."""
    return {
        "acct": np.zeros((n_envs, N_ACCT)),
        "book": np.zeros((n_envs, n_assets, N_BOOK)),
        "hist": np.zeros((n_envs, risk_window, n_risk)),
        "t": np.zeros(n_envs, dtype=np.int64),
        "steps": np.zeros(n_envs, dtype=np.int64),
    }
