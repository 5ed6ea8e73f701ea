"""Parameters of the synthetic market (see market.synthetic for the model)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.schema import (
    timeframe_ms,
    to_utc_timestamp,
)


class AssetProfile(BaseModel):
    """Level, volatility and liquidity of one asset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str = Field(description="Asset name, e.g. 'BTC'.")
    price: float = Field(gt=0, description="Price of the first bar's open (quote currency).")
    annual_vol: float = Field(
        gt=0,
        le=5,
        description="Long-run annualised diffusive volatility (0.55 = 55%); trends add a little.",
    )
    notional_per_minute: float = Field(
        gt=0, description="Mean traded notional per minute (quote currency); sets volume."
    )
    microstructure_noise: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Std of transient log-price noise (bid-ask bounce) relative to the asset's "
        "1-minute volatility: 1m returns get a lag-1 autocorrelation of about -n^2 / (1 + 2 n^2) "
        "(0.1: -0.01), as traded prices bounce between bid and ask.",
    )


KNOWN_ASSETS: tuple[AssetProfile, ...] = (
    AssetProfile(
        asset="BTC", price=30_000.0, annual_vol=0.2398, notional_per_minute=5.187e6,
        microstructure_noise=0.09424,
    ),
    AssetProfile(
        asset="ETH", price=1_904.0, annual_vol=0.2409, notional_per_minute=2.016e6,
        microstructure_noise=0.1024,
    ),
    AssetProfile(
        asset="SOL", price=25.54, annual_vol=0.6591, notional_per_minute=4.906e5,
        microstructure_noise=0.1339,
    ),
)
"""Fitted by `quantum data calibrate` to Binance USDT-M 1m data, 2023-07-18..08-17 (the
shared real sample, ../shared/realdata): levels, volatility, turnover and bid-ask bounce."""

GENERIC_ASSET = AssetProfile(asset="*", price=10.0, annual_vol=0.9, notional_per_minute=2e5)
"""Profile of an asset without its own: a volatile, thinly traded alt."""


