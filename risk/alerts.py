"""Limit monitoring: measure the book against RiskLimits and raise structured alerts.

Alerts are data (frozen AlertEvent) so serving, backtests and the chatbot can act on them,
and each is also logged through `logging` so an operator sees it without extra wiring.
A warning fires at `warning_fraction` of a limit, to leave time to act; a critical alert
fires when the limit is reached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from risk.limits import RiskLimits
from risk.liquidity import counterparty_exposure
from risk.sizing import correlated_groups
from risk.stress import PortfolioSnapshot
from risk.var import min_observations, portfolio_var, value_at_risk

logger = logging.getLogger(__name__)
Severity = Literal["warning", "critical"]


@dataclass(frozen=True)
class Metric:
    """One measured risk figure and the limit it is held against."""

    kind: str
    value: float
    limit: float
    subject: str | None = None


@dataclass(frozen=True)
class AlertEvent:
    """One limit approached or breached, with what was measured and when."""

    kind: str
    severity: Severity
    value: float
    limit: float
    message: str
    timestamp: datetime
    subject: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "value": self.value if math.isfinite(self.value) else None,
            "limit": self.limit,
            "message": self.message,
            "timestamp": self.timestamp.isoformat(),
            "subject": self.subject,
        }


def _var_metric(
    snapshot: PortfolioSnapshot, returns: pd.Series | pd.DataFrame, limits: RiskLimits
) -> Metric | None:
    needed = min_observations(limits.var_confidence)
    if len(returns) < needed:
        logger.info("VaR limit not checked: %d returns, %d needed", len(returns), needed)
        return None
    if isinstance(returns, pd.Series):
        var = value_at_risk(returns, limits.var_confidence)
    else:
        var = portfolio_var(returns, snapshot.weights(), limits.var_confidence)
    return Metric("var", var, limits.max_var)


def _correlated_metrics(
    snapshot: PortfolioSnapshot, returns: pd.DataFrame, limits: RiskLimits
) -> list[Metric]:
    held = [a for a in snapshot.positions if a in returns.columns]
    if len(held) < 2:
        return []
    exposure = snapshot.notional().abs() / snapshot.equity
    out = []
    for group in correlated_groups(returns[held].corr(), limits.correlation_threshold):
        if len(group) > 1:
            value = float(exposure[group].sum())
            out.append(
                Metric(
                    "correlated_exposure", value, limits.max_correlated_exposure, "+".join(group)
                )
            )
    return out


def limit_metrics(
    snapshot: PortfolioSnapshot,
    limits: RiskLimits | None = None,
    returns: pd.Series | pd.DataFrame | None = None,
) -> list[Metric]:
    """Every metric that has a limit, measured on the snapshot (and returns, if given).

    `returns` is either the book's own return series or per-asset returns (columns are
    assets), which also price the current weights and reveal correlated groups.
    """
    lim = limits or RiskLimits()
    budget = lim.max_leverage * snapshot.equity
    notional = snapshot.notional()
    out = [
        Metric("leverage", snapshot.leverage, lim.max_leverage),
        Metric("margin_ratio", snapshot.margin_ratio, lim.max_margin_ratio),
    ]
    for asset, value in notional.abs().items():
        share = value / budget if budget > 0 else (math.inf if value > 0 else 0.0)
        out.append(Metric("concentration", float(share), lim.max_concentration, str(asset)))
    if snapshot.day_start_equity:
        loss = 1.0 - snapshot.equity / snapshot.day_start_equity
        out.append(Metric("daily_loss", max(loss, 0.0), lim.daily_loss_limit))
    if snapshot.peak_equity:
        dd = 1.0 - snapshot.equity / snapshot.peak_equity
        out.append(Metric("drawdown", max(dd, 0.0), lim.max_drawdown))
    if returns is not None and snapshot.positions and snapshot.equity > 0:
        var = _var_metric(snapshot, returns, lim)
        out += [var] if var is not None else []
        if isinstance(returns, pd.DataFrame):
            out += _correlated_metrics(snapshot, returns, lim)
    if lim.max_counterparty_share < 1.0:
        venues = venue_exposure(snapshot, lim)
        for venue, share in venues["share"].items():
            out.append(Metric("counterparty", float(share), lim.max_counterparty_share, str(venue)))
    return out


def venue_exposure(snapshot: PortfolioSnapshot, limits: RiskLimits) -> pd.DataFrame:
    """Counterparty exposure per exchange of the snapshot's book (risk.liquidity)."""
    notional = snapshot.notional()
    margin = snapshot.position_maintenance(notional.to_dict())
    return counterparty_exposure(
        notional.to_dict(),
        snapshot.exchanges,
        snapshot.equity,
        snapshot.exchange_equity or None,
        dict(zip(notional.index, margin, strict=True)),
        limits.max_counterparty_share,
    )


def grade(metric: Metric, warning_fraction: float, timestamp: datetime) -> AlertEvent | None:
    """Critical at or beyond the limit, warning from warning_fraction of it, else nothing."""
    if np.isnan(metric.value) or metric.value < warning_fraction * metric.limit:
        return None
    severity: Severity = "critical" if metric.value >= metric.limit else "warning"
    where = f" ({metric.subject})" if metric.subject else ""
    message = (
        f"{metric.kind}{where} at {metric.value:.4g} is {metric.value / metric.limit:.0%} of "
        f"its limit {metric.limit:.4g}"
    )
    return AlertEvent(
        metric.kind, severity, metric.value, metric.limit, message, timestamp, metric.subject
    )


def check_limits(
    snapshot: PortfolioSnapshot,
    limits: RiskLimits | None = None,
    returns: pd.Series | pd.DataFrame | None = None,
    now: datetime | None = None,
) -> list[AlertEvent]:
    """Alerts for every limit approached or breached, each also logged (critical as ERROR)."""
    lim = limits or RiskLimits()
    stamp = now or snapshot.timestamp or datetime.now(UTC)
    events = []
    for metric in limit_metrics(snapshot, lim, returns):
        event = grade(metric, lim.warning_fraction, stamp)
        if event is not None:
            level = logging.ERROR if event.severity == "critical" else logging.WARNING
            logger.log(level, "risk alert [%s] %s", event.severity, event.message)
            events.append(event)
    return events
