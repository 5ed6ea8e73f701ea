"""Value at Risk and Expected Shortfall for single return series and portfolios.

Three estimators, because each fails differently: historical replays what happened (no
distributional assumption, but blind to anything worse than the sample), parametric
assumes normal returns (smooth, but understates fat crypto tails), and Cornish-Fisher
corrects the normal quantile for skewness and excess kurtosis (fat tails at the cost of
an expansion that is only trustworthy for moderate skew and kurtosis: with very fat tails,
e.g. Student-t with 6 or fewer degrees of freedom, it over-corrects and overstates risk).

Sign convention: results are losses as fractions of the starting value, so a 3% loss is
+0.03. A result is negative only when even the tail quantile is a gain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

Method = Literal["historical", "parametric", "cornish_fisher"]
METHODS: tuple[str, ...] = ("historical", "parametric", "cornish_fisher")
MIN_OBSERVATIONS = 20
"""Fewer observations than this give moments and quantiles too noisy to act on."""


def clean_returns(returns: Iterable[float] | pd.Series | np.ndarray) -> np.ndarray:
    """Validate simple per-period returns and return them as a float64 1-D array.

    Fails fast: a NaN silently dropped here would shorten the history without anyone noticing.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {r.shape}")
    _check_finite(r, "returns")
    return r


def _check_finite(r: np.ndarray, what: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(r)))
    if bad:
        raise ValueError(
            f"{what} contain {bad} NaN/inf values; drop or fill them explicitly before "
            "computing risk"
        )
    if r.size and r.min() < -1.0:
        raise ValueError(f"{what} below -1 are impossible for simple returns (min {r.min()})")


def _check_args(confidence: float, horizon: int, method: str) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of periods >= 1, got {horizon}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def horizon_returns(returns: np.ndarray, horizon: int) -> np.ndarray:
    """Overlapping compounded returns over `horizon` periods (along axis 0).

    Compounding, not summing, because a position's value multiplies period by period.
    """
    r = np.asarray(returns, dtype=np.float64)
    if horizon == 1:
        return r.copy()
    if np.all(r > -1.0):
        cum = np.cumsum(np.log1p(r), axis=0)
        cum = np.concatenate([np.zeros((1, *r.shape[1:])), cum])
        return np.expm1(cum[horizon:] - cum[:-horizon])
    return np.prod(sliding_window_view(1.0 + r, horizon, axis=0), axis=-1) - 1.0


def min_observations(confidence: float, method: str = "historical") -> int:
    """Observations needed: MIN_OBSERVATIONS, and for historical at least one in the tail."""
    if method != "historical":
        return MIN_OBSERVATIONS
    return max(MIN_OBSERVATIONS, math.ceil(round(1.0 / (1.0 - confidence), 9)))


def _need(n: int, confidence: float, method: str) -> None:
    needed = min_observations(confidence, method)
    if n < needed:
        raise ValueError(
            f"{method} risk at confidence {confidence} needs at least {needed} observations "
            f"(after horizon aggregation), got {n}; use more history, a lower confidence "
            "or a parametric method"
        )


def _historical(sample: np.ndarray, confidence: float, kind: str) -> float:
    q = float(np.quantile(sample, 1.0 - confidence))
    if kind == "var":
        return -q
    return -float(sample[sample <= q].mean())


def _cf_tail(alpha: float, skew: float, kurt: float) -> tuple[float, float]:
    """Cornish-Fisher quantile at alpha and its mean over (0, alpha), both in sigma units.

    The mean integrates the CF expansion over the tail exactly, using the normal partial
    moments E[z^k ; z < z_alpha] for k = 0..3, instead of reusing the normal ES formula.
    """
    z = stats.norm.ppf(alpha)
    pdf = stats.norm.pdf(z)
    quantile = (
        z
        + skew / 6.0 * (z**2 - 1.0)
        + kurt / 24.0 * (z**3 - 3.0 * z)
        - skew**2 / 36.0 * (2.0 * z**3 - 5.0 * z)
    )
    m0, m1, m2, m3 = alpha, -pdf, alpha - z * pdf, -(z**2 + 2.0) * pdf
    integral = (
        m1
        + skew / 6.0 * (m2 - m0)
        + kurt / 24.0 * (m3 - 3.0 * m1)
        - skew**2 / 36.0 * (2.0 * m3 - 5.0 * m1)
    )
    return float(quantile), float(integral / alpha)


