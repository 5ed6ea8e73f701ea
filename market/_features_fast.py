"""The fast feature engine: numba kernels writing straight into the output frame's columns.

The output is one Fortran-ordered (bars, assets * features) array, so every
feature column is contiguous and each kernel fills its column in place; pandas
then wraps the array without a copy. Each asset's features are split into five
independent groups, each computing its features and then their z-scores; the
groups run on a thread pool (the kernels release the GIL), so all cores work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from market import _feature_kernels as kern
from market import _feature_rolling as roll
from market._feature_spec import (
    FEATURE_NAMES,
    NORMALISED,
    SLOT,
    AssetBars,
    Context,
    FeatureConfig,
)

Column = Callable[[str], np.ndarray]
"""A feature's output column (a writable contiguous view) for one asset."""


def _returns(bars: AssetBars, col: Column, ctx: Context) -> None:
    """Realised and daily volatility, and correlations with the first asset and the market."""
    cfg = ctx.config
    ret = col("log_return")
    roll.rolling_std(ret, cfg.vol_window, 1, col("realized_vol"))
    np.multiply(col("realized_vol"), math.sqrt(ctx.bars_per_day), out=col("daily_vol"))
    kern.rolling_corr(ret, ctx.first_return, cfg.corr_window, col("corr_first"))
    kern.rolling_corr(ret, ctx.market_return, cfg.corr_window, col("corr_market"))


def _momentum(bars: AssetBars, col: Column, ctx: Context) -> None:
    """RSI and the MACD line, signal and histogram (over close)."""
    cfg = ctx.config
    kern.rsi(bars.close, cfg.rsi_window, col("rsi"))
    kern.macd(
        bars.close, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal,
        col("macd"), col("macd_signal"), col("macd_diff"),
    )


def _bands(bars: AssetBars, col: Column, ctx: Context) -> None:
    """Bollinger %B and width, ATR and ATR / close."""
    cfg = ctx.config
    roll.bollinger(bars.close, cfg.bb_window, cfg.bb_dev, col("bb_pband"), col("bb_wband"))
    seed = _atr_seed(bars, cfg.atr_window)
    kern.atr(bars.high, bars.low, bars.close, cfg.atr_window, seed, col("atr"), col("atr_pct"))


def _atr_seed(bars: AssetBars, window: int) -> float:
    """Mean true range of the first `window` bars, summed as 'ta' (pandas, numpy) sums it."""
    high, low, close = bars.high[:window], bars.low[:window], bars.close[:window]
    prev = np.r_[np.nan, close[:-1]]
    ranges = np.stack([high - low, np.abs(high - prev), np.abs(low - prev)])
    return float(np.nanmax(ranges, axis=0).sum() / len(high)) if len(high) else np.nan


def _volume(bars: AssetBars, col: Column, ctx: Context) -> None:
    """OBV and log-volume z-scores, VWAP distance, traded notional over the last day."""
    cfg = ctx.config
    scratch, total = np.empty_like(bars.close), np.empty_like(bars.close)
    kern.obv(bars.close, bars.volume, scratch)
    roll.zscore(scratch, cfg.volume_window, col("obv_z"))
    np.log1p(bars.volume, out=scratch)
    roll.zscore(scratch, cfg.volume_window, col("volume_z"))
    typical = (bars.high + bars.low + bars.close) / 3.0
    roll.pandas_sum(typical * bars.volume, cfg.vwap_window, False, scratch)
    roll.pandas_sum(bars.volume, cfg.vwap_window, False, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.subtract(bars.close / (scratch / total), 1.0, out=col("vwap_dist"))
    np.multiply(bars.close, bars.volume, out=scratch)
    roll.pandas_sum(scratch, ctx.bars_per_day, False, col("dollar_volume_daily"))


def _costs(bars: AssetBars, col: Column, ctx: Context) -> None:
    """Corwin-Schultz half-spread, last known funding rate, basis of mark over close."""
    spread = _corwin_schultz(bars.high, bars.low)
    roll.pandas_sum(spread, ctx.config.spread_window, True, col("spread_cs"))
    kern.last_funding(bars.funding_rate, bars.funding_event, col("funding_rate_last"))
    np.multiply(col("funding_rate_last"), 1e4, out=col("funding_bp"))
    np.divide(bars.mark, bars.close, out=col("basis"))
    np.subtract(col("basis"), 1.0, out=col("basis"))


def _corwin_schultz(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Corwin-Schultz half-spread from bars t-1 and t, negatives set to 0 (NaN at row 0).

    numpy, with the 'ta' engine's operations in its order: numpy's vectorised
    log/exp round differently from numba's scalar ones, and this feature is
    z-scored later, where pandas' drift would amplify any last-bit difference.
    """
    k = 3.0 - 2.0 * np.sqrt(2.0)
    range_sq = np.log(high / low) ** 2
    beta = np.empty_like(high)
    beta[0] = np.nan
    np.add(range_sq[1:], range_sq[:-1], out=beta[1:])
    gamma = np.empty_like(high)
    gamma[0] = np.nan
    np.divide(np.maximum(high[1:], high[:-1]), np.minimum(low[1:], low[:-1]), out=gamma[1:])
    gamma = np.log(gamma, out=gamma) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    growth = np.exp(alpha, out=alpha)
    spread = 2.0 * (growth - 1.0) / (1.0 + growth)
    return np.maximum(spread, 0.0, out=spread) / 2.0


_GROUPS: dict[Callable[[AssetBars, Column, Context], None], tuple[str, ...]] = {
    _returns: ("log_return", "realized_vol", "daily_vol", "corr_first", "corr_market"),
    _momentum: ("rsi", "macd", "macd_signal", "macd_diff"),
    _bands: ("bb_pband", "bb_wband", "atr", "atr_pct"),
    _volume: ("obv_z", "volume_z", "vwap_dist", "dollar_volume_daily"),
    _costs: ("spread_cs", "funding_rate_last", "funding_bp", "basis"),
}
"""Each group and the base features it fills (log_return is filled before the groups run)."""


def _run_group(
    group: Callable[[AssetBars, Column, Context], None],
    bars: AssetBars,
    col: Column,
    ctx: Context,
) -> None:
    """One group's features, then the rolling z-scores of those listed in NORMALISED."""
    group(bars, col, ctx)
    for name in _GROUPS[group]:
        if name in NORMALISED:
            roll.zscore(col(name), ctx.config.norm_window, col(f"{name}_z"))


def fast_features(assets: list[AssetBars], config: FeatureConfig, bars_per_day: int) -> np.ndarray:
    """All features of all assets: a (bars, assets * len(FEATURE_NAMES)) Fortran-order array."""
    n, width = len(assets[0].close), len(FEATURE_NAMES)
    out = np.empty((n, len(assets) * width), order="F")
    columns = [partial(_column, out, j * width) for j in range(len(assets))]
    if n == 0:
        return out
    for bars, col in zip(assets, columns, strict=True):
        ret = col("log_return")
        ret[0] = np.nan
        np.log(bars.close[1:] / bars.close[:-1], out=ret[1:])
    market = np.mean([col("log_return") for col in columns], axis=0)
    ctx = Context(config, bars_per_day, columns[0]("log_return"), market)
    tasks = [
        partial(_run_group, group, bars, col, ctx)
        for bars, col in zip(assets, columns, strict=True)
        for group in _GROUPS
    ]
    with ThreadPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 1)) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
    return out


def _column(out: np.ndarray, offset: int, name: str) -> np.ndarray:
    return out[:, offset + SLOT[name]]
