"""Closed-form moments of the synthetic market (market.synthetic), for calibration.

Calibration inverts these instead of simulating: a bar's return is
r = sigma * A * exp(h) * sqrt(w) * z with A the regime x seasonality multiplier,
h the Gaussian log-volatility (E[exp(2h)] = 1), w the Student-t variance scale
shared by the assets and z normal, all independent. So the autocorrelation of
|r|, the mean traded notional and the realised cross-asset correlation follow
from the config without drawing a single number.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import expm
from scipy.special import gammaln

from market import _synthetic_kernels as kern
from market.synthetic_config import SyntheticConfig


def regime_levels(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Long-run regime shares and volatility multipliers (mean square 1), as generated."""
    shares = kern.regime_shares(np.asarray(config.mean_spell_hours))
    regime_vol = np.asarray(config.regime_vol)
    return shares, regime_vol / np.sqrt(shares @ np.square(regime_vol))


def crisis_variance_share(config: SyntheticConfig) -> float:
    """Share of all return variance that falls in crises (where correlations are floored)."""
    shares, levels = regime_levels(config)
    return float(shares[kern.CRISIS] * levels[kern.CRISIS] ** 2)


def mean_power_w(df: float, power: float) -> float:
    """E[w^power] for the Student-t variance scale w = (df - 2) / chi2(df)."""
    if power >= df / 2:
        return np.inf
    log = power * np.log((df - 2.0) / 2.0) + gammaln(df / 2.0 - power) - gammaln(df / 2.0)
    return float(np.exp(log))


def abs_moment_ratio(df: float) -> float:
    """c^2 = (E|sqrt(w) z|)^2 / E[w z^2]: how far |r| is from its own root mean square."""
    return mean_power_w(df, 0.5) ** 2 * 2.0 / np.pi


def _season(config: SyntheticConfig) -> np.ndarray:
    week = np.arange(kern.MINUTES_PER_WEEK)
    return kern.seasonality(week, config.intraday_vol_amplitude, config.weekend_activity)


def multiplier_autocov(config: SyntheticConfig, lags_minutes: np.ndarray) -> np.ndarray:
    """E[A_t A_{t+k}] at each lag: the regime chain's and the daily cycle's memory."""
    shares, levels = regime_levels(config)
    spells = np.asarray(config.mean_spell_hours)
    generator = kern.EXIT_PROBABILITIES / spells[:, None] - np.diag(1.0 / spells)
    regime = np.array(
        [(shares * levels) @ expm(generator * k / 60.0) @ levels for k in lags_minutes]
    )
    season = _season(config)
    cycle = np.array([np.mean(season * np.roll(season, -int(k))) for k in lags_minutes])
    return regime * cycle


def mean_multiplier(config: SyntheticConfig) -> float:
    """E[A]: below 1 because A varies while E[A^2] = 1."""
    shares, levels = regime_levels(config)
    return float(shares @ levels * _season(config).mean())


def abs_return_acf(
    config: SyntheticConfig,
    half_lives_minutes: np.ndarray,
    variances: np.ndarray,
    lags_minutes: np.ndarray,
    autocov: np.ndarray | None = None,
) -> np.ndarray:
    """Autocorrelation of |r| at the lags for log-vol components with these variances.

    acf(k) = c^2 (E[A_t A_t+k] exp(sum_i v_i rho_i(k)) - E[A]^2) / (exp(V) - c^2 E[A]^2)
    with rho_i(k) = 0.5 ** (k / half-life_i) and V = sum_i v_i. `autocov` is
    multiplier_autocov at the lags, if the caller already has it (a fit calls this
    many times with the same lags).
    """
    c2 = abs_moment_ratio(config.tail_df)
    mean_a = mean_multiplier(config)
    rho = 0.5 ** (np.asarray(lags_minutes, float)[:, None] / np.asarray(half_lives_minutes)[None])
    total = float(np.sum(variances))
    if autocov is None:
        autocov = multiplier_autocov(config, lags_minutes)
    numerator = autocov * np.exp(rho @ variances) - mean_a**2
    return c2 * numerator / (np.exp(total) - c2 * mean_a**2)


def log_vol_variances(config: SyntheticConfig, bar_minutes: float) -> np.ndarray:
    """Variance of each log-vol component as bars of this length see it.

    `vol_of_vol`**2 split by `vol_component_weights` is the variance at one-minute
    resolution; a component faster than the bar averages out within it (shrunk by
    the variance of its block mean), so hourly bars do not inherit minute-scale
    bursts as if each lasted an hour.
    """
    half_lives = np.asarray(config.vol_half_lives_minutes)
    weights = np.ones(len(half_lives))
    if config.vol_component_weights is not None:
        weights = np.asarray(config.vol_component_weights)
    shrink = kern.block_mean_variance(0.5 ** (1.0 / half_lives), bar_minutes)
    return config.vol_of_vol**2 * weights / weights.sum() * shrink


@functools.cache
def range_power_mean(power: float) -> float:
    """E[(B / E[B])^power] for B the high-low range of a unit Brownian bar (fixed-seed draw)."""
    rng = np.random.default_rng(0)
    end = rng.standard_normal(400_000)
    up, down = kern.bridge_extremes(rng, end, np.ones_like(end))
    return float(np.mean(((up - down) / kern.UNIT_RANGE_MEAN) ** power))


def mean_volume_intensity(config: SyntheticConfig, bar_minutes: float) -> float:
    """E[(range / normal range)^gamma x volume cycle]: mean notional / `notional_per_minute`.

    range / normal range = A exp(h) sqrt(w) B / E[B], its factors independent. The
    daily volume cycle peaks with the volatility cycle, so their product is
    averaged over the week together.
    """
    gamma = config.volume_vol_elasticity
    variance = float(log_vol_variances(config, bar_minutes).sum())
    shares, levels = regime_levels(config)
    week = np.arange(kern.MINUTES_PER_WEEK)
    cycle = kern.seasonality(week, config.intraday_volume_amplitude, 1.0)
    season = np.mean(_season(config) ** gamma * cycle)
    log_normal = np.exp(-gamma * variance + 0.5 * gamma**2 * variance)
    w_part = mean_power_w(config.tail_df, gamma / 2)
    regime = shares @ levels**gamma
    return float(regime * season * log_normal * w_part * range_power_mean(gamma))
