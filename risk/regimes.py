"""Market regimes from past data only: volatility level, trend direction, and a Gaussian HMM.

The seed labelled regimes with full-sample thresholds, so a label at t knew how volatile
the rest of the data would be. Here every label at bar t is a function of bars <= t:
rolling windows look back, and volatility thresholds are quantiles of the volatility
history strictly before t. Everything is vectorised (a year of 1-minute bars in well under
a second), except the optional HMM, whose recursions are sequential by nature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

VOL_LABELS = ("unknown_vol", "low_vol", "normal_vol", "high_vol")
TREND_LABELS = ("unknown_trend", "downtrend", "sideways", "uptrend")


class RegimeConfig(BaseModel):
    """Windows and thresholds of the rule-based regimes, in bars of the input series."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vol_window: int = Field(60, ge=2, description="Bars in the rolling realised volatility.")
    min_history: int = Field(
        1440, ge=1, description="Bars of volatility history needed before labelling volatility."
    )
    low_quantile: float = Field(0.25, gt=0, lt=1, description="Past-vol quantile below: low.")
    high_quantile: float = Field(0.75, gt=0, lt=1, description="Past-vol quantile above: high.")
    stride: int | None = Field(
        None,
        ge=1,
        description=(
            "Thresholds use past volatility sampled every `stride` bars (default: vol_window). "
            "Overlapping windows repeat information, so sampling loses little and is far cheaper."
        ),
    )
    fast: int = Field(20, ge=1, description="Bars in the fast moving average of log price.")
    slow: int = Field(120, ge=2, description="Bars in the slow moving average of log price.")
    trend_threshold: float = Field(
        0.5,
        gt=0,
        description=(
            "Trend when (fast MA - slow MA) of log price exceeds this many sigma*sqrt(slow): "
            "scaling by volatility keeps the same threshold meaningful in calm and wild markets."
        ),
    )

    @model_validator(mode="after")
    def _ordered(self) -> RegimeConfig:
        if self.low_quantile >= self.high_quantile:
            raise ValueError("low_quantile must be below high_quantile")
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


def log_price(close: pd.Series | pd.DataFrame) -> pd.Series:
    """Log price, or for several assets the log of an equal-weight index of their returns."""
    values = close.to_numpy(dtype=np.float64)
    if np.isnan(values).any() or (values <= 0).any():
        raise ValueError("close prices must be positive with no NaN; clean or align them first")
    if isinstance(close, pd.Series):
        return pd.Series(np.log(values), index=close.index)
    logs = np.log(values)
    steps = np.diff(logs, axis=0).mean(axis=1)
    return pd.Series(np.concatenate([[0.0], np.cumsum(steps)]), index=close.index)


def _labels(codes: np.ndarray, names: tuple[str, ...], index: pd.Index) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(names)), index=index)


def vol_codes(lp: pd.Series, cfg: RegimeConfig) -> np.ndarray:
    """Volatility regime code per bar of a log-price series (index into VOL_LABELS), from
    past bars only (the env's risk shield reads them per asset)."""
    vol = lp.diff().rolling(cfg.vol_window, min_periods=cfg.vol_window).std().to_numpy()
    stride = cfg.stride or cfg.vol_window
    samples = pd.Series(vol[::stride]).expanding(min_periods=math.ceil(cfg.min_history / stride))
    low, high = samples.quantile(cfg.low_quantile), samples.quantile(cfg.high_quantile)
    last = (np.arange(len(vol)) - 1) // stride
    known = (last >= 0) & ~np.isnan(vol)
    lo = np.where(last >= 0, low.to_numpy()[np.maximum(last, 0)], np.nan)
    hi = np.where(last >= 0, high.to_numpy()[np.maximum(last, 0)], np.nan)
    known &= ~np.isnan(lo)
    codes = np.where(vol < lo, 1, np.where(vol > hi, 3, 2))
    return np.where(known, codes, 0).astype(np.int8)


def trend_codes(lp: pd.Series, cfg: RegimeConfig) -> np.ndarray:
    """Trend regime code per bar (index into TREND_LABELS), from past bars only."""
    gap = (lp.rolling(cfg.fast).mean() - lp.rolling(cfg.slow).mean()).to_numpy()
    sigma = lp.diff().rolling(cfg.slow).std().to_numpy() * math.sqrt(cfg.slow)
    strength = np.divide(gap, sigma, out=np.zeros_like(gap), where=sigma > 0)
    codes = np.where(
        strength > cfg.trend_threshold, 3, np.where(strength < -cfg.trend_threshold, 1, 2)
    )
    return np.where(np.isnan(gap) | np.isnan(sigma), 0, codes).astype(np.int8)


