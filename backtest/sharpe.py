"""Statistics of a return series: Sharpe-type ratios, moments and how far to trust a Sharpe.

Annualisation, volatility, step returns and drawdowns live in ``risk.returns`` (shared
with position sizing) and are re-exported here.

A Sharpe ratio estimated from a short or fat-tailed track record, or picked as the best
of many tried policies, overstates skill. The probabilistic Sharpe ratio (PSR, Bailey &
López de Prado 2012) turns an observed Sharpe into the probability that the true one
beats a benchmark, given the track length, skewness and kurtosis; the deflated Sharpe
ratio (DSR, Bailey & López de Prado 2014) sets that benchmark to the Sharpe the best of
``n_trials`` skill-less trials would show by luck alone.

Conventions shared by every function here:

- ``returns`` are simple returns, one per period (a decision step); they must be finite.
- A *per-period* ratio is not annualised; the annualised one is the per-period ratio
  times ``sqrt(periods_per_year)``, with periods per year counted from the bar spacing
  (``sqrt(288 * 365)`` for 5-minute decisions, never ``sqrt(252)``).
- Ratios that would divide by a zero (or numerically zero, ``<= ZERO_VOL``) dispersion
  are NaN: a flat equity curve has no Sharpe, rather than an infinite one.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from risk.returns import (
    annualize,
    annualized_volatility,
    as_returns,
    longest_underwater,
    max_drawdown,
    per_period_rate,
    step_returns,
)

__all__ = [
    "EULER_GAMMA",
    "ZERO_VOL",
    "annualized_volatility",
    "as_returns",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "longest_underwater",
    "max_drawdown",
    "moments",
    "per_period_rate",
    "probabilistic_sharpe_ratio",
    "sharpe_ratio",
    "sharpe_std",
    "sortino_ratio",
    "step_returns",
]

EULER_GAMMA = 0.5772156649015329
"""The Euler-Mascheroni constant of the expected maximum of Gaussian trials."""
ZERO_VOL = 1e-12
"""A per-period standard deviation at or below this counts as zero (float noise of a
constant-growth curve's returns is ~1e-17)."""


def sharpe_ratio(returns, rf_per_period: float = 0.0, periods_per_year: float = 1.0) -> float:
    """``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year)``.

    With the default ``periods_per_year=1`` this is the per-period Sharpe that PSR and
    DSR take. NaN for fewer than two returns or zero volatility.
    """
    excess = as_returns(returns) - rf_per_period
    if len(excess) < 2:
        return math.nan
    std = float(np.std(excess, ddof=1))
    if std <= ZERO_VOL:
        return math.nan
    return float(annualize(float(np.mean(excess) / std), periods_per_year))


def sortino_ratio(returns, rf_per_period: float = 0.0, periods_per_year: float = 1.0) -> float:
    """``mean(r - rf) / DD * sqrt(periods_per_year)``, with the downside deviation
    ``DD = sqrt(mean(min(r - rf, 0) ** 2))`` averaged over *all* periods (Sortino &
    Price's target semideviation; averaging over losing periods only would reward a
    policy for having few, large losses). NaN when there is no downside (DD is zero) or
    the returns do not vary: a flat policy trails the risk-free rate by the same amount
    every period, which would otherwise score ``-sqrt(periods_per_year)``.
    """
    excess = as_returns(returns) - rf_per_period
    if len(excess) == 0 or np.std(excess) <= ZERO_VOL:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= ZERO_VOL:
        return math.nan
    return float(annualize(float(np.mean(excess) / downside), periods_per_year))


def moments(returns) -> tuple[float, float]:
    """``(skewness, excess_kurtosis)`` from the population central moments ``m_k``:
    ``m3 / m2 ** 1.5`` and ``m4 / m2 ** 2 - 3`` (normal: 0 and 0), the plug-in estimates
    the PSR derivation uses. NaN, NaN for fewer than two returns or zero variance."""
    r = as_returns(returns)
    if len(r) < 2:
        return math.nan, math.nan
    dev = r - r.mean()
    m2 = float(np.mean(dev**2))
    if math.sqrt(m2) <= ZERO_VOL:
        return math.nan, math.nan
    return float(np.mean(dev**3) / m2**1.5), float(np.mean(dev**4) / m2**2 - 3.0)


def sharpe_std(sharpe: float, n_obs: int, skewness: float = 0.0, excess_kurtosis: float = 0.0):
    """Standard error of a per-period Sharpe estimate from ``n_obs`` non-normal returns
    (Mertens 2002, as used by PSR): ``sqrt((1 - g3 SR + (g4 - 1) / 4 SR^2) / (n - 1))``
    with Pearson kurtosis ``g4 = excess_kurtosis + 3``. NaN where the variance term is
    not positive (extreme skew with a large Sharpe) or ``n_obs < 2``."""
    if n_obs < 2:
        return math.nan
    term = 1.0 - skewness * sharpe + (excess_kurtosis + 2.0) / 4.0 * sharpe**2
    if not term > 0.0:
        return math.nan
    return math.sqrt(term / (n_obs - 1))


def probabilistic_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    skewness: float = 0.0,
    excess_kurtosis: float = 0.0,
    benchmark: float = 0.0,
) -> float:
    """PSR: the probability that the true per-period Sharpe exceeds ``benchmark``,

        PSR = Phi((SR - SR*) / sharpe_std(SR, n, skew, kurt))

    ``sharpe`` and ``benchmark`` are *per-period* (divide an annualised Sharpe by
    ``sqrt(periods_per_year)``). NaN when any input is NaN or the standard error is
    undefined (see :func:`sharpe_std`).
    """
    se = sharpe_std(sharpe, n_obs, skewness, excess_kurtosis)
    if math.isnan(se) or math.isnan(benchmark):
        return math.nan
    return float(norm.cdf((sharpe - benchmark) / se))


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum of ``n_trials`` independent Sharpe estimates with mean zero and
    variance ``var_sharpe`` (the False Strategy theorem, Bailey & López de Prado 2014):

        sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

    Zero for a single trial: with nothing to choose from there is no selection bias.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if var_sharpe < 0.0:
        raise ValueError(f"var_sharpe is a variance and cannot be negative, got {var_sharpe}")
    if n_trials == 1:
        return 0.0
    z = (1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(var_sharpe) * z)


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    var_sharpe: float | None = None,
    skewness: float = 0.0,
    excess_kurtosis: float = 0.0,
) -> float:
    """DSR: PSR against the Sharpe the best of ``n_trials`` skill-less trials would show,
    ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, var_sharpe)``; all per-period.

    ``var_sharpe`` is the variance of the trials' per-period Sharpe ratios. Estimate it
    from the trials when you have them; the default ``1 / (n_obs - 1)`` assumes the trials
    are independent skill-less strategies over the same track length, so their Sharpes
    differ only by estimation noise (the variance of a zero-Sharpe estimate). With one
    trial the DSR equals the PSR against zero.
    """
    if var_sharpe is None:
        var_sharpe = 1.0 / (n_obs - 1) if n_obs >= 2 else math.nan
    if math.isnan(var_sharpe):
        return math.nan
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skewness, excess_kurtosis, benchmark=sr0)
