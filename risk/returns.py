"""Return and equity series statistics shared by risk and backtest: annualisation,
volatility, step returns and drawdowns.

The lowest layer both may import (backtest imports risk, never the reverse), so
position sizing, backtest metrics and the chatbot's corpus measure a curve the same way.
Sharpe-type ratios and their trust (PSR, DSR) build on these in ``backtest.sharpe``.

Conventions:

- ``returns`` are simple returns, one per period (a decision step or bar).
- Annualising multiplies a per-period standard deviation or ratio by
  ``sqrt(periods_per_year)``, with periods per year counted from the bar spacing
  (``sqrt(288 * 365)`` for 5-minute bars; crypto never closes, so never ``sqrt(252)``).
- Drawdown is the fall from the running peak, ``1 - e[t] / max_{s<=t} e[s]``, a
  fraction in [0, 1] that uses past equity only.
"""

from __future__ import annotations

import math

import numpy as np


def as_returns(returns) -> np.ndarray:
    """The returns as a 1-D float64 array; non-finite values are an error, not data."""
    r = np.asarray(returns, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        raise ValueError("returns hold NaN or inf; drop the undefined first return, or fix the "
                         "equity curve (a return after zero equity is undefined)")
    return r


def annualize(per_period, periods_per_year: float):
    """A per-period standard deviation or Sharpe-type ratio (a number, array or pandas
    object) over a year: ``per_period * sqrt(periods_per_year)``."""
    return per_period * math.sqrt(periods_per_year)


def per_period_rate(annual_rate: float, periods_per_year: float) -> float:
    """The per-period rate that compounds to ``annual_rate`` over a year:
    ``(1 + annual_rate) ** (1 / periods_per_year) - 1``."""
    return (1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0


def annualized_volatility(returns, periods_per_year: float) -> float:
    """Sample standard deviation (ddof 1) of the returns times ``sqrt(periods_per_year)``;
    NaN for fewer than two returns."""
    r = as_returns(returns)
    if len(r) < 2:
        return math.nan
    return float(annualize(float(np.std(r, ddof=1)), periods_per_year))


def _equity(equity) -> np.ndarray:
    e = np.asarray(equity, dtype=np.float64).ravel()
    if len(e) == 0 or not np.isfinite(e).all() or e[0] <= 0.0 or (e < 0.0).any():
        raise ValueError("equity must be finite, start above zero and never go below zero")
    return e


def step_returns(equity) -> np.ndarray:
    """Simple return of each step, ``e[t] / e[t-1] - 1``; an error if equity reaches zero
    before the last step (the returns after it are undefined)."""
    e = _equity(equity)
    if (e[:-1] <= 0.0).any():
        raise ValueError("equity reached zero before the last step: returns after it are undefined")
    return e[1:] / e[:-1] - 1.0


def drawdown(equity) -> np.ndarray:
    """Drawdown from the running peak at each point (uses past equity only)."""
    eq = np.asarray(equity, dtype=np.float64)
    return 1.0 - eq / np.maximum.accumulate(eq)


def longest_underwater(equity) -> tuple[int, int]:
    """``(peak_idx, end_idx)`` of the longest stretch spent below a previous peak: from the
    peak to the first step back at or above it, or to the last step if the curve never
    recovered; ``(0, 0)`` if equity never falls below its running peak. Ties: the first."""
    e = _equity(equity)
    below = (e < np.maximum.accumulate(e)).astype(np.int8)
    if not below.any():
        return 0, 0
    edges = np.diff(np.concatenate(([0], below, [0])))
    peaks = np.flatnonzero(edges == 1) - 1
    ends = np.minimum(np.flatnonzero(edges == -1), len(e) - 1)
    k = int(np.argmax(ends - peaks))
    return int(peaks[k]), int(ends[k])


def max_drawdown(equity) -> tuple[float, int, int, int]:
    """``(depth, duration_steps, peak_idx, trough_idx)`` of an equity curve.

    ``depth = max_t drawdown(e)[t]`` in [0, 1], with ``peak_idx`` and ``trough_idx`` the
    running peak and the trough of that deepest fall (both 0 for a curve that never
    falls). ``duration_steps`` is the *longest* time under water, which need not be the
    deepest fall's: see :func:`longest_underwater`.
    """
    e = _equity(equity)
    depth = drawdown(e)
    trough = int(np.argmax(depth))
    peak = trough - int(np.argmax(e[trough::-1] == np.maximum.accumulate(e)[trough]))
    start, end = longest_underwater(e)
    return float(depth[trough]), end - start, peak, trough
