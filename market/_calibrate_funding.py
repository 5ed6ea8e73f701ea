"""Fit the synthetic funding model (premium level, noise, persistence) to funding rates.

Binance-style funding F = P + clamp(I - P, -c, c) hides the 8-hour average premium
P whenever it lies within c of the interest rate I (F is then exactly I), and
reveals it otherwise (P = F - c below, F + c above). So the rates are a censored
sample of P: a normal law for P is fitted by maximum likelihood over both kinds
of event, and the generator's premium is set to reproduce it:

- `funding_interest`: the most common rate, when it is common (the interest floor);
- `premium_base`: the fitted mean of P;
- `premium_reversion_minutes`: from the lag-1 autocorrelation of consecutive rates,
  read as that of 8-hour block means of an AR(1) premium (censoring damps it a
  little, so this errs towards less persistence);
- `premium_noise`: the stationary std whose 8-hour averages have the fitted
  variance, after the part explained by the trend term (sensitivity x recent
  drift, computed on the data's own returns). The data cannot separate the two,
  so the configured sensitivity is kept unless the trend alone would explain more
  than half of the variance; then it is scaled down to half.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize
from scipy.stats import norm

from market import _synthetic_kernels as kern
from market.schema import FUNDING_INTERVAL_MS
from market.synthetic_config import SyntheticConfig

_MIN_REVEALED = 5
"""Fewer events off the interest rate than this leave the premium's spread unidentified."""
_REVERSION_RANGE = (10.0, 4320.0)
"""Premium mean-reversion times considered, in minutes (10 minutes to 3 days)."""
_TREND_SHARE = 0.5


def fit_funding(
    funding: Mapping[str, pd.Series],
    returns: pd.DataFrame,
    config: SyntheticConfig,
    bar_minutes: float,
) -> dict[str, float]:
    """SyntheticConfig updates for the funding model; {} when the rates identify nothing."""
    series = [s.dropna().to_numpy(dtype=float) for s in funding.values() if len(s.dropna()) > 2]
    if not series:
        return {}
    rates = np.concatenate(series)
    interest = _interest(rates, config.funding_interest)
    clamp = config.funding_clamp
    fitted = _censored_normal(rates, interest, clamp)
    if fitted is None:
        return {"funding_interest": interest}
    mean, std = fitted
    interval = FUNDING_INTERVAL_MS / 60_000 / bar_minutes  # bars per funding interval
    acf1 = float(np.average([_acf1(s) for s in series], weights=[len(s) for s in series]))
    phi = _reversion_phi(acf1, interval)
    sensitivity, trend_var = _trend(returns, config, bar_minutes, interval, std**2)
    noise_var = max(std**2 - trend_var, 0.0) / float(kern.block_mean_variance(phi, interval))
    return {
        "funding_interest": interest,
        "premium_base": _round(mean),
        "premium_noise": _round(np.sqrt(noise_var)),
        "premium_reversion_minutes": _round(-bar_minutes / np.log(phi)),
        "premium_trend_sensitivity": _round(sensitivity),
    }


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def _acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    var = float(np.mean(x * x))
    return float(np.mean(x[:-1] * x[1:]) / var) if var > 0 else 0.0


def _interest(rates: np.ndarray, default: float) -> float:
    """The modal rate if at least 10% of events sit exactly on it, else `default`."""
    values, counts = np.unique(np.round(rates, 10), return_counts=True)
    best = int(np.argmax(counts))
    return float(values[best]) if counts[best] >= 0.1 * len(rates) else default


def _censored_normal(
    rates: np.ndarray, interest: float, clamp: float
) -> tuple[float, float] | None:
    """Mean and std of the 8-hour average premium behind the rates (censored-normal MLE)."""
    at_floor = np.isclose(rates, interest, rtol=0.0, atol=1e-10)
    revealed = np.where(rates < interest, rates - clamp, rates + clamp)[~at_floor]
    if len(revealed) < _MIN_REVEALED:
        return None
    lo, hi = interest - clamp, interest + clamp
    n_floor = int(at_floor.sum())

    def nll(theta: np.ndarray) -> float:
        mu, log_sd = theta
        sd = np.exp(log_sd)
        inside = norm.cdf((hi - mu) / sd) - norm.cdf((lo - mu) / sd)
        return float(-norm.logpdf(revealed, mu, sd).sum() - n_floor * np.log(max(inside, 1e-300)))

    start = np.array([revealed.mean(), np.log(max(revealed.std(), 1e-6))])
    result = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-9})
    return float(result.x[0]), float(np.exp(result.x[1]))


def _reversion_phi(acf1: float, interval: float) -> float:
    """Per-bar AR(1) coefficient whose 8-hour block means have this lag-1 autocorrelation."""
    bar_minutes = FUNDING_INTERVAL_MS / 60_000 / interval
    lo, hi = (np.exp(-bar_minutes / t) for t in _REVERSION_RANGE)

    def gap(phi: float) -> float:
        return kern.block_mean_acf1(phi, interval) - acf1

    if gap(lo) >= 0:
        return float(lo)
    if gap(hi) <= 0:
        return float(hi)
    return float(brentq(gap, lo, hi, xtol=1e-12))


def _trend(
    returns: pd.DataFrame,
    config: SyntheticConfig,
    bar_minutes: float,
    interval: float,
    target_var: float,
) -> tuple[float, float]:
    """Trend sensitivity (maybe scaled down) and the variance its term adds to 8-hour means."""
    half_life = config.premium_trend_half_life_minutes / bar_minutes
    r = returns.fillna(0.0).to_numpy()
    drift = kern.ema(r, half_life, np.zeros(r.shape[1])) / bar_minutes
    block = max(round(interval), 1)
    usable = len(drift) // block * block
    means = drift[:usable].reshape(-1, block, r.shape[1]).mean(axis=1)
    unit_var = float(np.mean(np.var(means, axis=0))) if len(means) > 1 else 0.0
    sensitivity = config.premium_trend_sensitivity
    if sensitivity**2 * unit_var > _TREND_SHARE * target_var and unit_var > 0:
        sensitivity = float(np.sqrt(_TREND_SHARE * target_var / unit_var))
    return sensitivity, sensitivity**2 * unit_var
