"""Dynamic position sizing: how big a position should be given volatility, equity, correlation,
regime and drawdown.

Each rule is a pure function over numpy/pandas so the environment, backtests and serving
size positions identically. Weights are signed notional / equity (leverage per asset).
The rules only shrink or cap a signal, never flip it: sizing manages risk, not direction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.sparse.csgraph import connected_components

from risk.returns import annualize
from risk.returns import drawdown as drawdown  # re-exported: sizing's drawdown input

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class VolTargetConfig(BaseModel):
    """Volatility targeting: scale each position so its volatility matches a target."""

    model_config = _FROZEN
    target_vol: float = Field(0.5, gt=0, description="Annualised volatility aimed for per asset.")
    max_leverage: float = Field(3.0, gt=0, description="Cap on one asset's |weight| (calm assets).")


class EquityRiskConfig(BaseModel):
    """Fixed-fractional sizing: a stop-out loses at most a fraction of equity."""

    model_config = _FROZEN
    risk_fraction: float = Field(0.01, gt=0, le=1, description="Equity lost if the stop is hit.")
    max_leverage: float = Field(20.0, gt=0, description="Cap on notional / equity.")


class CorrelationConfig(BaseModel):
    """Correlated assets count as one bet: cap their combined exposure."""

    model_config = _FROZEN
    threshold: float = Field(0.7, gt=-1, lt=1, description="Correlation that links two assets.")
    max_group_exposure: float = Field(
        10.0, gt=0, description="Cap on a group's gross |weight| sum (notional / equity)."
    )


class RegimeSizingConfig(BaseModel):
    """Exposure multiplier per regime component; a combined label multiplies its parts."""

    model_config = _FROZEN
    multipliers: dict[str, float] = Field(
        default_factory=lambda: {
            "low_vol": 1.0,
            "normal_vol": 1.0,
            "high_vol": 0.5,
            "unknown_vol": 0.5,
            "uptrend": 1.0,
            "downtrend": 1.0,
            "sideways": 0.75,
            "unknown_trend": 0.75,
        },
        description="Multiplier in [0, 1] per label; unknown (warm-up) regimes size down.",
    )

    @field_validator("multipliers")
    @classmethod
    def _in_unit(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(0.0 <= m <= 1.0 for m in value.values()):
            raise ValueError("regime multipliers must be in [0, 1]")
        return value


class DrawdownSchedule(BaseModel):
    """Step table: at or beyond each drawdown, exposure is multiplied by its multiplier."""

    model_config = _FROZEN
    steps: tuple[tuple[float, float], ...] = Field(
        ((0.10, 0.75), (0.20, 0.5), (0.30, 0.0)),
        description="(drawdown, multiplier) pairs, drawdowns ascending, multipliers falling.",
    )

    @field_validator("steps")
    @classmethod
    def _monotone(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        dds, mults = [d for d, _ in value], [m for _, m in value]
        if dds != sorted(set(dds)) or not all(0 < d <= 1 for d in dds):
            raise ValueError("drawdown steps must be strictly ascending in (0, 1]")
        if mults != sorted(mults, reverse=True) or not all(0 <= m <= 1 for m in mults):
            raise ValueError("drawdown multipliers must be in [0, 1] and non-increasing")
        return value


class SizingConfig(BaseModel):
    """All sizing rules together, applied in order by `size_positions`."""

    model_config = _FROZEN
    vol_target: VolTargetConfig = VolTargetConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    regime: RegimeSizingConfig = RegimeSizingConfig()
    drawdown: DrawdownSchedule = DrawdownSchedule()
    max_gross_leverage: float = Field(20.0, gt=0, description="Cap on the book's gross leverage.")


def annualised_vol(returns: pd.Series | pd.DataFrame, periods_per_year: float) -> float | pd.Series:
    """Standard deviation of per-period returns scaled by sqrt(periods per year).

    Per-bar scaling (e.g. 288 * 365 for 5-minute bars), not sqrt(252): crypto never closes.
    Per column of a DataFrame; NaN returns are skipped (pandas' std, ddof 1).
    """
    return annualize(returns.std(), periods_per_year)


def vol_target_leverage(
    asset_vol: float | np.ndarray | pd.Series, config: VolTargetConfig | None = None
) -> np.ndarray | pd.Series:
    """Leverage target_vol / asset_vol, capped; unknown (NaN) volatility gets no exposure."""
    cfg = config or VolTargetConfig()
    vol = asset_vol if isinstance(asset_vol, pd.Series) else np.asarray(asset_vol, dtype=float)
    with np.errstate(divide="ignore"):
        lev = np.minimum(cfg.target_vol / vol, cfg.max_leverage)
    return lev.fillna(0.0) if isinstance(lev, pd.Series) else np.nan_to_num(lev, nan=0.0)


def risk_fraction_notional(
    equity: float, stop_distance: float, config: EquityRiskConfig | None = None
) -> float:
    """Notional such that a stop `stop_distance` (fraction of price) away loses risk_fraction."""
    cfg = config or EquityRiskConfig()
    if not stop_distance > 0:
        raise ValueError(f"stop_distance must be a positive fraction of price, got {stop_distance}")
    if equity <= 0:
        return 0.0
    return min(equity * cfg.risk_fraction / stop_distance, cfg.max_leverage * equity)


def correlated_groups(corr: pd.DataFrame, threshold: float = 0.7) -> list[list[str]]:
    """Clusters of assets linked by correlation above `threshold` (single linkage).

    Single linkage is deliberately conservative: if A tracks B and B tracks C, all three
    fall together in a crash even when A and C look less related in calm data.
    """
    links = (corr.to_numpy() > threshold).astype(np.int8)
    _, label = connected_components(links, directed=False)
    groups: dict[int, list[str]] = {}
    for asset, k in zip(corr.columns, label, strict=True):
        groups.setdefault(int(k), []).append(str(asset))
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def cap_correlated_exposure(
    weights: pd.Series, corr: pd.DataFrame, config: CorrelationConfig | None = None
) -> pd.Series:
    """Scale each correlated group down so its gross exposure is at most the cap.

    Gross, not net: long/short pairs of correlated perps still carry basis risk and each leg
    is margined on its own.
    """
    cfg = config or CorrelationConfig()
    out = weights.astype(float).copy()
    for group in correlated_groups(corr.loc[weights.index, weights.index], cfg.threshold):
        gross = float(out[group].abs().sum())
        if gross > cfg.max_group_exposure:
            out[group] *= cfg.max_group_exposure / gross
    return out


def regime_multiplier(
    label: str | pd.Series, config: RegimeSizingConfig | None = None
) -> float | pd.Series:
    """Exposure multiplier for a regime label such as 'high_vol/downtrend' (parts multiply)."""
    cfg = config or RegimeSizingConfig()

    def one(text: str) -> float:
        parts = str(text).split("/")
        unknown = [p for p in parts if p not in cfg.multipliers]
        if unknown:
            raise ValueError(f"no sizing multiplier for regime {unknown}; add it to the config")
        return math.prod(cfg.multipliers[p] for p in parts)

    if isinstance(label, pd.Series):
        table = {c: one(c) for c in pd.unique(label.astype(str))}
        return label.astype(str).map(table).astype(float)
    return one(label)


def drawdown_multiplier(
    dd: float | np.ndarray, schedule: DrawdownSchedule | None = None
) -> float | np.ndarray:
    """Multiplier of the deepest step reached (1 above every step)."""
    steps = (schedule or DrawdownSchedule()).steps
    levels = np.array([d for d, _ in steps])
    mults = np.concatenate([[1.0], [m for _, m in steps]])
    out = mults[np.searchsorted(levels, np.asarray(dd, dtype=np.float64), side="right")]
    return float(out) if np.ndim(out) == 0 else out


def size_positions(
    signals: pd.Series,
    asset_vol: pd.Series,
    config: SizingConfig | None = None,
    corr: pd.DataFrame | None = None,
    regime: str | None = None,
    current_drawdown: float = 0.0,
) -> pd.Series:
    """Weights from signals in [-1, 1]: vol target, regime, drawdown, correlation, gross cap."""
    cfg = config or SizingConfig()
    lev = vol_target_leverage(asset_vol.reindex(signals.index), cfg.vol_target)
    weights = signals.clip(-1.0, 1.0) * lev * drawdown_multiplier(current_drawdown, cfg.drawdown)
    if regime is not None:
        weights *= regime_multiplier(regime, cfg.regime)
    if corr is not None:
        weights = cap_correlated_exposure(weights, corr, cfg.correlation)
    gross = float(weights.abs().sum())
    if gross > cfg.max_gross_leverage:
        weights *= cfg.max_gross_leverage / gross
    return weights
