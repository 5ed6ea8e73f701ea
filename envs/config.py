"""Typed, frozen parameters of the perpetual-futures simulator and its environments.

Defaults follow the seed (1M USDC, 20x, taker 0.04%, funding multiplier 0.8,
risk-free 3%, max drawdown 30%) and Binance USDT-M conventions where the seed is
silent (maker 0.02%, the BTCUSDT maintenance-margin brackets).
"""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from risk.brackets import PUBLISHED_BRACKETS, PUBLISHED_LEVERAGE
from risk.limits import DEFAULT_BRACKETS, RiskLimits
from risk.sizing import SizingConfig

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ExecStyle(IntEnum):
    """How an order is worked (the execution head chooses one per asset)."""

    MARKET = 0
    """Taker at the next bar's open: pays taker fee, half-spread and full impact."""
    TWAP = 1
    """Equal slices over `horizon` bars at each bar's typical price (taker, impact per slice)."""
    VWAP = 2
    """Slices in proportion to each bar's volume vs the trailing average (taker)."""
    LIMIT = 3
    """Passive iceberg at the touch: maker fee, no spread or impact; a clip fills only in a
    bar that trades through the limit price; the rest expires after `horizon` bars."""
    FUNDING_AWARE = 4
    """Market, but an order that opens or adds into a funding payment the position would pay
    waits until that funding time has passed."""


class CostConfig(BaseModel):
    """Trading costs. Spread and impact are charged as costs; positions carry mid prices."""

    model_config = _FROZEN
    taker_fee: float = Field(0.0004, ge=0, lt=0.01, description="Taker fee on traded notional.")
    maker_fee: float = Field(0.0002, ge=0, lt=0.01, description="Maker fee on traded notional.")
    min_half_spread: float = Field(
        0.00005, ge=0, description="Floor of the half-spread estimate (fraction of price)."
    )
    max_half_spread: float = Field(
        0.005, gt=0, description="Cap of the half-spread estimate: high-low estimators spike."
    )
    impact_k: float = Field(
        0.5,
        ge=0,
        description="Square-root impact: k * daily vol * sqrt(order notional / daily notional).",
    )


Brackets = tuple[tuple[float, float], ...]


def check_brackets(value: Brackets) -> Brackets:
    """A bracket table starts at notional 0, floors and rates strictly ascending."""
    floors = [f for f, _ in value]
    rates = [r for _, r in value]
    if not value or floors[0] != 0.0:
        raise ValueError("brackets must start at notional 0")
    if floors != sorted(set(floors)) or rates != sorted(rates) or not all(0 < r < 1 for r in rates):
        raise ValueError("bracket floors and rates must be strictly ascending, rates in (0, 1)")
    return value


def allowances_of(brackets: Brackets) -> tuple[float, ...]:
    """Maintenance amount per bracket: cum_k = cum_{k-1} + floor_k * (rate_k - rate_{k-1}),
    so the margin is continuous in notional (Binance's ``cum``)."""
    out, cum = [0.0], 0.0
    for (floor, rate), (_, prev_rate) in zip(brackets[1:], brackets[:-1], strict=True):
        cum += floor * (rate - prev_rate)
        out.append(cum)
    return tuple(out)


