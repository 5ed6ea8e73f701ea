"""One risk report per moment: everything the risk engine knows about the book, as JSON.

Serving returns it over HTTP, backtests store it per step and the chatbot reads its numbers,
so it is plain data (no numpy types, no NaN/inf: JSON has none; unknown values are null).
A section that cannot be computed (too little history, say) is left empty and explained in
`notes` rather than failing the whole report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from risk.alerts import check_limits, venue_exposure
from risk.limits import RiskLimits
from risk.liquidity import MarketLiquidity, liquidity_table
from risk.regimes import RegimeConfig, market_regimes
from risk.stress import PortfolioSnapshot, Scenario, run_stress
from risk.var import METHODS, expected_shortfall, portfolio_es, portfolio_var, value_at_risk


def _plain(value: object) -> object:
    """JSON-safe Python value: numpy scalars unwrapped, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class RiskReport:
    """Snapshot-time risk of the book; every field is JSON-ready."""

    timestamp: str
    equity: float
    gross_exposure: float
    net_exposure: float
    leverage: float | None
    maintenance_margin: float
    margin_ratio: float | None
    var: list[dict] = field(default_factory=list)
    stress: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    regime: str | None = None
    liquidity: list[dict] = field(default_factory=list)
    counterparty: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RiskReport:
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RiskReport:
        return cls.from_dict(json.loads(text))


def _var_rows(
    snapshot: PortfolioSnapshot,
    returns: pd.Series | pd.DataFrame,
    confidences: Iterable[float],
    horizons: Iterable[int],
    methods: Iterable[str],
    notes: list[str],
) -> list[dict]:
    rows = []
    for method in methods:
        for conf in confidences:
            for h in horizons:
                try:
                    if isinstance(returns, pd.Series):
                        var = value_at_risk(returns, conf, h, method)
                        es = expected_shortfall(returns, conf, h, method)
                    else:
                        var = portfolio_var(returns, snapshot.weights(), conf, h, method)
                        es = portfolio_es(returns, snapshot.weights(), conf, h, method)
                except ValueError as err:
                    notes.append(f"var {method} {conf} h={h}: {err}")
                    continue
                rows.append(
                    {"method": method, "confidence": conf, "horizon": h, "var": var, "es": es}
                )
    return rows


def _regime(
    returns: pd.Series | pd.DataFrame | None,
    prices: pd.Series | pd.DataFrame | None,
    config: RegimeConfig | None,
    notes: list[str],
) -> str | None:
    if prices is None and returns is not None:
        prices = (1.0 + returns).cumprod()
    if prices is None or len(prices) == 0:
        notes.append("regime: no price or return history")
        return None
    try:
        return str(market_regimes(prices, config).iloc[-1])
    except ValueError as err:
        notes.append(f"regime: {err}")
        return None


def build_risk_report(
    snapshot: PortfolioSnapshot,
    returns_history: pd.Series | pd.DataFrame | None,
    limits: RiskLimits | None = None,
    *,
    confidences: Iterable[float] = (0.95, 0.99),
    horizons: Iterable[int] = (1,),
    methods: Iterable[str] = METHODS,
    scenarios: Iterable[Scenario] | None = None,
    liquidity: MarketLiquidity | None = None,
    prices: pd.Series | pd.DataFrame | None = None,
    regime_config: RegimeConfig | None = None,
    now: datetime | None = None,
) -> RiskReport:
    """Assemble every section for the snapshot.

    `returns_history` is the book's return series or per-asset returns (columns are assets,
    priced at the snapshot's weights); `prices` (else the returns compounded) give the regime.
    """
    lim = limits or RiskLimits()
    stamp = now or snapshot.timestamp or datetime.now(UTC)
    notes: list[str] = []
    var_rows: list[dict] = []
    if returns_history is None:
        notes.append("var: no return history")
    elif snapshot.equity <= 0:
        notes.append("var: equity is not positive, weights are undefined")
    else:
        var_rows = _var_rows(snapshot, returns_history, confidences, horizons, methods, notes)
    notional = snapshot.notional()
    margin = snapshot.position_maintenance(notional.to_dict())
    venues = venue_exposure(snapshot, lim)
    report = RiskReport(
        timestamp=stamp.isoformat(),
        equity=snapshot.equity,
        gross_exposure=snapshot.gross_exposure,
        net_exposure=snapshot.net_exposure,
        leverage=snapshot.leverage,
        maintenance_margin=float(margin.sum()),
        margin_ratio=snapshot.margin_ratio,
        var=var_rows,
        stress=run_stress(snapshot, scenarios, liquidity).reset_index().to_dict("records"),
        alerts=[a.to_dict() for a in check_limits(snapshot, lim, returns_history, stamp)],
        regime=_regime(returns_history, prices, regime_config, notes),
        liquidity=liquidity_table(notional.abs().to_dict(), liquidity)
        .reset_index()
        .to_dict("records"),
        counterparty=venues.reset_index().to_dict("records"),
        notes=notes,
    )
    return RiskReport(**_plain(asdict(report)))
