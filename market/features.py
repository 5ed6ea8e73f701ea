"""Features of the aligned market frame, computed with past data only.

Two engines compute the same columns: ``"ta"`` uses the 'ta' library for every
indicator it has (RSI, MACD, Bollinger Bands, ATR, OBV, VWAP) and pandas for the
rest; ``"fast"`` (the default) reimplements all of it as numba kernels
(market/_feature_kernels.py) and agrees with ``"ta"`` to 1e-9. Tests perturb the
future and check no feature at or before t moves.

Per asset (FEATURE_NAMES):

- raw, for the simulator's costs: ``atr`` (price units), ``daily_vol`` (realised
  volatility scaled to a day), ``dollar_volume_daily`` (traded notional over the
  last day), ``spread_cs`` (Corwin-Schultz half-spread, averaged over
  ``spread_window`` bars), ``funding_rate_last`` (last known funding rate; also as
  ``funding_bp`` in basis points for the policy: a z-score of a step function that
  rarely moves would be numerically meaningless)
- scale-free indicators: ``log_return``, ``realized_vol``, ``rsi``, ``macd`` /
  ``macd_signal`` / ``macd_diff`` (divided by close), ``bb_pband``, ``bb_wband``,
  ``atr_pct`` (ATR / close), ``obv_z`` and ``volume_z`` (rolling z-scores of OBV and
  log volume over ``volume_window``), ``vwap_dist`` (close / VWAP - 1), ``basis``
  (mark / close - 1), ``corr_first`` and ``corr_market`` (rolling correlation of
  the asset's returns with the first asset's and with the equal-weighted market's)
- ``<name>_z`` for each of NORMALISED: a rolling z-score over ``norm_window`` bars
  ending at t (never a whole-dataset normalisation, which would leak the future).
  A constant window gives 0.

Warm-up rows are NaN (never a fake 0: 'ta' returns 0.0 for ATR's warm-up; it is
masked here).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from market import _feature_kernels as k
from market.schema import ALIGNED_FIELDS

NORMALISED = (
    "log_return", "realized_vol", "macd", "macd_signal", "macd_diff", "bb_wband", "atr_pct",
    "vwap_dist", "spread_cs", "basis",
)  # fmt: skip
_BASE = (
    "log_return", "realized_vol", "daily_vol", "rsi", "macd", "macd_signal", "macd_diff",
    "bb_pband", "bb_wband", "atr", "atr_pct", "obv_z", "vwap_dist", "volume_z",
    "dollar_volume_daily", "spread_cs", "funding_rate_last", "funding_bp", "basis",
    "corr_first", "corr_market",
)  # fmt: skip
FEATURE_NAMES: tuple[str, ...] = _BASE + tuple(f"{name}_z" for name in NORMALISED)


class FeatureConfig(BaseModel):
    """Indicator windows, in bars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rsi_window: int = Field(14, ge=2, description="RSI smoothing window.")
    macd_fast: int = Field(12, ge=2, description="MACD fast EMA span.")
    macd_slow: int = Field(26, ge=2, description="MACD slow EMA span.")
    macd_signal: int = Field(9, ge=2, description="MACD signal EMA span.")
    bb_window: int = Field(20, ge=2, description="Bollinger Bands window.")
    bb_dev: float = Field(2.0, gt=0, description="Bollinger Bands width in standard deviations.")
    atr_window: int = Field(14, ge=2, description="ATR window.")
    vwap_window: int = Field(14, ge=2, description="Rolling VWAP window.")
    vol_window: int = Field(60, ge=2, description="Realised-volatility window.")
    spread_window: int = Field(60, ge=1, description="Averaging window of the spread estimate.")
    corr_window: int = Field(240, ge=3, description="Cross-asset correlation window.")
    norm_window: int = Field(1440, ge=3, description="Window of the rolling z-scores.")
    volume_window: int = Field(1440, ge=3, description="Window of the volume and OBV z-scores.")
    bars_per_day: int = Field(1440, ge=1, description="Bars in a day (1440 for 1m bars).")


Engine = Literal["ta", "fast"]


def _check(aligned: pd.DataFrame) -> list[str]:
    if not isinstance(aligned.columns, pd.MultiIndex) or aligned.columns.nlevels != 2:
        raise ValueError("features need the aligned frame: columns (asset, field)")
    assets = list(aligned.columns.get_level_values(0).unique())
    for asset in assets:
        missing = [f for f in ALIGNED_FIELDS if (asset, f) not in aligned.columns]
        if missing:
            raise ValueError(f"aligned frame lacks {missing} for {asset}")
    if not isinstance(aligned.index, pd.DatetimeIndex) or not aligned.index.is_monotonic_increasing:
        raise ValueError("aligned frame index must be increasing timestamps")
    if aligned.index.has_duplicates:
        raise ValueError("aligned frame has duplicate timestamps")
    return assets