class MarginConfig(BaseModel):
    """Tiered maintenance margin (a bracket table per asset) and liquidation."""

    model_config = _FROZEN
    brackets: Brackets = Field(
        DEFAULT_BRACKETS,
        description=(
            "(notional floor, maintenance rate) per bracket, ascending (Binance BTCUSDT): the "
            "table of an asset without its own in asset_brackets."
        ),
    )
    asset_brackets: dict[str, Brackets] = Field(
        default_factory=lambda: dict(PUBLISHED_BRACKETS),
        description="Each asset's own table, by asset name (BTC, ETH, ...): Binance's published "
        "USDT-M tiers for BTC, ETH, SOL, BNB and XRP by default; a collected store's tiers "
        "(market.tiers) replace them for its assets.",
    )
    asset_leverage: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: dict(PUBLISHED_LEVERAGE),
        description="Max initial leverage of each bracket of an asset's own table: at the "
        "account's leverage (limits.max_leverage) a position may not reach a bracket that "
        "allows less (the exchange's position limit per leverage). Assets without: no cap.",
    )
    liquidation_fee: float = Field(
        0.005, ge=0, lt=0.1, description="Fee on the notional closed by a liquidation."
    )

    @model_validator(mode="after")
    def _leverage_per_bracket(self) -> MarginConfig:
        for asset, levels in self.asset_leverage.items():
            if len(levels) != len(self.table(asset)):
                raise ValueError(f"asset_leverage[{asset!r}] needs one level per bracket")
        return self

    def position_cap(self, asset: str, leverage: float) -> float:
        """Largest notional an asset's position may have at this leverage: the floor of
        its first bracket whose max leverage is below it (inf when none is)."""
        levels = self.asset_leverage.get(asset.upper())
        if levels is None:
            return float("inf")
        for (floor, _), level in zip(self.table(asset), levels, strict=True):
            if level < leverage:
                return floor
        return float("inf")

    @field_validator("brackets")
    @classmethod
    def _ascending(cls, value: Brackets) -> Brackets:
        return check_brackets(value)

    @field_validator("asset_brackets")
    @classmethod
    def _each_ascending(cls, value: dict[str, Brackets]) -> dict[str, Brackets]:
        return {asset: check_brackets(table) for asset, table in value.items()}

    def table(self, asset: str) -> Brackets:
        """The bracket table an asset is margined with."""
        return self.asset_brackets.get(asset.upper(), self.brackets)

    def allowances(self) -> tuple[float, ...]:
        """The default table's maintenance amounts (allowances_of)."""
        return allowances_of(self.brackets)


class ExecutionConfig(BaseModel):
    """What the execution and risk-limit heads' values mean."""

    model_config = _FROZEN
    max_horizon: int = Field(
        8, ge=1, le=64, description="Longest TWAP/VWAP/iceberg horizon (bars)."
    )
    stop_loss_atr: tuple[float, float] = Field(
        (0.5, 10.0), description="Stop-loss distance range in ATR multiples (action 0 -> 1)."
    )
    take_profit_atr: tuple[float, float] = Field(
        (0.5, 20.0), description="Take-profit distance range in ATR multiples (action 0 -> 1)."
    )
    rebalance_threshold: float = Field(
        0.002,
        ge=0,
        description=(
            "Orders smaller than this fraction of equity are not sent: tiny rebalances would "
            "only pay fees."
        ),
    )
    rebalance_band: float = Field(
        0.1,
        ge=0,
        lt=1,
        description=(
            "No-trade band: a change of a position on the same side smaller than this "
            "fraction of the asset's exposure budget (max_concentration x max_leverage x "
            "equity, what size 1 means) is not sent. Sizes are continuous, so without a band "
            "every decision would trade a little; with it, holding is an action the policy "
            "can take without repeating its last size exactly (0.1: ten size levels)."
        ),
    )
    stops: bool = Field(
        True,
        description=(
            "Place the risk head's stop-loss and take-profit orders. Off for the rule "
            "baselines (backtest.baselines): a buy-and-hold with a stop is not one, and "
            "stops in ATRs of one-minute bars fire often on real one-minute tails."
        ),
    )
    funding_window_bars: int = Field(
        60, ge=0, description="Funding-aware orders wait if a paying funding event is this close."
    )
    time_stop_bars: int | None = Field(
        None, ge=1, description="Close a position at the open of the bar N bars after the one "
        "it opened in (a time-based exit; the seed's time stops). None: off."
    )
    trailing_stop_atr: float | None = Field(
        None, gt=0, description="After each bar, move a position's stop-loss to within this "
        "many ATRs of the close when that tightens it (never loosens). Needs stops. None: off."
    )
    break_even_atr: float | None = Field(
        None, gt=0, description="Once a position is this many ATRs in profit at a close, move "
        "its stop-loss to the entry price (profit protection). Needs stops. None: off."
    )


