"""Fit when and how strongly the synthetic market trades: daily cycles, weekends, volume.

The generator's activity shape is (1 + a cos(2 pi (hour - 15) / 24)) on weekdays,
times a weekend factor on Saturdays and Sundays (market._synthetic_kernels.
seasonality); volume is (bar range / normal range)^gamma x lognormal noise x its
own daily cycle. Each parameter is read off the data directly:

- `intraday_vol_amplitude`: the first daily Fourier coefficient (phase 15:00 UTC)
  of the weekday hourly root-mean-square return, relative to its mean;
- `weekend_activity`: weekend over weekday root-mean-square return;
- `volume_vol_elasticity`: the slope of log notional on log high-low range;
- `volume_noise`: the residual std of that regression, less the daily cycle's part;
- `intraday_volume_amplitude`: the hourly notional's cycle less what the volatility
  cycle already passes on through gamma.

Assets are pooled (each normalised to its own level); the generator has one shape.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_PEAK_HOUR = 15.0


def _daily_amplitude(profile: pd.Series) -> float:
    """a in profile ~ 1 + a cos(2 pi (hour - 15) / 24), by least squares over 24 hours."""
    hours = profile.index.to_numpy(dtype=float)
    wave = np.cos(2.0 * np.pi * (hours - _PEAK_HOUR) / 24.0)
    return float(2.0 * np.mean(profile.to_numpy() * wave) / np.mean(profile.to_numpy()))


def fit_activity(aligned: pd.DataFrame, returns: pd.DataFrame) -> dict[str, float]:
    """SyntheticConfig updates for seasonality and volume (see module docstring)."""
    index = returns.index
    weekend = index.day_of_week >= 5
    squares = (returns / returns.std()) ** 2  # each asset at unit variance, then pooled
    pooled = squares.mean(axis=1)
    hourly = pooled[~weekend].groupby(index[~weekend].hour).mean() ** 0.5
    vol_amplitude = float(np.clip(_daily_amplitude(hourly), 0.0, 0.9))
    ratio = np.sqrt(pooled[weekend].mean() / pooled[~weekend].mean()) if weekend.any() else 1.0
    slopes, residuals, volume_amplitudes = [], [], []
    for asset in returns.columns:
        frame = aligned[asset].reindex(index)
        ok = (frame["filled"] == 0) & (frame["volume"] > 0) & (frame["high"] > frame["low"])
        log_range = np.log(np.log(frame["high"][ok] / frame["low"][ok]))
        log_notional = np.log(frame["volume"][ok] * frame["close"][ok])
        slope, intercept = np.polyfit(log_range.to_numpy(), log_notional.to_numpy(), 1)
        slopes.append(slope)
        residuals.append(float(np.var(log_notional - slope * log_range - intercept)))
        notional = frame["volume"] * frame["close"]
        weekday = notional[~weekend]
        volume_amplitudes.append(_daily_amplitude(weekday.groupby(weekday.index.hour).mean()))
    gamma = float(np.clip(np.median(slopes), 0.0, 3.0))
    volume_amplitude = float(np.clip(np.median(volume_amplitudes) - gamma * vol_amplitude, 0, 0.9))
    cycle_var = 0.5 * volume_amplitude**2  # variance of log(1 + b cos), to first order
    return {
        "intraday_vol_amplitude": round(vol_amplitude, 3),
        "weekend_activity": round(float(np.clip(ratio, 0.2, 1.0)), 3),
        "volume_vol_elasticity": round(gamma, 3),
        "volume_noise": round(float(np.sqrt(max(np.median(residuals) - cycle_var, 0.01))), 3),
        "intraday_volume_amplitude": round(volume_amplitude, 3),
    }