def _sample_skew_kurtosis(r: np.ndarray) -> tuple[float, float]:
    """Bias-adjusted sample skewness and excess kurtosis (scipy's bias=False estimators).

    The moments are taken of the standardised deviations so that tiny-magnitude returns
    cannot underflow ``m2**2`` to zero. A spread below float64 resolution of the values
    themselves is rounding noise, not a distribution: it has no shape, so (0, 0).
    """
    n, d = len(r), r - r.mean()
    scale = math.sqrt(float(np.mean(d**2)))
    if scale <= 4.0 * np.finfo(np.float64).eps * float(np.max(np.abs(r))):
        return 0.0, 0.0
    z = d / scale
    g1, g2 = float(np.mean(z**3)), float(np.mean(z**4)) - 3.0
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    kurt = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    return skew, kurt


def _moment_based(r: np.ndarray, confidence: float, horizon: int, method: str, kind: str) -> float:
    """Parametric or Cornish-Fisher risk with i.i.d. scaling of the moments to the horizon.

    Mean scales with h, sigma with sqrt(h), skewness with 1/sqrt(h) and excess kurtosis
    with 1/h: the cumulants of a sum of h i.i.d. returns.
    """
    mu, sigma = float(r.mean()), float(r.std(ddof=1))
    skew = kurt = 0.0
    if method == "cornish_fisher" and sigma > 0.0:
        skew, kurt = _sample_skew_kurtosis(r)
        skew, kurt = skew / math.sqrt(horizon), kurt / horizon
    quantile, tail_mean = _cf_tail(1.0 - confidence, skew, kurt)
    z = quantile if kind == "var" else tail_mean
    return -(mu * horizon + sigma * math.sqrt(horizon) * z)


def _evaluate(
    kind: str,
    one_period: np.ndarray,
    confidence: float,
    horizon: int,
    method: str,
    horizon_sample: np.ndarray | None = None,
) -> float:
    _check_args(confidence, horizon, method)
    if method == "historical":
        sample = horizon_returns(one_period, horizon) if horizon_sample is None else horizon_sample
        _need(len(sample), confidence, method)
        return _historical(sample, confidence, kind)
    _need(len(one_period), confidence, method)
    return _moment_based(one_period, confidence, horizon, method, kind)


def value_at_risk(
    returns: Iterable[float] | pd.Series | np.ndarray,
    confidence: float = 0.99,
    horizon: int = 1,
    method: Method = "historical",
) -> float:
    """Loss over `horizon` periods not exceeded with probability `confidence`."""
    return _evaluate("var", clean_returns(returns), confidence, horizon, method)


def expected_shortfall(
    returns: Iterable[float] | pd.Series | np.ndarray,
    confidence: float = 0.99,
    horizon: int = 1,
    method: Method = "historical",
) -> float:
    """Mean loss over `horizon` periods in the worst (1 - confidence) of outcomes.

    Reported next to VaR because VaR says nothing about how bad the tail beyond it is.
    """
    return _evaluate("es", clean_returns(returns), confidence, horizon, method)


def var_table(
    returns: Iterable[float] | pd.Series | np.ndarray,
    confidences: Iterable[float] = (0.95, 0.99),
    horizons: Iterable[int] = (1,),
    methods: Iterable[str] = METHODS,
) -> pd.DataFrame:
    """VaR and ES for every method x confidence x horizon, one row each (long format)."""
    r = clean_returns(returns)
    rows = [
        {
            "method": m,
            "confidence": c,
            "horizon": h,
            "var": _evaluate("var", r, c, h, m),
            "es": _evaluate("es", r, c, h, m),
        }
        for m in methods
        for c in confidences
        for h in horizons
    ]
    return pd.DataFrame(rows, columns=["method", "confidence", "horizon", "var", "es"])


