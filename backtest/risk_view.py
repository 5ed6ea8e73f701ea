"""The risk engine's report on a backtest's final book: what a risk desk would see if the
run were live at its last step (VaR/ES, stress scenarios, limit alerts, regime)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.result import BacktestResult
from envs.config import EnvConfig
from envs.core.layout import M_MARK
from envs.data import MarketArrays


def final_risk_report(result: BacktestResult, data: MarketArrays, config: EnvConfig) -> dict:
    """RiskReport (as a dict) of the positions held at the end of ``result``.

    Positions come back from notional to quantity at the last bar's mark prices; the
    return history is the backtest's own per-asset price returns, so VaR, stress
    betas and the regime use nothing after the run's end. The limits are the env's.
    """
    from risk.report import build_risk_report
    from risk.stress import (
        PortfolioSnapshot,
        betas_from_returns,
        hypothetical_scenarios,
        load_scenarios,
    )

    last = result.steps.index[-1]
    bar = int(np.searchsorted(data.timestamps, last.as_unit("ns").value))
    marks = {a: float(data.mkt[bar, j, M_MARK]) for j, a in enumerate(data.assets)}
    notional = result.positions.iloc[-1]
    equity = result.steps["equity"]
    snapshot = PortfolioSnapshot(
        positions={a: float(notional[a] / marks[a]) for a in data.assets},
        marks=marks,
        equity=float(equity.iloc[-1]),
        peak_equity=float(equity.max()),
        brackets=config.margin.brackets,
        timestamp=last.to_pydatetime(),
    )
    returns = returns_frame(result)
    market = data.assets[0]
    betas = betas_from_returns(returns, market) if len(returns) > 2 else None
    scenarios = (*load_scenarios(), *hypothetical_scenarios(betas))
    report = build_risk_report(
        snapshot, returns, config.limits, scenarios=scenarios, prices=result.prices[market],
        now=last.to_pydatetime(),
    )
    return report.to_dict()


def returns_frame(result: BacktestResult) -> pd.DataFrame:
    """Per-asset simple returns over the run (the history the risk report uses)."""
    return result.prices.pct_change().iloc[1:]
