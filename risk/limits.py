"""Risk limits shared by the environment, backtests and serving.

One typed config, so the limits a policy trained under are the limits it is
backtested and served under. The env applies them to every order before it
reaches the book (caps scale orders down; they never silently drop a breach).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BRACKETS: tuple[tuple[float, float], ...] = (
    (0.0, 0.004),
    (50_000.0, 0.005),
    (500_000.0, 0.01),
    (8_000_000.0, 0.025),
    (50_000_000.0, 0.05),
    (80_000_000.0, 0.10),
    (100_000_000.0, 0.125),
    (200_000_000.0, 0.15),
    (300_000_000.0, 0.25),
)
"""(notional floor, maintenance rate) per bracket (Binance BTCUSDT): the one table the env's
MarginConfig and the risk engine's margin maths share."""


class RiskLimits(BaseModel):
    """Portfolio limits applied before orders are executed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_leverage: float = Field(
        20.0, gt=0, le=125, description="Cap on gross notional / equity after every order."
    )
    max_concentration: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "Cap on one asset's notional as a fraction of the leverage budget "
            "(max_leverage x equity): keeps one asset from taking the whole book."
        ),
    )
    daily_loss_limit: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Loss since the UTC day's start, as a fraction of that day's starting equity, "
            "beyond which only risk-reducing orders are accepted until the next day."
        ),
    )
    max_drawdown: float = Field(
        0.30, gt=0, le=1, description="Drawdown from peak equity that ends the episode."
    )
    warning_fraction: float = Field(
        0.8,
        gt=0,
        lt=1,
        description=(
            "Alerts warn when a metric reaches this fraction of its limit and turn critical at "
            "the limit: a warning leaves time to act before the hard stop."
        ),
    )
    var_confidence: float = Field(
        0.99, gt=0, lt=1, description="Confidence of the VaR checked against max_var."
    )
    max_var: float = Field(
        0.10,
        gt=0,
        description=(
            "Cap on one-period historical VaR of the current book, as a fraction of equity "
            "(the period is that of the return history supplied)."
        ),
    )
    max_margin_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Cap on maintenance margin / equity; liquidation happens at 1.",
    )
    correlation_threshold: float = Field(
        0.7,
        gt=-1,
        lt=1,
        description="Return correlation above which assets are grouped as one correlated bet.",
    )
    max_correlated_exposure: float = Field(
        15.0,
        gt=0,
        description="Cap on the gross notional / equity of one correlated group of assets.",
    )
    max_counterparty_share: float = Field(
        1.0,
        gt=0,
        le=1,
        description=(
            "Cap on the share of equity held at one exchange; 1 allows a single venue, lower "
            "values force spreading equity so one exchange failure cannot take it all."
        ),
    )