def _weights(
    columns: pd.Index, weights: Mapping[str, float] | pd.Series | np.ndarray
) -> np.ndarray:
    """Weights (signed notional / equity) aligned to the return columns; absent assets are 0."""
    if isinstance(weights, Mapping | pd.Series):
        unknown = sorted(set(weights.keys()) - set(columns))
        if unknown:
            raise ValueError(f"weights name assets with no return history: {unknown}")
        w = np.array([float(weights.get(c, 0.0)) for c in columns])
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(columns),):
            raise ValueError(f"weights must have one entry per column ({len(columns)})")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    return w


def _asset_matrix(asset_returns: pd.DataFrame) -> np.ndarray:
    x = asset_returns.to_numpy(dtype=np.float64)
    _check_finite(x, "asset returns")
    return x


def _portfolio(
    kind: str,
    asset_returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    confidence: float,
    horizon: int,
    method: str,
) -> float:
    x, w = _asset_matrix(asset_returns), _weights(asset_returns.columns, weights)
    _check_args(confidence, horizon, method)
    held = horizon_returns(x, horizon) @ w if method == "historical" else None
    return _evaluate(kind, x @ w, confidence, horizon, method, held)


def portfolio_var(
    asset_returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    confidence: float = 0.99,
    horizon: int = 1,
    method: Method = "historical",
) -> float:
    """VaR of a portfolio held for `horizon` periods, as a fraction of equity.

    Historical horizons compound each asset and then weight them: the exact return of a
    buy-and-hold book, where compounding the weighted series would assume daily rebalancing.
    """
    return _portfolio("var", asset_returns, weights, confidence, horizon, method)


def portfolio_es(
    asset_returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    confidence: float = 0.99,
    horizon: int = 1,
    method: Method = "historical",
) -> float:
    """Expected shortfall of a portfolio held for `horizon` periods, as a fraction of equity."""
    return _portfolio("es", asset_returns, weights, confidence, horizon, method)


def risk_contributions(
    asset_returns: pd.DataFrame,
    weights: Mapping[str, float] | pd.Series | np.ndarray,
    confidence: float = 0.99,
    horizon: int = 1,
    method: Literal["parametric", "historical"] = "parametric",
) -> pd.DataFrame:
    """Marginal and component risk per asset (Euler allocation: components sum to the total).

    "parametric" splits the normal VaR; "historical" splits the historical ES (each asset's
    mean loss in the portfolio's tail scenarios), because a historical VaR split rests on
    the single scenario at the quantile and is too noisy to act on. `attrs["measure"]` says
    which was split and `attrs["total"]` holds the portfolio figure.
    """
    x, w = _asset_matrix(asset_returns), _weights(asset_returns.columns, weights)
    _check_args(confidence, horizon, method)
    if method == "parametric":
        _need(len(x), confidence, method)
        mu, cov = x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))
        sigma_p = math.sqrt(max(float(w @ cov @ w), 0.0))
        z = stats.norm.ppf(confidence) * math.sqrt(horizon)
        marginal = -mu * horizon + (z * (cov @ w) / sigma_p if sigma_p > 0 else 0.0)
        measure = "var"
    elif method == "historical":
        held = horizon_returns(x, horizon)
        _need(len(held), confidence, method)
        port = held @ w
        marginal = -held[port <= np.quantile(port, 1.0 - confidence)].mean(axis=0)
        measure = "es"
    else:
        raise ValueError(f"risk_contributions supports 'parametric' and 'historical', got {method}")
    component = w * marginal
    total = float(component.sum())
    share = component / total if total != 0.0 else np.zeros_like(component)
    out = pd.DataFrame(
        {"weight": w, "marginal": marginal, "component": component, "share": share},
        index=asset_returns.columns,
    )
    out.attrs.update(measure=measure, total=total)
    return out