class SyntheticConfig(BaseModel):
    """What to generate. Assets without a profile get ``generic_profile``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assets: tuple[str, ...] = Field(
        ("BTC", "ETH", "SOL"), description="Asset names; each becomes a linear USDT perp."
    )
    timeframe: str = Field("1m", description="Bar timeframe (ccxt notation: 1m, 5m, 1h ...).")
    days: float = Field(
        365.0, gt=0, le=3650, description="Length of the span in days (at most 10 years: memory)."
    )
    start: str = Field("2024-01-01", description="UTC open time of the first bar (on the grid).")
    seed: int = Field(7, description="Seed of the one random generator: same seed, same data.")
    profiles: tuple[AssetProfile, ...] = Field(
        KNOWN_ASSETS, description="Per-asset price, volatility and liquidity, by asset name."
    )
    generic_profile: AssetProfile = Field(
        GENERIC_ASSET, description="Profile of any asset missing from `profiles`."
    )
    correlations: tuple[tuple[str, str, float], ...] = Field(
        (("BTC", "ETH", 0.958), ("BTC", "SOL", 0.697), ("ETH", "SOL", 0.712)),
        description="Pairwise correlation of innovations outside crises (crypto moves together).",
    )
    generic_correlation: float = Field(
        0.65, gt=-1, lt=1, description="Correlation of any pair missing from `correlations`."
    )
    crisis_correlation: float = Field(
        0.9, gt=0, lt=1, description="Floor of pairwise correlations in a crisis (all sell off)."
    )
    mean_spell_hours: tuple[float, float, float] = Field(
        (200.0, 100.0, 36.0),
        description="Mean length in hours of calm, trending and crisis spells (persistence).",
    )
    regime_vol: tuple[float, float, float] = Field(
        (0.7, 1.0, 3.0),
        description="Volatility multiplier in calm, trending, crisis (mean square about 1).",
    )
    trend_sharpe: tuple[float, float] = Field(
        (8.0, 20.0),
        description="Range of a trend's annualised drift in units of the asset's volatility.",
    )
    crash_probability: float = Field(
        0.75, ge=0, le=1, description="Probability that a crisis drifts down rather than up."
    )
    annual_log_drift: float = Field(
        0.0,
        description="Long-run expected log return per year; calm spells carry the small drift "
        "that offsets crashes and volatility drag (crypto grinds up and crashes down), so a "
        "long sample neither collapses nor explodes.",
    )
    tail_df: float = Field(
        3.5,
        gt=2,
        description="Degrees of freedom of the Student-t innovations (fat tails); 3.5 gives "
        "30-day samples of 1m returns an excess kurtosis of about 110-190 (real: 175-255).",
    )
    vol_of_vol: float = Field(
        0.814, ge=0, le=1.5, description="Stationary std of log-volatility (clustering strength)."
    )
    vol_half_lives_minutes: tuple[float, ...] = Field(
        (2.0, 15.0, 120.0, 1440.0, 20160.0),
        min_length=1,
        description="Half-lives of the log-volatility components: long memory from mixed speeds.",
    )
    vol_component_weights: tuple[float, ...] | None = Field(
        (0.343, 0.333, 0.266, 0.0, 0.058),
        description="Share of the log-volatility variance per half-life (normalised to sum 1); "
        "None: equal shares. Fitted by `quantum data calibrate` to the decay of |r| "
        "autocorrelation.",
    )
    common_vol_share: float = Field(
        0.8, ge=0, le=1, description="Share of log-volatility variance common to all assets."
    )
    intraday_vol_amplitude: float = Field(
        0.222, ge=0, lt=1, description="Amplitude of the daily volatility cycle (peak 15:00 UTC)."
    )
    weekend_activity: float = Field(
        0.636, gt=0, le=1, description="Volatility multiplier on Saturdays and Sundays."
    )
    volume_vol_elasticity: float = Field(
        0.6, ge=0, description="gamma in volume ~ (bar range / normal range)^gamma."
    )
    volume_noise: float = Field(
        0.617, ge=0, description="Std of the lognormal noise of per-bar volume (mean 1)."
    )
    intraday_volume_amplitude: float = Field(
        0.306, ge=0, lt=1, description="Extra amplitude of the daily volume cycle (peak 15:00 UTC)."
    )
    premium_base: float = Field(
        -0.000413,
        description="Premium level without a trend. Binance's premium index sits a few bp below "
        "zero, so funding is mostly the interest rate, a little less when the premium dips "
        "under I - c.",
    )
    premium_trend_sensitivity: float = Field(
        3.16, ge=0, description="Premium per unit of recent drift per minute (leverage demand)."
    )
    premium_trend_half_life_minutes: float = Field(
        480.0, gt=0, description="Half-life of the EMA of returns that the premium follows."
    )
    premium_reversion_minutes: float = Field(
        251.0, gt=0, description="Mean-reversion time of the premium (arbitrageurs close it)."
    )
    premium_noise: float = Field(
        4.78e-05,
        ge=0,
        description="Std of the premium around its target at normal vol (scales with vol).",
    )
    premium_cap: float = Field(
        0.005, gt=0, lt=0.01, description="Largest absolute premium (keeps mark near price)."
    )
    mark_smoothing_minutes: float = Field(
        5.0, gt=0, description="Half-life of the premium EMA in the mark price (Binance: 5m)."
    )
    funding_interest: float = Field(
        0.0001, description="Interest component I of funding per 8 h (Binance: 0.01%)."
    )
    funding_clamp: float = Field(
        0.0005, ge=0, description="Clamp c of (I - P) in F = P + clamp(I - P, -c, c)."
    )
    funding_cap: float = Field(
        0.0075, gt=0, description="Largest absolute funding rate per event (Binance: 0.75%)."
    )

    @field_validator("assets")
    @classmethod
    def _check_assets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("assets is empty: name at least one asset, e.g. ('BTC',)")
        if any(not a or "/" in a or ":" in a for a in value) or len(set(value)) != len(value):
            raise ValueError(f"assets {value} must be distinct short names like 'BTC'")
        return value

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @field_validator("mean_spell_hours")
    @classmethod
    def _check_spells(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) < 1:
            raise ValueError(f"mean_spell_hours {value} must be at least 1 hour each")
        return value

    @field_validator("trend_sharpe")
    @classmethod
    def _check_trend(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError(f"trend_sharpe {value} must be a range (low, high) with 0 <= low")
        return value

    @field_validator("vol_half_lives_minutes")
    @classmethod
    def _check_half_lives(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if min(value) <= 0:
            raise ValueError(f"vol_half_lives_minutes {value} must all be positive")
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> SyntheticConfig:
        weights = self.vol_component_weights
        if weights is not None and (
            len(weights) != len(self.vol_half_lives_minutes)
            or min(weights) < 0
            or sum(weights) <= 0
        ):
            raise ValueError(
                f"vol_component_weights {weights} must be one non-negative weight per half-life "
                f"{self.vol_half_lives_minutes}, not all zero (None: equal weights)"
            )
        return self

    @model_validator(mode="after")
    def _check_span(self) -> SyntheticConfig:
        try:
            start = to_utc_timestamp(self.start)
        except ValueError as exc:
            raise ValueError(f"start {self.start!r} is not a date, e.g. '2024-01-01'") from exc
        if start.as_unit("ns").value % (timeframe_ms(self.timeframe) * 1_000_000):
            raise ValueError(f"start {self.start} is not on the {self.timeframe} bar grid")
        if n_bars(self) < 2:
            raise ValueError(f"{self.days} days of {self.timeframe} bars is fewer than 2 bars")
        for crisis in (False, True):
            correlation_matrix(self, crisis=crisis)
        return self

    def profile(self, asset: str) -> AssetProfile:
        """The profile of `asset`: its own if configured, else the generic one."""
        own = {p.asset: p for p in self.profiles}
        return own.get(asset, self.generic_profile)


def n_bars(config: SyntheticConfig) -> int:
    """Number of bars in the span."""
    return round(config.days * 86_400_000 / timeframe_ms(config.timeframe))


def correlation_matrix(config: SyntheticConfig, *, crisis: bool) -> np.ndarray:
    """Target correlation of innovations; its Cholesky factor proves it is valid.

    Raises ValueError when the configured correlations are not jointly possible.
    """
    pairs = {frozenset((a, b)): rho for a, b, rho in config.correlations}
    k = len(config.assets)
    corr = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            pair = frozenset((config.assets[i], config.assets[j]))
            rho = pairs.get(pair, config.generic_correlation)
            corr[i, j] = corr[j, i] = max(rho, config.crisis_correlation) if crisis else rho
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            f"correlations for {config.assets} are not a valid correlation matrix "
            "(not positive definite); make them more alike"
        ) from exc
    return corr


DEFAULT_CONFIG = SyntheticConfig()
"""BTC, ETH and SOL, one year of 1-minute bars from 2024-01-01, seed 7, calibrated to the
shared real sample (README: Calibrated synthetic market); the regimes, tails and caps,
which 30 days cannot identify, are set by hand."""