class RewardConfig(BaseModel):
    """Reward = change in log equity - sum of weighted penalty terms (each logged)."""

    model_config = _FROZEN
    drawdown: float = Field(0.0, ge=0, description="Weight on the increase in drawdown this step.")
    turnover: float = Field(0.0, ge=0, description="Weight on traded notional / equity this step.")
    leverage: float = Field(0.0, ge=0, description="Weight on gross leverage / max leverage.")
    scale: float = Field(
        100.0, gt=0, description="Multiplier on the whole reward (log returns are tiny)."
    )


class ShieldConfig(BaseModel):
    """The risk shield between the policy's targets and the book (envs/core/shield.py):
    the same kernel in training, backtests, paper trading and serving. Every rule only
    shrinks targets toward zero (never flips or grows one), in this order: volatility
    targeting (per-asset cap on |notional| / equity), each asset's own regime multiplier,
    the drawdown schedule, correlation-group caps and the gross cap (risk.sizing's
    settings), then the post-trade book's one-day VaR and expected shortfall (normal,
    from the trailing day's covariance of returns) and its maintenance margin / equity,
    each by one common scale. What it cut is in the book (SHIELD_SCALE, SHIELD_RULES)."""

    model_config = _FROZEN
    enabled: bool = Field(False, description="Apply the shield.")
    sizing: SizingConfig = SizingConfig()
    var_confidence: float = Field(0.99, gt=0.5, lt=1, description="VaR / ES confidence.")
    max_var: float | None = Field(
        0.10, gt=0, description="Cap on the post-trade book's one-day VaR, fraction of equity."
    )
    max_es: float | None = Field(
        0.12, gt=0, description="Cap on its one-day expected shortfall, fraction of equity."
    )
    max_margin_ratio: float | None = Field(
        0.5, gt=0, le=1, description="Cap on maintenance margin / equity after the trade."
    )
    observe: bool = Field(
        False, description="Show the shield to the policy: per asset, the share of its last "
        "target the shield left and the room its per-asset rules leave now "
        "(envs.core.observe.SHIELD_FEATURES), so training learns to size within it. Part of "
        "the observation space: a run trained with it keeps it when a backtest turns the "
        "shield off (then the share reads 1 and the room is what the rules would allow).",
    )

    @field_validator("sizing")
    @classmethod
    def _few_steps(cls, value: SizingConfig) -> SizingConfig:
        if len(value.drawdown.steps) > MAX_DRAWDOWN_STEPS:
            raise ValueError(f"the shield takes at most {MAX_DRAWDOWN_STEPS} drawdown steps")
        return value


MAX_DRAWDOWN_STEPS = 4


class EnvConfig(BaseModel):
    """Everything that defines an environment instance except the market data."""

    model_config = _FROZEN
    initial_balance: float = Field(1_000_000.0, gt=0, description="Starting wallet in USDC.")
    funding_multiplier: float = Field(
        0.8, ge=0, description="Scales data funding rates (the seed's funding fee multiplier)."
    )
    risk_free_rate: float = Field(0.03, description="Annual rate for Sharpe ratios in reports.")
    window: int = Field(
        24,
        ge=2,
        description=(
            "Bars of market features in each observation. The features already summarise "
            "longer history (MACD 26, z-scores over a day), so a short window suffices, and "
            "copying it is most of the simulator's cost per step."
        ),
    )
    risk_window: int = Field(16, ge=1, description="Steps of portfolio risk features observed.")
    episode_steps: int = Field(1440, ge=1, description="Decisions per episode (fixed length).")
    bars_per_step: int = Field(1, ge=1, description="Bars that pass between decisions.")
    costs: CostConfig = CostConfig()
    margin: MarginConfig = MarginConfig()
    execution: ExecutionConfig = ExecutionConfig()
    limits: RiskLimits = RiskLimits()
    reward: RewardConfig = RewardConfig()
    shield: ShieldConfig = ShieldConfig()
    record_ledger: bool = Field(
        True,
        description="Keep every fill/fee/funding/liquidation event (slower; off for training).",
    )

    @model_validator(mode="after")
    def _check(self) -> EnvConfig:
        lo, hi = self.execution.stop_loss_atr
        if not 0 < lo <= hi:
            raise ValueError("stop_loss_atr must be 0 < low <= high")
        return self