def compute_features(
    aligned: pd.DataFrame, config: FeatureConfig | None = None, engine: Engine = "fast"
) -> pd.DataFrame:
    """Features of every asset: columns (asset, feature) in FEATURE_NAMES order, float64.

    The fast engine runs on a thread pool (its kernels release the GIL).
    """
    cfg = config or FeatureConfig()
    if engine not in ("fast", "ta"):
        raise ValueError(f"unknown engine {engine!r}; use 'fast' or 'ta'")
    assets = _check(aligned)
    values = aligned.to_numpy(dtype=np.float64)
    column = {key: i for i, key in enumerate(aligned.columns)}
    fields = {a: {f: values[:, column[(a, f)]] for f in ALIGNED_FIELDS} for a in assets}
    close = np.stack([fields[a]["close"] for a in assets], axis=1)
    log_ret = np.full_like(close, np.nan)
    log_ret[1:] = np.log(close[1:] / close[:-1])
    market = log_ret.mean(axis=1)
    width = len(FEATURE_NAMES)
    out = np.empty((len(aligned), len(assets) * width), order="F")
    slot = {name: i for i, name in enumerate(FEATURE_NAMES)}
    if engine == "ta":
        for j, asset in enumerate(assets):
            frame = pd.DataFrame(fields[asset], index=aligned.index)
            cols = _ta_asset(frame, log_ret[:, j], log_ret[:, 0], market, cfg)
            for name, series in cols.items():
                out[:, j * width + slot[name]] = series
    else:
        _fast_engine(fields, assets, log_ret, market, cfg, out, slot)
    index = pd.MultiIndex.from_product([assets, FEATURE_NAMES], names=["asset", "feature"])
    return pd.DataFrame(out, index=aligned.index, columns=index, copy=False)


def _fast_engine(fields, assets, log_ret, market, cfg: FeatureConfig, out, slot) -> None:
    """Base features per asset, then every rolling z-score, as tasks on a thread pool."""
    width = len(FEATURE_NAMES)

    def base(j: int) -> dict[str, np.ndarray]:
        return _fast_asset(fields[assets[j]], log_ret[:, j], log_ret[:, 0], market, cfg)

    def zscore(task: tuple[int, str, np.ndarray, int]) -> None:
        j, name, series, window = task
        out[:, j * width + slot[name]] = k.zscore(series, window)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        tasks = []
        for j, cols in enumerate(pool.map(base, range(len(assets)))):
            for name, series in cols.items():
                if name in slot:
                    out[:, j * width + slot[name]] = series
            tasks += [(j, f"{name}_z", cols[name], cfg.norm_window) for name in NORMALISED]
            tasks += [(j, "obv_z", cols["obv"], cfg.volume_window)]
            tasks += [(j, "volume_z", cols["log_volume"], cfg.volume_window)]
        list(pool.map(zscore, tasks))


def _fast_asset(
    fields: dict[str, np.ndarray], log_ret, first, market, cfg: FeatureConfig
) -> dict[str, np.ndarray]:
    h, low, c, v = (np.ascontiguousarray(fields[f]) for f in ("high", "low", "close", "volume"))
    mark, rate, event = (
        np.ascontiguousarray(fields[f]) for f in ("mark", "funding_rate", "funding_event")
    )
    log_ret, first = np.ascontiguousarray(log_ret), np.ascontiguousarray(first)
    f: dict[str, np.ndarray] = {"log_return": log_ret}
    f["realized_vol"] = k.rolling_std(log_ret, cfg.vol_window, 1)
    f["daily_vol"] = f["realized_vol"] * np.sqrt(cfg.bars_per_day)
    f["rsi"] = k.rsi(c, cfg.rsi_window)
    fast = k.ewm(c, 2.0 / (cfg.macd_fast + 1), cfg.macd_fast)
    slow = k.ewm(c, 2.0 / (cfg.macd_slow + 1), cfg.macd_slow)
    macd = fast - slow
    signal = k.ewm(macd, 2.0 / (cfg.macd_signal + 1), cfg.macd_signal)
    f["macd"], f["macd_signal"], f["macd_diff"] = macd / c, signal / c, (macd - signal) / c
    mavg, mstd = k.rolling_mean(c, cfg.bb_window), k.rolling_std(c, cfg.bb_window, 0)
    hband, lband = mavg + cfg.bb_dev * mstd, mavg - cfg.bb_dev * mstd
    width = hband - lband
    with np.errstate(divide="ignore", invalid="ignore"):
        f["bb_pband"] = np.where(width != 0, (c - lband) / width, np.nan)
    f["bb_wband"] = width / mavg * 100
    f["atr"] = k.atr(h, low, c, cfg.atr_window)
    f["atr_pct"] = f["atr"] / c
    f["obv"] = k.obv(c, v)
    typical = (h + low + c) / 3.0
    vwap = k.rolling_sum(typical * v, cfg.vwap_window) / k.rolling_sum(v, cfg.vwap_window)
    f["vwap_dist"] = c / vwap - 1.0
    f["log_volume"] = np.log1p(v)
    f["dollar_volume_daily"] = k.rolling_sum(c * v, cfg.bars_per_day)
    f["spread_cs"] = k.rolling_mean(k.corwin_schultz(h, low), cfg.spread_window)
    f["funding_rate_last"] = k.forward_fill_events(rate, event)
    f["funding_bp"] = f["funding_rate_last"] * 1e4
    f["basis"] = mark / c - 1.0
    f["corr_first"] = k.rolling_corr(log_ret, first, cfg.corr_window)
    f["corr_market"] = k.rolling_corr(log_ret, market, cfg.corr_window)
    return f