def volatility_regime(
    close: pd.Series | pd.DataFrame, config: RegimeConfig | None = None
) -> pd.Series:
    """'low_vol' / 'normal_vol' / 'high_vol' against quantiles of past realised volatility."""
    cfg = config or RegimeConfig()
    lp = log_price(close)
    return _labels(vol_codes(lp, cfg), VOL_LABELS, lp.index)


def trend_regime(close: pd.Series | pd.DataFrame, config: RegimeConfig | None = None) -> pd.Series:
    """'uptrend' / 'downtrend' / 'sideways' from a volatility-scaled moving-average gap."""
    cfg = config or RegimeConfig()
    lp = log_price(close)
    return _labels(trend_codes(lp, cfg), TREND_LABELS, lp.index)


def market_regimes(
    close: pd.Series | pd.DataFrame, config: RegimeConfig | None = None
) -> pd.Series:
    """Combined 'vol/trend' label per bar (categorical), e.g. 'high_vol/downtrend'.

    Several assets are summarised by their equal-weight index. Warm-up bars carry
    'unknown_vol' or 'unknown_trend' rather than a guess.
    """
    cfg = config or RegimeConfig()
    lp = log_price(close)
    codes = vol_codes(lp, cfg) * len(TREND_LABELS) + trend_codes(lp, cfg)
    names = tuple(f"{v}/{t}" for v in VOL_LABELS for t in TREND_LABELS)
    return _labels(codes, names, lp.index)


@dataclass(frozen=True, eq=False)
class GaussianHMM:
    """A fitted hidden Markov model with one Gaussian emission per state.

    States are ordered by emission standard deviation, so state 0 is the calmest.
    """

    start: np.ndarray
    transition: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def _emissions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (x[:, None] - self.means) / self.stds
        logb = -0.5 * z**2 - np.log(self.stds) - 0.5 * math.log(2.0 * math.pi)
        shift = logb.max(axis=1)
        return np.exp(logb - shift[:, None]), shift

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        b, shift = self._emissions(x)
        alpha, scale = np.empty_like(b), np.empty(len(x))
        prior = self.start
        for t in range(len(x)):
            a = prior * b[t]
            scale[t] = a.sum()
            alpha[t] = a / scale[t]
            prior = alpha[t] @ self.transition
        return alpha, scale, b, shift

    def filter(self, x: np.ndarray | pd.Series) -> np.ndarray:
        """P(state at t | observations up to t): causal, usable as a live regime signal."""
        return self._forward(np.asarray(x, dtype=np.float64))[0]

    def log_likelihood(self, x: np.ndarray | pd.Series) -> float:
        _, scale, _, shift = self._forward(np.asarray(x, dtype=np.float64))
        return float(np.log(scale).sum() + shift.sum())


def fit_gaussian_hmm(
    x: np.ndarray | pd.Series, n_states: int = 2, n_iter: int = 100, tol: float = 1e-6
) -> GaussianHMM:
    """Fit by expectation-maximisation (Baum-Welch) on a training span.

    Fit on the training span only, then `filter` later data: smoothing over the whole
    sample would leak the future into each state probability.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 2 <= n_states <= 3:
        raise ValueError("n_states must be 2 or 3")
    if len(x) < 10 * n_states or not np.isfinite(x).all():
        raise ValueError(f"need at least {10 * n_states} finite observations to fit the HMM")
    std = float(x.std()) or 1.0
    model = GaussianHMM(
        start=np.full(n_states, 1.0 / n_states),
        transition=np.full((n_states, n_states), 0.05 / (n_states - 1))
        + np.eye(n_states) * (0.95 - 0.05 / (n_states - 1)),
        means=np.full(n_states, x.mean()),
        stds=std * np.linspace(0.5, 1.5, n_states),
    )
    previous = -math.inf
    for _ in range(n_iter):
        alpha, scale, b, shift = model._forward(x)
        beta = np.ones_like(alpha)
        for t in range(len(x) - 2, -1, -1):
            beta[t] = model.transition @ (b[t + 1] * beta[t + 1]) / scale[t + 1]
        gamma = alpha * beta
        gamma /= gamma.sum(axis=1, keepdims=True)
        weighted = b[1:] * beta[1:] / scale[1:, None]
        xi = model.transition * (alpha[:-1].T @ weighted)
        weight = gamma.sum(axis=0)
        means = gamma.T @ x / weight
        var = (gamma * (x[:, None] - means) ** 2).sum(axis=0) / weight
        model = GaussianHMM(
            start=gamma[0],
            transition=xi / xi.sum(axis=1, keepdims=True),
            means=means,
            stds=np.sqrt(np.maximum(var, 1e-6 * std**2)),
        )
        current = float(np.log(scale).sum() + shift.sum())
        if current - previous < tol * abs(current):
            break
        previous = current
    order = np.argsort(model.stds)
    return GaussianHMM(
        start=model.start[order],
        transition=model.transition[np.ix_(order, order)],
        means=model.means[order],
        stds=model.stds[order],
    )
