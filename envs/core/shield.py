"""The risk shield: the policy's target notionals, shrunk to fit the risk rules before any
order exists (pre-trade), in the env's own decision kernel, so training, backtests (both
paths), paper trading and serving apply one implementation.

Rules in order (settings: envs.config.ShieldConfig, packed in params; data: the market
arrays at the decision bar t, all from the past only):

1. volatility targeting: |notional_a| <= min(target_vol / annual_vol_a, max_leverage) *
   equity, annual_vol_a = daily_vol_a * sqrt(365) (risk.sizing.vol_target_leverage)
2. regime: notional_a *= m(vol regime_a) * m(trend regime_a) (risk.sizing.regime_multiplier)
3. drawdown schedule: all *= the multiplier of the deepest step reached by 1 - equity/peak
4. correlation groups: assets linked by correlation > threshold (single linkage over the
   trailing day's correlation matrix) share a cap on their gross notional / equity
5. gross cap: sum |notional| <= max_gross_leverage * equity
6. VaR / ES of the post-trade book, normal: sigma = sqrt(n' C n) with C the one-day
   covariance of log returns; VaR = z sigma, ES = phi(z) / (1 - confidence) sigma; over
   the cap, every target is scaled by one common factor (homogeneous: exact)
7. maintenance margin of the post-trade book / equity, over the cap: one common factor,
   found by bisection (the tiered margin is piecewise linear in notional)

Each rule only shrinks a target toward zero. The book keeps, per asset, the final
|target| / |asked| (SHIELD_SCALE) and the bitmask of the rules that cut it (SHIELD_RULES).
"""

from __future__ import annotations

import math

from numba import njit

from envs.core.accounting import maintenance_margin
from envs.core.layout import (
    EQUITY,
    M_COV,
    M_DAILY_VOL,
    M_TREND_CODE,
    M_VOL_CODE,
    PEAK,
    R_CORRELATION,
    R_DRAWDOWN,
    R_ES,
    R_GROSS,
    R_MARGIN,
    R_REGIME,
    R_VAR,
    R_VOL_TARGET,
    SHIELD_RULE_NAMES,
    SHIELD_RULES,
    SHIELD_SCALE,
)
from envs.core.params import (
    P_CORR_MAX_GROUP,
    P_CORR_THRESHOLD,
    P_DD_LEVEL,
    P_DD_MULT,
    P_ES_K,
    P_MAX_ES,
    P_MAX_GROSS,
    P_MAX_MARGIN,
    P_MAX_VAR,
    P_REGIME_TREND,
    P_REGIME_VOL,
    P_VAR_Z,
    P_VT_MAX_LEV,
    P_VT_TARGET,
)

DAYS_PER_YEAR = 365.0
DD_STEPS = 4
BISECTIONS = 40


@njit(cache=True, inline="always")
def _mark(book, a, rule):
    book[a, SHIELD_RULES] = float(int(book[a, SHIELD_RULES]) | rule)


@njit(cache=True, inline="always")
def _flag(book, notional, rule):
    for a in range(notional.shape[0]):
        if notional[a] != 0.0:
            _mark(book, a, rule)


@njit(cache=True, inline="always")
def _scale_all(book, notional, factor, rule):
    _flag(book, notional, rule)
    for a in range(notional.shape[0]):
        notional[a] *= factor


@njit(cache=True, inline="always")
def vol_cap(mkt, params, t, a):
    """Rule 1's cap on |notional_a| / equity: min(target_vol / annual_vol_a, max leverage)."""
    vol = mkt[t, a, M_DAILY_VOL] * math.sqrt(DAYS_PER_YEAR)
    lev = params[P_VT_MAX_LEV]
    if vol > 0.0:
        lev = min(params[P_VT_TARGET] / vol, lev)
    return lev


@njit(cache=True, inline="always")
def regime_multiplier(mkt, params, t, a):
    """Rule 2: the multiplier of asset a's volatility and trend regimes at bar t."""
    return params[P_REGIME_VOL + int(mkt[t, a, M_VOL_CODE])] * \
        params[P_REGIME_TREND + int(mkt[t, a, M_TREND_CODE])]


@njit(cache=True, inline="always")
def drawdown_multiplier(acct, params):
    """Rule 3: the multiplier of the deepest drawdown step the account has reached."""
    drawdown = 1.0 - acct[EQUITY] / acct[PEAK] if acct[PEAK] > 0.0 else 0.0
    m = 1.0
    for k in range(DD_STEPS):
        if drawdown >= params[P_DD_LEVEL + k]:
            m = params[P_DD_MULT + k]
    return m


@njit(cache=True, inline="always")
def asset_room(acct, mkt, params, t, a):
    """The most |notional_a| / equity the per-asset rules (1-3) allow at bar t; the book
    rules (4-7) can only lower it further."""
    return vol_cap(mkt, params, t, a) * min(regime_multiplier(mkt, params, t, a), 1.0) * \
        drawdown_multiplier(acct, params)


@njit(cache=True, inline="always")
def _root(group, a):
    while int(group[a]) != a:
        a = int(group[a])
    return a


