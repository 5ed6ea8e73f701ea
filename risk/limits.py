"""Risk limits shared by the environment, backtests and serving.

One typed config, so the limits a policy trained under are the limits it is
backtested and served under. The env applies them to every order before it
reaches the book (caps scale orders down; they never silently drop a breach).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
