"""What a backtest produces: the per-step record, the ledger and the benchmark.

Every report, metric and plot is computed from a :class:`BacktestResult`, so the
runner (which steps the simulator) and the analysis (metrics, regimes, plots) are
independent and each testable on a small hand-made result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

STEP_COLUMNS = ("equity", "gross_notional", "leverage", "traded_notional", "fees", "funding",
                "impact", "spread")
"""Columns of ``BacktestResult.steps`` (besides per-asset frames): values at each decision
step's end. ``fees``, ``funding``, ``impact`` and ``spread`` are cumulative costs so far
(USDC); ``traded_notional`` is the notional traded during that step."""


@dataclass(frozen=True)
class BacktestResult:
    """One policy run over one span of market data on the perpetual simulator.

    ``steps`` is indexed by the UTC timestamp of each decision step's last bar, and its
    first row is the state *before* the first decision (equity = initial capital), so
    ``steps["equity"].pct_change()`` gives one return per decision step.
    """

    name: str
    """The policy's name (a checkpoint path, or a rule such as ``buy_and_hold``)."""
    assets: tuple[str, ...]
    steps: pd.DataFrame
    """Per-step account values, columns ``STEP_COLUMNS``."""
    positions: pd.DataFrame
    """Signed position notional (USDC, at the mark price) per asset; same index as steps."""
    prices: pd.DataFrame
    """Close price per asset at each step; same index as steps."""
    ledger: pd.DataFrame
    """Every fill, fee, funding payment, stop and liquidation (envs.ledger columns)."""
    initial_capital: float
    periods_per_year: float
    """Decision steps per year (from the bar spacing), for annualising."""
    risk_free_rate: float = 0.03
    ended_early: str | None = None
    """Why the run stopped before the span's end ("liquidation", "max_drawdown"), or None."""
    benchmark: pd.Series | None = None
    """Equity of the buy-and-hold benchmark over the same index (same initial capital)."""
    meta: dict = field(default_factory=dict)
    """Free-form provenance: data span, config digest, checkpoint, seed."""

    @property
    def equity(self) -> pd.Series:
        return self.steps["equity"]

    @property
    def returns(self) -> pd.Series:
        """Simple return per decision step (first row dropped)."""
        return self.steps["equity"].pct_change().iloc[1:]

    def __post_init__(self) -> None:
        missing = [c for c in STEP_COLUMNS if c not in self.steps.columns]
        if missing:
            raise ValueError(f"steps frame lacks columns {missing}")
        for name, frame in (("positions", self.positions), ("prices", self.prices)):
            if not frame.index.equals(self.steps.index):
                raise ValueError(f"{name} must share the steps index")
            if tuple(frame.columns) != self.assets:
                raise ValueError(f"{name} columns {tuple(frame.columns)} != assets {self.assets}")
        if len(self.steps) < 2:
            raise ValueError("a backtest needs at least one decision step")
        if not np.isfinite(self.steps["equity"].to_numpy()).all():
            raise ValueError("equity holds non-finite values")
