"""What the feature engines compute: names, the config, and the inputs they share.

Kept apart from market.features so both engines (market._features_ta and
market._features_fast) can import it while market.features imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

NORMALISED: tuple[str, ...] = (
    "log_return", "realized_vol", "macd", "macd_signal", "macd_diff", "bb_wband", "atr_pct",
    "vwap_dist", "spread_cs", "basis",
)
"""Features that also get a ``<name>_z`` column: a rolling z-score over norm_window bars."""

BASE_FEATURES: tuple[str, ...] = (
    "log_return", "realized_vol", "daily_vol", "rsi", "macd", "macd_signal", "macd_diff",
    "bb_pband", "bb_wband", "atr", "atr_pct", "obv_z", "vwap_dist", "volume_z",
    "dollar_volume_daily", "spread_cs", "funding_rate_last", "funding_bp", "basis",
    "corr_first", "corr_market",
)

FEATURE_NAMES: tuple[str, ...] = BASE_FEATURES + tuple(f"{name}_z" for name in NORMALISED)
"""Per-asset feature columns, in order."""

SLOT: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}


class FeatureConfig(BaseModel):
    """Indicator windows, in bars of the aligned frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rsi_window: int = Field(14, ge=2, description="RSI smoothing window (Wilder, alpha 1/n).")
    macd_fast: int = Field(12, ge=2, description="MACD fast EMA span.")
    macd_slow: int = Field(26, ge=2, description="MACD slow EMA span.")
    macd_signal: int = Field(9, ge=2, description="MACD signal-line EMA span.")
    bb_window: int = Field(20, ge=2, description="Bollinger Bands window.")
    bb_dev: float = Field(2.0, gt=0, description="Bollinger Bands half-width in std devs.")
    atr_window: int = Field(14, ge=2, description="Average True Range window (Wilder).")
    vwap_window: int = Field(14, ge=1, description="Rolling VWAP window.")
    vol_window: int = Field(60, ge=2, description="Realised-volatility window (std of returns).")
    spread_window: int = Field(
        60,
        ge=1,
        description="Bars the Corwin-Schultz half-spread is averaged over (1: the raw "
        "two-bar estimate, which is mostly 0 or noise on single bars).",
    )
    corr_window: int = Field(240, ge=3, description="Cross-asset return-correlation window.")
    norm_window: int = Field(
        1440, ge=3, description="Window of the <name>_z rolling z-scores (ends at t inclusive)."
    )
    volume_window: int = Field(
        1440, ge=3, description="Window of the OBV and log-volume rolling z-scores."
    )
    bars_per_day: int | None = Field(
        None,
        ge=1,
        description="Bars in a day, for daily_vol and dollar_volume_daily; None infers it "
        "from the index spacing (1440 for 1m bars).",
    )


@dataclass(frozen=True)
class AssetBars:
    """One asset's input columns as contiguous float64 arrays (finite, prices > 0)."""

    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    mark: np.ndarray
    funding_rate: np.ndarray
    funding_event: np.ndarray


@dataclass(frozen=True)
class Context:
    """What every asset's features share: the config and the cross-asset return series."""

    config: FeatureConfig
    bars_per_day: int
    first_return: np.ndarray
    market_return: np.ndarray