@njit(cache=True, inline="always")
def book_sigma(mkt, t, notional):
    """One-day standard deviation of the book's P&L: sqrt(n' C n)."""
    n = notional.shape[0]
    var = 0.0
    for i in range(n):
        if notional[i] == 0.0:
            continue
        for j in range(n):
            var += notional[i] * notional[j] * mkt[t, i, M_COV + j]
    return math.sqrt(max(var, 0.0))


@njit(cache=True, inline="always")
def _margin(notional, factor, floors, rates, allowances):
    total = 0.0
    for a in range(notional.shape[0]):
        if notional[a] != 0.0:
            total += maintenance_margin(abs(notional[a]) * factor, floors[a], rates[a],
                                        allowances[a])
    return total


@njit(cache=True, inline="always")
def _correlation_caps(book, mkt, params, t, equity, notional, group):
    n = notional.shape[0]
    for a in range(n):
        group[a] = a
    for i in range(n):
        vi = mkt[t, i, M_COV + i]
        for j in range(i + 1, n):
            vj = mkt[t, j, M_COV + j]
            if vi > 0.0 and vj > 0.0 and mkt[t, i, M_COV + j] / math.sqrt(vi * vj) > \
                    params[P_CORR_THRESHOLD]:
                ri, rj = _root(group, i), _root(group, j)
                if ri != rj:
                    group[max(ri, rj)] = min(ri, rj)
    cap = params[P_CORR_MAX_GROUP] * equity
    for g in range(n):
        gross = 0.0
        members = 0
        for a in range(n):
            if _root(group, a) == g:
                gross += abs(notional[a])
                members += 1
        if members > 1 and gross > cap:
            for a in range(n):
                if _root(group, a) == g and notional[a] != 0.0:
                    notional[a] *= cap / gross
                    _mark(book, a, R_CORRELATION)


@njit(cache=True, inline="always")
def shield_notional(acct, book, mkt, params, floors, rates, allowances, t, notional, scratch):
    """Shrink the signed target notionals of a decision at bar t in place (module
    docstring); ``scratch`` is two rows of n_assets floats."""
    n = notional.shape[0]
    asked = scratch[0]
    equity = acct[EQUITY]
    for a in range(n):
        asked[a] = notional[a]
        book[a, SHIELD_RULES] = 0.0
    if equity <= 0.0:
        for a in range(n):
            notional[a] = 0.0
    else:
        for a in range(n):
            lev = vol_cap(mkt, params, t, a)
            if abs(notional[a]) > lev * equity:
                notional[a] = math.copysign(lev * equity, notional[a])
                _mark(book, a, R_VOL_TARGET)
            m = regime_multiplier(mkt, params, t, a)
            if m < 1.0 and notional[a] != 0.0:
                notional[a] *= m
                _mark(book, a, R_REGIME)
        m = drawdown_multiplier(acct, params)
        if m < 1.0:
            _scale_all(book, notional, m, R_DRAWDOWN)
        _correlation_caps(book, mkt, params, t, equity, notional, scratch[1])
        gross = 0.0
        for a in range(n):
            gross += abs(notional[a])
        if gross > params[P_MAX_GROSS] * equity:
            _scale_all(book, notional, params[P_MAX_GROSS] * equity / gross, R_GROSS)
        sigma = book_sigma(mkt, t, notional)
        if params[P_VAR_Z] * sigma > params[P_MAX_VAR] * equity:
            factor = params[P_MAX_VAR] * equity / (params[P_VAR_Z] * sigma)
            _scale_all(book, notional, factor, R_VAR)
            sigma *= factor
        if params[P_ES_K] * sigma > params[P_MAX_ES] * equity:
            _scale_all(book, notional, params[P_MAX_ES] * equity / (params[P_ES_K] * sigma), R_ES)
        limit = params[P_MAX_MARGIN] * equity
        if _margin(notional, 1.0, floors, rates, allowances) > limit:
            lo, hi = 0.0, 1.0
            for _ in range(BISECTIONS):
                mid = 0.5 * (lo + hi)
                if _margin(notional, mid, floors, rates, allowances) > limit:
                    hi = mid
                else:
                    lo = mid
            _scale_all(book, notional, lo, R_MARGIN)
    for a in range(n):
        book[a, SHIELD_SCALE] = abs(notional[a]) / abs(asked[a]) if asked[a] != 0.0 else 1.0


def rule_names(mask: int | float) -> list[str]:
    """The names of the rules in a SHIELD_RULES bitmask, in the order they apply."""
    return [name for k, name in enumerate(SHIELD_RULE_NAMES) if int(mask) & (1 << k)]


def shield_report(book, assets: tuple[str, ...]) -> dict[str, dict]:
    """Per asset, what the shield did at the last decision: the scale it left of the
    asked target and the rules that cut it (a book's rows; Python, not a kernel)."""
    return {asset: {"scale": float(book[a, SHIELD_SCALE]),
                    "rules": rule_names(book[a, SHIELD_RULES])}
            for a, asset in enumerate(assets)}
