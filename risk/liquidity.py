"""Liquidity and counterparty risk: what it costs and how long it takes to get out, and where.

A position is only worth its mark if it can be closed near the mark. Closing pays half the
spread plus square-root impact, impact = k * daily vol * sqrt(notional / daily notional),
the same law the simulator charges, so stress close-out costs agree with simulated fills.
Counterparty risk is the equity parked at each exchange: FTX showed it can vanish.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_EXCHANGE = "primary"
"""Exchange assumed for positions whose venue is not stated (one cross-margin account)."""


class MarketLiquidity(BaseModel):
    """Per-asset spread, traded notional and volatility; defaults cover unlisted assets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    half_spread: dict[str, float] = Field(
        default_factory=dict, description="Half bid-ask spread as a fraction of price, per asset."
    )
    daily_notional: dict[str, float] = Field(
        default_factory=dict, description="Average notional traded per day (quote currency)."
    )
    daily_vol: dict[str, float] = Field(
        default_factory=dict, description="Standard deviation of daily returns, per asset."
    )
    default_half_spread: float = Field(
        0.0002, ge=0, description="Half-spread for assets without an estimate (2 bp)."
    )
    default_daily_notional: float = Field(
        5e8, gt=0, description="Daily notional for assets without an estimate (conservative)."
    )
    default_daily_vol: float = Field(
        0.04, ge=0, description="Daily volatility for assets without an estimate (crypto ~4%)."
    )
    impact_k: float = Field(
        0.5, ge=0, description="Square-root impact coefficient (the simulator's default)."
    )

    def profile(self, asset: str) -> tuple[float, float, float]:
        """(half spread, daily notional, daily vol) of one asset, falling back to defaults."""
        return (
            self.half_spread.get(asset, self.default_half_spread),
            self.daily_notional.get(asset, self.default_daily_notional),
            self.daily_vol.get(asset, self.default_daily_vol),
        )


def corwin_schultz_half_spread(high: pd.Series, low: pd.Series) -> float:
    """Mean Corwin-Schultz (2012) half-spread from consecutive bars' high/low ranges.

    Used when no order-book data exists: the high-low range mixes volatility (grows with the
    window) and spread (does not), so comparing one- and two-bar ranges separates them.
    Negative bar estimates are set to zero, as the authors recommend.
    """
    hl = np.log(high.to_numpy(dtype=np.float64) / low.to_numpy(dtype=np.float64))
    beta = hl[:-1] ** 2 + hl[1:] ** 2
    h2 = np.maximum(high.to_numpy()[:-1], high.to_numpy()[1:])
    l2 = np.minimum(low.to_numpy()[:-1], low.to_numpy()[1:])
    gamma = np.log(h2 / l2) ** 2
    den = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / den - np.sqrt(gamma / den)
    spread = np.maximum(2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha)), 0.0)
    return float(np.nanmean(spread) / 2.0) if spread.size else 0.0


def estimate_liquidity(
    close: pd.DataFrame,
    volume: pd.DataFrame,
    bars_per_day: int,
    high: pd.DataFrame | None = None,
    low: pd.DataFrame | None = None,
    lookback_days: int = 30,
    impact_k: float = 0.5,
) -> MarketLiquidity:
    """Liquidity profile from the trailing `lookback_days` of bars (columns are assets).

    Only the trailing window is used: liquidity changes, and a year-old average volume would
    overstate how quickly a position can be sold today. Volume is in base units.
    """
    n = max(2, lookback_days * bars_per_day)
    c, v = close.tail(n), volume.tail(n)
    daily_vol = np.log(c).diff().std() * math.sqrt(bars_per_day)
    daily_notional = (c * v).mean() * bars_per_day
    spreads = {}
    if high is not None and low is not None:
        spreads = {a: corwin_schultz_half_spread(high[a].tail(n), low[a].tail(n)) for a in c}
    return MarketLiquidity(
        half_spread=spreads,
        daily_notional={a: float(x) for a, x in daily_notional.items() if x > 0},
        daily_vol={a: float(x) for a, x in daily_vol.items() if np.isfinite(x)},
        impact_k=impact_k,
    )


