"""Hand-made MarketArrays for golden-value tests: every input is explicit."""

from __future__ import annotations

import numpy as np

from envs.core.layout import (
    M_ATR,
    M_AVG_VOLUME,
    M_CLOSE,
    M_COV,
    M_DAILY_NOTIONAL,
    M_DAILY_VOL,
    M_EVENT,
    M_FUNDING,
    M_FUNDING_LAST,
    M_HALF_SPREAD,
    M_HIGH,
    M_LOW,
    M_MARK,
    M_NEXT_EVENT,
    M_OPEN,
    M_TREND_CODE,
    M_VOL_CODE,
    M_VOLUME,
    N_MKT,
)
from envs.data import MarketArrays, _bars_to_next_event, daily_covariance, regime_codes

T0 = np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)
MINUTE = 60 * 10**9


def flat_market(
    n_bars: int = 40,
    n_assets: int = 1,
    price: float = 100.0,
    half_spread: float = 1e-4,
    daily_vol: float = 0.04,
    daily_notional: float = np.inf,
    atr: float = 100.0,
    n_features: int = 2,
) -> MarketArrays:
    """Every bar opens, closes and marks at `price`; high/low +-0.5%; no funding events.

    daily_notional=inf makes impact zero; atr=100 puts default stops far away.
    """
    mkt = np.zeros((n_bars, n_assets, N_MKT + n_assets))
    for slot in (M_OPEN, M_CLOSE, M_MARK):
        mkt[:, :, slot] = price
    mkt[:, :, M_HIGH] = price * 1.005
    mkt[:, :, M_LOW] = price * 0.995
    mkt[:, :, M_VOLUME] = 1000.0
    mkt[:, :, M_AVG_VOLUME] = 1000.0
    mkt[:, :, M_ATR] = atr
    mkt[:, :, M_HALF_SPREAD] = half_spread
    mkt[:, :, M_DAILY_VOL] = daily_vol
    mkt[:, :, M_DAILY_NOTIONAL] = daily_notional
    mkt[:, :, M_FUNDING_LAST] = 0.0
    mkt[:, :, M_NEXT_EVENT] = np.inf
    return build(mkt, n_features)


def build(mkt: np.ndarray, n_features: int = 2, seed: int = 0) -> MarketArrays:
    """Wrap a filled `mkt` array; features are seeded noise (tests of the core ignore them)."""
    n_bars, n_assets, _ = mkt.shape
    for a in range(n_assets):
        mkt[:, a, M_NEXT_EVENT] = _bars_to_next_event(mkt[:, a, M_EVENT])
    feats = (
        np.random.default_rng(seed).normal(size=(n_bars, n_assets, n_features)).astype(np.float32)
    )
    stamps = T0 + MINUTE * np.arange(n_bars, dtype=np.int64)
    return MarketArrays(
        assets=tuple(f"A{i}" for i in range(n_assets)),
        features=tuple(f"f{i}" for i in range(n_features)),
        timestamps=stamps,
        mkt=mkt,
        feats=feats,
        days=stamps // (86_400 * 10**9),
        first_valid=0,
    )


def add_funding(data: MarketArrays, bar: int, rate: float, asset: int = 0) -> MarketArrays:
    """A funding event at the close of `bar` (known from then on)."""
    mkt = data.mkt.copy()
    mkt[bar, asset, M_EVENT] = 1.0
    mkt[bar, asset, M_FUNDING] = rate
    mkt[bar:, asset, M_FUNDING_LAST] = rate
    return build(mkt, data.feats.shape[2])


def action(n_assets: int = 1, trade=1, size=0.0, sl=0.5, tp=0.5, style=0, horizon=1) -> dict:
    """One env's action with the same choice for every asset."""
    return {
        "trade": np.full(n_assets, trade, dtype=np.int64),
        "size": np.full(n_assets, size, dtype=np.float32),
        "risk": np.tile(np.array([sl, tp], dtype=np.float32), n_assets),
        "execution": np.tile(np.array([style, horizon - 1], dtype=np.int64), n_assets),
    }


def random_market(
    n_bars: int = 1000,
    n_assets: int = 3,
    seed: int = 0,
    vol: float = 0.002,
    funding_every: int = 60,
) -> MarketArrays:
    """A seeded random-walk market with every mechanic exercised: funding, spread, impact."""
    rng = np.random.default_rng(seed)
    mkt = np.zeros((n_bars, n_assets, N_MKT + n_assets))
    log_ret = rng.standard_t(4, size=(n_bars, n_assets)) * vol / np.sqrt(2)
    close = 100.0 * np.exp(np.cumsum(log_ret, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    mkt[:, :, M_OPEN] = open_
    mkt[:, :, M_CLOSE] = close
    mkt[:, :, M_HIGH] = np.maximum(open_, close) * (1 + rng.uniform(0, vol, (n_bars, n_assets)))
    mkt[:, :, M_LOW] = np.minimum(open_, close) * (1 - rng.uniform(0, vol, (n_bars, n_assets)))
    mkt[:, :, M_MARK] = close * (1 + rng.normal(0, 1e-4, (n_bars, n_assets)))
    mkt[:, :, M_VOLUME] = rng.lognormal(7, 0.5, (n_bars, n_assets))
    mkt[:, :, M_AVG_VOLUME] = np.exp(7.125)
    mkt[:, :, M_ATR] = close * vol * 1.5
    mkt[:, :, M_HALF_SPREAD] = rng.uniform(2e-5, 2e-4, (n_bars, n_assets))
    mkt[:, :, M_DAILY_VOL] = vol * np.sqrt(1440)
    mkt[:, :, M_DAILY_NOTIONAL] = 2e8
    events = (np.arange(n_bars) % funding_every) == funding_every - 1
    rates = rng.normal(1e-4, 3e-4, (n_bars, n_assets))
    mkt[events, :, M_EVENT] = 1.0
    mkt[events, :, M_FUNDING] = rates[events]
    last = np.where(events[:, None], rates, np.nan)
    for a in range(n_assets):
        filled = np.maximum.accumulate(np.where(np.isfinite(last[:, a]), np.arange(n_bars), -1))
        mkt[:, a, M_FUNDING_LAST] = np.where(filled >= 0, rates[np.maximum(filled, 0), a], 0.0)
    mkt[:, :, M_COV:] = daily_covariance(close, 1440)
    for a in range(n_assets):
        mkt[:, a, M_VOL_CODE], mkt[:, a, M_TREND_CODE] = regime_codes(close[:, a])
    return build(mkt, n_features=3, seed=seed)