def _zscore_pandas(x: pd.Series, window: int) -> np.ndarray:
    mean = x.rolling(window, min_periods=window).mean()
    std = x.rolling(window, min_periods=window).std()
    tol = 1e-9 * (mean.abs() + 1e-12)
    z = np.where(std > tol, (x - mean) / std.where(std > tol, 1.0), 0.0)
    return np.where(std.notna(), z, np.nan)


def _ta_asset(frame, log_ret, first, market, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    import ta

    h, low, c, v = frame["high"], frame["low"], frame["close"], frame["volume"]
    ret = pd.Series(log_ret, index=frame.index)
    f: dict[str, np.ndarray] = {"log_return": log_ret}
    f["realized_vol"] = ret.rolling(cfg.vol_window, min_periods=cfg.vol_window).std().to_numpy()
    f["daily_vol"] = f["realized_vol"] * np.sqrt(cfg.bars_per_day)
    f["rsi"] = ta.momentum.RSIIndicator(c, cfg.rsi_window).rsi().to_numpy()
    macd = ta.trend.MACD(c, cfg.macd_slow, cfg.macd_fast, cfg.macd_signal)
    f["macd"] = (macd.macd() / c).to_numpy()
    f["macd_signal"] = (macd.macd_signal() / c).to_numpy()
    f["macd_diff"] = (macd.macd_diff() / c).to_numpy()
    bands = ta.volatility.BollingerBands(c, cfg.bb_window, cfg.bb_dev)
    f["bb_pband"] = bands.bollinger_pband().to_numpy()
    f["bb_wband"] = bands.bollinger_wband().to_numpy()
    atr = ta.volatility.AverageTrueRange(h, low, c, cfg.atr_window).average_true_range()
    atr = atr.to_numpy().copy()
    atr[: cfg.atr_window - 1] = np.nan  # ta writes 0.0 for its warm-up rows
    f["atr"], f["atr_pct"] = atr, atr / c.to_numpy()
    obv = ta.volume.OnBalanceVolumeIndicator(c, v).on_balance_volume()
    f["obv_z"] = _zscore_pandas(obv, cfg.volume_window)
    vwap = ta.volume.VolumeWeightedAveragePrice(h, low, c, v, cfg.vwap_window)
    f["vwap_dist"] = (c / vwap.volume_weighted_average_price() - 1.0).to_numpy()
    f["volume_z"] = _zscore_pandas(np.log1p(v), cfg.volume_window)
    f["dollar_volume_daily"] = (c * v).rolling(cfg.bars_per_day).sum().to_numpy()
    f["spread_cs"] = _corwin_schultz_pandas(h, low).rolling(cfg.spread_window).mean().to_numpy()
    events = frame["funding_event"] > 0
    f["funding_rate_last"] = frame["funding_rate"].where(events).ffill().to_numpy()
    f["funding_bp"] = f["funding_rate_last"] * 1e4
    f["basis"] = (frame["mark"] / c - 1.0).to_numpy()
    f["corr_first"] = ret.rolling(cfg.corr_window).corr(pd.Series(first, index=frame.index))
    f["corr_market"] = ret.rolling(cfg.corr_window).corr(pd.Series(market, index=frame.index))
    f["corr_first"], f["corr_market"] = (np.asarray(f[n]) for n in ("corr_first", "corr_market"))
    for name in NORMALISED:
        f[f"{name}_z"] = _zscore_pandas(pd.Series(f[name], index=frame.index), cfg.norm_window)
    return f


def _corwin_schultz_pandas(high: pd.Series, low: pd.Series) -> pd.Series:
    k = 3.0 - 2.0 * np.sqrt(2.0)
    beta = np.log(high / low) ** 2 + np.log(high.shift() / low.shift()) ** 2
    gamma = np.log(np.maximum(high, high.shift()) / np.minimum(low, low.shift())) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return spread.clip(lower=0.0) / 2.0
