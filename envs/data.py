"""Market data as the simulator reads it: contiguous arrays built once per dataset.

`MarketArrays.from_frames` takes the aligned frame (market.loader) and its
features (market.features) and stacks what the kernels need:

- ``mkt``   (bars, assets, N_MKT + assets) float64: prices, volume, funding, the cost
  inputs (ATR, half-spread, daily volatility and notional, trailing volume, last
  known funding rate, bars to the next funding event) and the risk shield's inputs
  (each asset's volatility and trend regime, its row of the one-day covariance matrix
  of log returns over the trailing day); all computed from the past only (funding
  event times come from the public funding schedule), so the arrays of a prefix of the
  bars equal the first rows of the whole history's.
- ``feats`` (bars, assets, features) float32: the observed features.
- ``days``  (bars,) int64: UTC day number of each bar (daily loss limit).
- ``text``  optional: headlines aligned to the bars (news.align.AlignedNews) for the
  `text` observation.

Bars before every feature is defined (indicator warm-up) are not usable as a
decision point; `first_valid` is the first that is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

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

if TYPE_CHECKING:
    from news.align import AlignedNews

OBS_FEATURES: tuple[str, ...] = (
    "log_return_z",
    "realized_vol_z",
    "rsi",
    "macd_diff_z",
    "bb_pband",
    "bb_wband_z",
    "atr_pct_z",
    "obv_z",
    "volume_z",
    "funding_bp",
    "basis_z",
    "corr_market",
)
"""Per-asset features the policy observes (names from market.features)."""

_RAW = {
    "atr": M_ATR,
    "spread_cs": M_HALF_SPREAD,
    "daily_vol": M_DAILY_VOL,
    "dollar_volume_daily": M_DAILY_NOTIONAL,
    "funding_rate_last": M_FUNDING_LAST,
}


@dataclass(frozen=True)
class MarketArrays:
    """Arrays the kernels read (see module docstring); immutable after construction."""

    assets: tuple[str, ...]
    features: tuple[str, ...]
    timestamps: np.ndarray
    mkt: np.ndarray
    feats: np.ndarray
    days: np.ndarray
    first_valid: int
    text: AlignedNews | None = None
    """Headlines aligned to these bars for the `text` observation (envs.news_features);
    None: the observation has no text part."""

    def __post_init__(self) -> None:
        # the kernels are compiled for C-contiguous arrays: a strided `feats` (np.stack on the
        # last axis puts the asset axis outermost) makes every observation a gather of
        # window x assets short rows, several times slower than one contiguous block copy
        for name in ("mkt", "feats", "days"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name)))

    @property
    def n_bars(self) -> int:
        return self.mkt.shape[0]

    @property
    def n_assets(self) -> int:
        return self.mkt.shape[1]

    @classmethod
    def from_aligned(cls, aligned: pd.DataFrame) -> MarketArrays:
        """Compute the features of an aligned frame (market.features) and stack both."""
        from market.features import compute_features

        return cls.from_frames(aligned, compute_features(aligned))

    @classmethod
    def from_frames(
        cls,
        aligned: pd.DataFrame,
        features: pd.DataFrame,
        obs_features: tuple[str, ...] = OBS_FEATURES,
        volume_window: int = 1440,
    ) -> MarketArrays:
        """Stack an aligned frame and its features (same index) into kernel arrays."""
        if not aligned.index.equals(features.index):
            raise ValueError("features must share the aligned frame's index")
        assets = tuple(aligned.columns.get_level_values("asset").unique())
        if not assets:
            raise ValueError("the aligned frame holds no assets")
        missing = sorted(
            {f for f in (*obs_features, *_RAW) if (assets[0], f) not in features.columns}
        )
        if missing:
            raise ValueError(f"features frame lacks {missing}; compute them with market.features")
        n, n_assets = len(aligned), len(assets)
        mkt = np.zeros((n, n_assets, N_MKT + n_assets))
        fields = {
            "open": M_OPEN, "high": M_HIGH, "low": M_LOW, "close": M_CLOSE, "mark": M_MARK,
            "volume": M_VOLUME, "funding_rate": M_FUNDING, "funding_event": M_EVENT,
        }
        for j, asset in enumerate(assets):
            for field, slot in fields.items():
                mkt[:, j, slot] = aligned[(asset, field)].to_numpy(dtype=np.float64)
            for name, slot in _RAW.items():
                mkt[:, j, slot] = features[(asset, name)].to_numpy(dtype=np.float64)
            volume = aligned[(asset, "volume")]
            mkt[:, j, M_AVG_VOLUME] = volume.rolling(volume_window, min_periods=1).mean().to_numpy()
            mkt[:, j, M_NEXT_EVENT] = _bars_to_next_event(mkt[:, j, M_EVENT])
        closes = np.stack([mkt[:, j, M_CLOSE] for j in range(n_assets)], axis=1)
        stamps = aligned.index.as_unit("ns").asi8
        mkt[:, :, M_COV:] = daily_covariance(closes, bars_per_day(stamps))
        for j in range(n_assets):
            mkt[:, j, M_VOL_CODE], mkt[:, j, M_TREND_CODE] = regime_codes(closes[:, j])
        # the raw estimate (undefined or negative high-low estimates read as 0); the kernels
        # bound it by the env's CostConfig, so one dataset serves envs with other cost settings
        spread = mkt[:, :, M_HALF_SPREAD]
        mkt[:, :, M_HALF_SPREAD] = np.maximum(np.nan_to_num(spread, nan=0.0), 0.0)
        feats = np.stack(
            [
                features.xs(f, axis=1, level=1)[list(assets)].to_numpy(np.float32)
                for f in obs_features
            ],
            axis=-1,
        )
        first_valid = _first_valid(mkt, feats)
        feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)
        days = stamps // (86_400 * 10**9)
        return cls(assets, tuple(obs_features), stamps, mkt, feats, days, first_valid)


def bars_per_day(stamps: np.ndarray) -> int:
    """Bars in a day at the data's bar interval (its most common one)."""
    if len(stamps) < 2:
        return 1440
    step = int(np.median(np.diff(stamps)))
    return max(1, round(86_400 * 10**9 / step)) if step > 0 else 1440