def impact_cost(
    notional: np.ndarray | float,
    daily_vol: np.ndarray | float,
    daily_notional: np.ndarray | float,
    k: float = 0.5,
) -> np.ndarray:
    """Square-root market impact in quote currency: notional * k * vol * sqrt(notional / ADV)."""
    notional = np.abs(np.asarray(notional, dtype=np.float64))
    adv = np.asarray(daily_notional, dtype=np.float64)
    return notional * k * np.asarray(daily_vol) * np.sqrt(notional / adv)


def days_to_liquidate(
    notional: np.ndarray | float, daily_notional: np.ndarray | float, participation: float = 0.1
) -> np.ndarray:
    """Days to close at `participation` of daily traded notional without moving the market."""
    if not 0.0 < participation <= 1.0:
        raise ValueError(f"participation must be in (0, 1], got {participation}")
    return np.abs(np.asarray(notional, dtype=np.float64)) / (
        participation * np.asarray(daily_notional, dtype=np.float64)
    )


def liquidity_table(
    notional: Mapping[str, float],
    liquidity: MarketLiquidity | None = None,
    participation: float = 0.1,
    spread_multiplier: float = 1.0,
    volume_multiplier: float = 1.0,
    vol_multiplier: float = 1.0,
) -> pd.DataFrame:
    """Per-asset exit profile: days to liquidate and the cost of closing everything now.

    The cost is for an immediate market close, the way a liquidation exits; the multipliers
    describe stressed markets (wider spreads, thinner volume, higher volatility).
    """
    liq = liquidity or MarketLiquidity()
    assets = list(notional)
    prof = np.array([liq.profile(a) for a in assets], dtype=np.float64).reshape(-1, 3)
    size = np.abs(np.array([notional[a] for a in assets], dtype=np.float64))
    adv = prof[:, 1] * volume_multiplier
    spread = size * prof[:, 0] * spread_multiplier
    impact = impact_cost(size, prof[:, 2] * vol_multiplier, adv, liq.impact_k)
    return pd.DataFrame(
        {
            "notional": size,
            "daily_notional": adv,
            "days_to_liquidate": days_to_liquidate(size, adv, participation),
            "spread_cost": spread,
            "impact_cost": impact,
            "total_cost": spread + impact,
        },
        index=pd.Index(assets, name="asset"),
    )


def counterparty_exposure(
    notional: Mapping[str, float],
    exchanges: Mapping[str, str],
    equity: float,
    exchange_equity: Mapping[str, float] | None = None,
    maintenance: Mapping[str, float] | None = None,
    max_share: float = 1.0,
) -> pd.DataFrame:
    """Equity, notional and margin held per exchange, its share of the total, and breaches.

    Without stated per-exchange equity, equity is attributed in proportion to gross notional
    (margin follows positions); a book with no positions holds all equity at the default
    exchange.
    """
    venue = {a: exchanges.get(a, DEFAULT_EXCHANGE) for a in notional}
    names = sorted(set(venue.values()) | set(exchange_equity or {}) or {DEFAULT_EXCHANGE})
    gross = {x: sum(abs(n) for a, n in notional.items() if venue[a] == x) for x in names}
    margin = {
        x: sum((maintenance or {}).get(a, 0.0) for a in venue if venue[a] == x) for x in names
    }
    total_gross = sum(gross.values())
    if exchange_equity:
        held = {x: float(exchange_equity.get(x, 0.0)) for x in names}
    elif total_gross > 0:
        held = {x: equity * gross[x] / total_gross for x in names}
    else:
        held = {x: equity if x == DEFAULT_EXCHANGE else 0.0 for x in names}
    total = sum(max(h, 0.0) for h in held.values())
    share = {x: max(held[x], 0.0) / total if total > 0 else 0.0 for x in names}
    return pd.DataFrame(
        {
            "gross_notional": [gross[x] for x in names],
            "maintenance_margin": [margin[x] for x in names],
            "equity_held": [held[x] for x in names],
            "share": [share[x] for x in names],
            "breach": [share[x] > max_share for x in names],
        },
        index=pd.Index(names, name="exchange"),
    )
