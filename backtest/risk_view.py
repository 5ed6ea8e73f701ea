"""The risk engine's report on a simulated book: what a risk desk would see at one bar
(VaR/ES, stress scenarios, limit alerts, regime, margin with each asset's own tiers).

Two callers: a backtest's final book (:func:`final_risk_report`) and an account at the
last bar of served market arrays (:func:`account_risk_report`: ``/v1/risk`` and paper
sessions). Both build the same snapshot and history, so one book gets one report.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from backtest.result import BacktestResult
from envs.config import EnvConfig
from envs.core.layout import M_CLOSE, M_MARK
from envs.data import MarketArrays


def final_risk_report(result: BacktestResult, data: MarketArrays, config: EnvConfig) -> dict:
    """RiskReport (as a dict) of the positions held at the end of ``result``.

    Positions come back from notional to quantity at the last bar's mark prices; the
    return history is the backtest's own per-asset price returns, so VaR, stress
    betas and the regime use nothing after the run's end. The limits are the env's.
    """
    last = result.steps.index[-1]
    bar = int(np.searchsorted(data.timestamps, last.as_unit("ns").value))
    marks = _marks(data, bar)
    notional = result.positions.iloc[-1]
    equity = result.steps["equity"]
    positions = {a: float(notional[a] / marks[a]) for a in data.assets}
    return _report(positions, marks, float(equity.iloc[-1]), float(equity.max()), None,
                   result.prices, config, last.to_pydatetime())


def account_risk_report(account, data: MarketArrays, config: EnvConfig) -> dict:
    """RiskReport (as a dict) of an envs.account.Account at the last bar of ``data``; the
    history is the closes in ``data`` up to that bar."""
    bar = account.bar_index(data)
    values = account.values
    prices = pd.DataFrame(data.mkt[: bar + 1, :, M_CLOSE], columns=list(data.assets),
                          index=pd.to_datetime(data.timestamps[: bar + 1], utc=True))
    return _report(account.positions(), _marks(data, bar), values["equity"],
                   values["peak_equity"], values["day_start_equity"], prices, config,
                   prices.index[-1].to_pydatetime())


def _marks(data: MarketArrays, bar: int) -> dict[str, float]:
    return {a: float(data.mkt[bar, j, M_MARK]) for j, a in enumerate(data.assets)}


def _report(positions: dict[str, float], marks: dict[str, float], equity: float,
            peak: float | None, day_start: float | None, prices: pd.DataFrame,
            config: EnvConfig, when: datetime) -> dict:
    from risk.report import build_risk_report
    from risk.stress import (
        PortfolioSnapshot,
        betas_from_returns,
        hypothetical_scenarios,
        load_scenarios,
    )

    snapshot = PortfolioSnapshot(
        positions=positions,
        marks=marks,
        equity=equity,
        peak_equity=peak,
        day_start_equity=day_start,
        brackets=config.margin.brackets,
        asset_brackets={a: config.margin.table(a) for a in positions},
        timestamp=when,
    )
    returns = prices.pct_change().iloc[1:]
    market = prices.columns[0]
    betas = betas_from_returns(returns, market) if len(returns) > 2 else None
    scenarios = (*load_scenarios(), *hypothetical_scenarios(betas))
    report = build_risk_report(snapshot, returns, config.limits, scenarios=scenarios,
                               prices=prices[market], now=when)
    return report.to_dict()

