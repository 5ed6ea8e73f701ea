"""Stylised facts of a perpetual-futures market, measured the same way on any data.

`quantum data calibrate` fits the synthetic market to these numbers and the
calibration tests compare them between the synthetic and the real market, so
both read them from here: one definition of "lag-1 autocorrelation" or "funding
std", not one per caller. Bars the loader forward-filled over a gap are left out
of every return statistic (their flat prices are invented).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from market.schema import bars_per_year, timeframe_ms

ABS_ACF_LAGS: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 1440)
"""Lags (in bars) at which the autocorrelation of |returns| is measured."""
WINSOR_QUANTILE = 0.001
"""Share of returns clipped at each tail before the lag-1 autocorrelation."""


@dataclass(frozen=True)
class AssetFacts:
    """One asset's facts; rates and returns are fractions, volatility annualised."""

    first_price: float
    annual_vol: float
    notional_per_minute: float
    excess_kurtosis: float
    return_acf1: float
    """Lag-1 autocorrelation of returns winsorised at WINSOR_QUANTILE (see `robust_acf1`)."""
    abs_acf: Mapping[int, float]
    volume_abs_spearman: float
    """Rank correlation of |bar return| and bar volume: volume rises with volatility."""
    funding_mean: float
    funding_std: float
    funding_acf1: float
    funding_events: int


@dataclass(frozen=True)
class MarketFacts:
    """Facts of every asset plus the pairwise correlation of bar log returns."""

    timeframe: str
    bars: int
    assets: Mapping[str, AssetFacts]
    correlations: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def correlation(self, a: str, b: str) -> float:
        """Correlation of the pair in either order."""
        return self.correlations.get((a, b), self.correlations.get((b, a), np.nan))


def acf(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation at `lag` (NaN entries dropped pairwise)."""
    a, b = x[:-lag], x[lag:]
    ok = np.isfinite(a) & np.isfinite(b)
    mean = np.nanmean(x)
    var = np.nanvar(x)
    return float(np.mean((a[ok] - mean) * (b[ok] - mean)) / var) if var > 0 else np.nan


def robust_acf1(r: np.ndarray) -> float:
    """Lag-1 autocorrelation of returns clipped to their 0.1% and 99.9% quantiles.

    Bid-ask bounce moves it by about -0.01; with excess kurtosis in the hundreds a
    handful of crash minutes move the raw estimate by as much (one real month of
    ETH reads +0.016 raw, -0.010 clipped), so the tails are clipped first.
    """
    finite = r[np.isfinite(r)]
    if len(finite) < 3:
        return np.nan
    lo, hi = np.quantile(finite, [WINSOR_QUANTILE, 1.0 - WINSOR_QUANTILE])
    return acf(np.where(np.isfinite(r), np.clip(r, lo, hi), np.nan), 1)


def bar_returns(aligned: pd.DataFrame) -> pd.DataFrame:
    """Log returns per asset (columns: asset), NaN where either bar was forward-filled."""
    close = aligned.xs("close", axis=1, level="field")
    filled = aligned.xs("filled", axis=1, level="field") > 0
    returns = np.log(close).diff()
    return returns.mask(filled | filled.shift(1, fill_value=False)).iloc[1:]


def measure(
    aligned: pd.DataFrame,
    funding: Mapping[str, pd.Series],
    timeframe: str,
    lags: tuple[int, ...] = ABS_ACF_LAGS,
) -> MarketFacts:
    """The facts of an aligned frame (market.loader) and each asset's funding-rate series."""
    returns = bar_returns(aligned)
    minutes = timeframe_ms(timeframe) / 60_000
    assets = {}
    for asset in returns.columns:
        r = returns[asset].to_numpy()
        frame = aligned[asset].iloc[1:]
        live = np.isfinite(r)
        volume = frame["volume"].to_numpy()
        notional = (frame["close"] * frame["volume"]).to_numpy()[live]
        rates = funding.get(asset, pd.Series(dtype=float)).to_numpy(dtype=float)
        assets[asset] = AssetFacts(
            first_price=float(aligned[asset]["open"].iloc[0]),
            annual_vol=float(np.nanstd(r) * np.sqrt(bars_per_year(timeframe))),
            notional_per_minute=float(notional.mean() / minutes),
            excess_kurtosis=float(pd.Series(r).kurt()),
            return_acf1=robust_acf1(r),
            abs_acf={lag: acf(np.abs(r), lag) for lag in lags if lag < len(r) // 4},
            volume_abs_spearman=float(spearmanr(np.abs(r[live]), volume[live]).statistic),
            funding_mean=float(rates.mean()) if len(rates) else np.nan,
            funding_std=float(rates.std(ddof=1)) if len(rates) > 1 else np.nan,
            funding_acf1=acf(rates, 1) if len(rates) > 2 else np.nan,
            funding_events=len(rates),
        )
    corr = returns.corr()
    names = list(returns.columns)
    pairs = {(a, b): float(corr.loc[a, b]) for i, a in enumerate(names) for b in names[i + 1 :]}
    return MarketFacts(timeframe, len(aligned), assets, pairs)