def daily_covariance(close: np.ndarray, window: int) -> np.ndarray:
    """(bars, assets, assets): at each bar the covariance of the assets' log returns over
    the trailing ``window`` bars (fewer at the start), times ``window``: a one-day
    covariance when ``window`` is a day of bars. Running sums accumulate in bar order, so
    each bar's value depends on earlier bars only and a prefix gives the same numbers;
    under two returns (or a non-positive price) it is 0."""
    n, k = close.shape
    returns = np.zeros((n, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns[1:] = np.diff(np.log(close), axis=0)
    returns = np.nan_to_num(returns, nan=0.0, posinf=0.0, neginf=0.0)
    first = np.cumsum(returns, axis=0)
    second = np.cumsum(returns[:, :, None] * returns[:, None, :], axis=0)
    bars = np.arange(n)
    count = np.minimum(bars, window).astype(np.float64)
    back = bars - window
    s1 = first - np.where(back[:, None] >= 0, first[np.maximum(back, 0)], 0.0)
    s2 = second - np.where(back[:, None, None] >= 0, second[np.maximum(back, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / count[:, None]
        cov = (s2 - count[:, None, None] * mean[:, :, None] * mean[:, None, :]) / (
            count[:, None, None] - 1.0)
    cov[count < 2] = 0.0
    return np.nan_to_num(cov, nan=0.0) * window


def regime_codes(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The asset's volatility and trend regime codes per bar (risk.regimes, past only);
    0 (unknown) where its prices are not all positive and finite."""
    from risk.regimes import RegimeConfig, trend_codes, vol_codes

    if not (np.isfinite(close).all() and (close > 0).all()):
        zero = np.zeros(len(close))
        return zero, zero.copy()
    lp = pd.Series(np.log(close))
    config = RegimeConfig()
    return (vol_codes(lp, config).astype(np.float64),
            trend_codes(lp, config).astype(np.float64))


def _bars_to_next_event(events: np.ndarray) -> np.ndarray:
    """For each bar, how many bars until the next funding event. After the last event in
    the data the schedule goes on at its last interval (the next payment time is public
    before it happens), so a bar's value does not depend on how much data follows it:
    live trading, which holds no future bars, sees what a backtest sees. Without two
    events the schedule is unknown: inf."""
    n = len(events)
    out = np.full(n, np.inf)
    idx = np.flatnonzero(events > 0)
    if len(idx):
        bars = np.arange(n)
        nxt = np.searchsorted(idx, bars, side="right")
        ok = nxt < len(idx)
        out[ok] = idx[nxt[ok]] - bars[ok]
        if len(idx) >= 2:
            interval = idx[-1] - idx[-2]
            tail = bars[idx[-1]:]
            out[idx[-1]:] = interval - (tail - idx[-1]) % interval
    return out


def _first_valid(mkt: np.ndarray, feats: np.ndarray) -> int:
    """First bar from which every cost input and observed feature is finite."""
    needed = [M_ATR, M_DAILY_VOL, M_DAILY_NOTIONAL, M_FUNDING_LAST]
    ok = np.isfinite(mkt[:, :, needed]).all(axis=(1, 2)) & np.isfinite(feats).all(axis=(1, 2))
    ok &= (mkt[:, :, M_ATR] > 0).all(axis=1)
    bad = np.flatnonzero(~ok)
    if len(bad) == 0:
        return 0
    if bad[-1] == len(ok) - 1:
        raise ValueError("features are undefined at the last bar: the data is too short or broken")
    return int(bad[-1]) + 1


def load_market_arrays(
    root: str,
    exchange: str,
    symbols: list[str] | tuple[str, ...],
    timeframe: str = "1m",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> MarketArrays:
    """Stored data (market/ parquet store) -> aligned frame -> features -> MarketArrays.

    Unknown symbols, empty spans and data too short for the features raise
    ValueError (DataValidationError) naming what is missing.
    """
    from market.loader import load_aligned
    from market.store import ParquetStore

    aligned = load_aligned(ParquetStore(root), exchange, list(symbols), timeframe, start, end)
    return MarketArrays.from_aligned(aligned)
