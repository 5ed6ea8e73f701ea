"""The reference feature engine: the 'ta' library for its indicators, pandas for the rest.

'ta' supplies RSI, MACD, Bollinger Bands, ATR, OBV and VWAP (fillna=False, so
warm-up rows stay NaN); pandas rolling/ewm computes everything else. It is the
readable definition the fast engine (market._features_fast) is tested against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import ta

from market._feature_spec import FEATURE_NAMES, NORMALISED, SLOT, AssetBars, FeatureConfig


def zscore(x: pd.Series, window: int) -> pd.Series:
    """(x - rolling mean) / rolling std over `window` rows ending at t; 0 where constant.

    "Constant" means a std at rounding level relative to the mean, so a flat
    window gives 0 rather than a ratio of rounding errors.
    """
    mean = x.rolling(window).mean()
    std = x.rolling(window).std()
    flat = std <= 1e-9 * (mean.abs() + 1e-12)
    return ((x - mean) / std).mask(flat, 0.0)


def _atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int) -> pd.Series:
    """ta ATR with its warm-up rows as NaN: 'ta' writes 0.0 there (and fails on short input)."""
    if len(close) < window:
        return pd.Series(np.nan, index=close.index)
    atr = ta.volatility.AverageTrueRange(high, low, close, window).average_true_range()
    return atr.mask(np.arange(len(atr)) < window - 1)


def _indicators(
    high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series, cfg: FeatureConfig
) -> dict[str, pd.Series]:
    """Every feature built on a 'ta' indicator (MACD values divided by close)."""
    macd = ta.trend.MACD(close, cfg.macd_slow, cfg.macd_fast, cfg.macd_signal)
    bands = ta.volatility.BollingerBands(close, cfg.bb_window, cfg.bb_dev)
    vwap = ta.volume.VolumeWeightedAveragePrice(high, low, close, volume, cfg.vwap_window)
    obv = ta.volume.OnBalanceVolumeIndicator(close, volume).on_balance_volume()
    atr = _atr(high, low, close, cfg.atr_window)
    return {
        "rsi": ta.momentum.RSIIndicator(close, cfg.rsi_window).rsi(),
        "macd": macd.macd() / close,
        "macd_signal": macd.macd_signal() / close,
        "macd_diff": macd.macd_diff() / close,
        "bb_pband": bands.bollinger_pband(),
        "bb_wband": bands.bollinger_wband(),
        "atr": atr,
        "atr_pct": atr / close,
        "obv_z": zscore(obv, cfg.volume_window),
        "vwap_dist": close / vwap.volume_weighted_average_price() - 1.0,
    }


def _corwin_schultz(high: pd.Series, low: pd.Series) -> pd.Series:
    """Corwin-Schultz half-spread from bars t-1 and t, negatives set to 0."""
    k = 3.0 - 2.0 * np.sqrt(2.0)
    beta = np.log(high / low) ** 2 + np.log(high.shift(1) / low.shift(1)) ** 2
    gamma = np.log(np.maximum(high, high.shift(1)) / np.minimum(low, low.shift(1))) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return spread.clip(lower=0.0) / 2.0


def _pandas_features(
    frame: pd.DataFrame, ret: pd.Series, first: pd.Series, market: pd.Series,
    cfg: FeatureConfig, bars_per_day: int,
) -> dict[str, pd.Series]:
    """Returns, volatility, volume, cost and funding features with pandas rolling windows."""
    close, volume = frame["close"], frame["volume"]
    realized = ret.rolling(cfg.vol_window).std()
    funding = frame["funding_rate"].where(frame["funding_event"] > 0).ffill()
    return {
        "log_return": ret,
        "realized_vol": realized,
        "daily_vol": realized * np.sqrt(bars_per_day),
        "volume_z": zscore(np.log1p(volume), cfg.volume_window),
        "dollar_volume_daily": (close * volume).rolling(bars_per_day).sum(),
        "spread_cs": _corwin_schultz(frame["high"], frame["low"]).rolling(cfg.spread_window).mean(),
        "funding_rate_last": funding,
        "funding_bp": funding * 1e4,
        "basis": frame["mark"] / close - 1.0,
        "corr_first": ret.rolling(cfg.corr_window).corr(first),
        "corr_market": ret.rolling(cfg.corr_window).corr(market),
    }


def ta_features(
    assets: list[AssetBars], index: pd.DatetimeIndex, config: FeatureConfig, bars_per_day: int
) -> np.ndarray:
    """All features of all assets: a (bars, assets * len(FEATURE_NAMES)) Fortran-order array."""
    frames = [pd.DataFrame(vars(bars), index=index) for bars in assets]
    returns = [np.log(frame["close"] / frame["close"].shift(1)) for frame in frames]
    market = pd.concat(returns, axis=1).mean(axis=1)
    width = len(FEATURE_NAMES)
    out = np.empty((len(index), len(assets) * width), order="F")
    for j, (frame, ret) in enumerate(zip(frames, returns, strict=True)):
        features = _pandas_features(frame, ret, returns[0], market, config, bars_per_day)
        features |= _indicators(
            frame["high"], frame["low"], frame["close"], frame["volume"], config
        )
        for name in NORMALISED:
            features[f"{name}_z"] = zscore(features[name], config.norm_window)
        for name, series in features.items():
            out[:, j * width + SLOT[name]] = series.to_numpy(dtype=np.float64)
    return out
