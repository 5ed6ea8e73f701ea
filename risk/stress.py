"""Stress tests: historical and hypothetical shocks replayed on the current book.

VaR describes ordinary bad days; stress tests ask whether the account survives the days
that made crypto history. Each scenario moves mark prices (and optionally funding and
liquidity), then the book is re-margined with the same tiered maintenance margin the
simulator uses, so "liquidated" here means what it means in the environment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import stats

from risk.limits import DEFAULT_BRACKETS
from risk.liquidity import MarketLiquidity, liquidity_table

SCENARIO_FILE = Path(__file__).with_name("scenarios.json")
DEFAULT_BETAS: dict[str, float] = {"BTC": 1.0, "ETH": 1.2, "SOL": 1.5, "default": 1.3}
"""Rough betas to BTC for correlated hypothetical shocks when none are estimated."""
_FROZEN = ConfigDict(frozen=True, extra="forbid")


def bracket_allowances(brackets: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Allowance per bracket, cum_k = cum_{k-1} + floor_k * (rate_k - rate_{k-1}).

    The allowance makes the margin continuous where a position crosses into a higher rate.
    """
    floors, rates = np.array(brackets, dtype=np.float64).T
    return np.concatenate([[0.0], np.cumsum(floors[1:] * np.diff(rates))])


def position_maintenance(
    notional: np.ndarray, brackets: tuple[tuple[float, float], ...] = DEFAULT_BRACKETS
) -> np.ndarray:
    """Maintenance margin per position: |notional| * rate - allowance of its bracket."""
    size = np.abs(np.asarray(notional, dtype=np.float64))
    floors, rates = np.array(brackets, dtype=np.float64).T
    k = np.searchsorted(floors, size, side="right") - 1
    return size * rates[k] - bracket_allowances(brackets)[k]


def maintenance_margin(
    notional_per_asset: Mapping[str, float] | np.ndarray,
    brackets: tuple[tuple[float, float], ...] = DEFAULT_BRACKETS,
) -> float:
    """Total maintenance margin of a book: each position margined on its own bracket."""
    values = notional_per_asset
    if isinstance(values, Mapping):
        values = list(values.values())
    return float(position_maintenance(np.asarray(values, dtype=np.float64), brackets).sum())


class PortfolioSnapshot(BaseModel):
    """The book at one moment: the shared input of stress tests, alerts and reports."""

    model_config = _FROZEN

    positions: dict[str, float] = Field(description="Signed quantity per asset (short < 0).")
    marks: dict[str, float] = Field(description="Mark price per asset; covers every position.")
    equity: float = Field(description="Wallet plus unrealised PnL (quote currency).")
    peak_equity: float | None = Field(None, description="Highest equity so far (drawdown).")
    day_start_equity: float | None = Field(
        None, description="Equity at the UTC day's start (daily loss limit)."
    )
    exchanges: dict[str, str] = Field(
        default_factory=dict, description="Exchange per asset; unlisted assets are 'primary'."
    )
    exchange_equity: dict[str, float] = Field(
        default_factory=dict, description="Equity held per exchange, when known."
    )
    brackets: tuple[tuple[float, float], ...] = Field(
        DEFAULT_BRACKETS,
        description="Maintenance bracket table (floor, rate), ascending: the table of every "
        "asset without its own in asset_brackets.",
    )
    asset_brackets: dict[str, tuple[tuple[float, float], ...]] = Field(
        default_factory=dict,
        description="Each asset's own table, by the asset's name in positions (as the "
        "simulator margins it: envs.config.MarginConfig.table).",
    )
    timestamp: datetime | None = Field(None, description="When the snapshot was taken (UTC).")

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioSnapshot:
        for name, table in (("brackets", self.brackets), *self.asset_brackets.items()):
            floors, rates = [f for f, _ in table], [r for _, r in table]
            if (
                not floors
                or floors[0] != 0.0
                or floors != sorted(set(floors))
                or rates != sorted(rates)
            ):
                raise ValueError(f"{name}: brackets must start at 0 with ascending floors "
                                 "and rates")
        missing = sorted(set(self.positions) - set(self.marks))
        if missing:
            raise ValueError(f"no mark price for positions {missing}")
        if not all(math.isfinite(p) and p > 0 for p in self.marks.values()):
            raise ValueError("mark prices must be finite and positive")
        if not all(math.isfinite(q) for q in self.positions.values()):
            raise ValueError("positions must be finite")
        if not math.isfinite(self.equity):
            raise ValueError("equity must be finite")
        return self

    def notional(self) -> pd.Series:
        """Signed notional per asset at the marks."""
        return pd.Series({a: q * self.marks[a] for a, q in self.positions.items()}, dtype=float)

    @property
    def gross_exposure(self) -> float:
        return float(self.notional().abs().sum())

    @property
    def net_exposure(self) -> float:
        return float(self.notional().sum())

    @property
    def leverage(self) -> float:
        """Gross notional / equity; infinite when equity is gone but positions remain."""
        gross = self.gross_exposure
        if gross == 0.0:
            return 0.0
        return gross / self.equity if self.equity > 0 else math.inf

    def weights(self) -> pd.Series:
        """Signed notional / equity per asset: the weights VaR is computed on."""
        return self.notional() / self.equity

    def table(self, asset: str) -> tuple[tuple[float, float], ...]:
        """The bracket table ``asset`` is margined with."""
        return self.asset_brackets.get(asset, self.brackets)

    def position_maintenance(self, notional: Mapping[str, float]) -> np.ndarray:
        """Maintenance margin per position (in ``notional``'s order), each on its asset's
        own table."""
        return np.array([position_maintenance(np.array([value]), self.table(asset))[0]
                         for asset, value in notional.items()], dtype=np.float64)

    def maintenance(self) -> float:
        return float(self.position_maintenance(self.notional().to_dict()).sum())

    @property
    def margin_ratio(self) -> float:
        """Maintenance / equity: liquidation happens at 1."""
        return _ratio(self.maintenance(), self.equity)


def _ratio(maintenance: float, equity: float) -> float:
    if equity > 0:
        return maintenance / equity
    return math.inf if maintenance > 0 or equity < 0 else 0.0


class Scenario(BaseModel):
    """One stress scenario, stored as data so new events need no code."""

    model_config = _FROZEN

    name: str = Field(min_length=1, description="Unique identifier.")
    kind: Literal["historical", "hypothetical"] = Field(
        "hypothetical", description="Replayed from history or invented."
    )
    date: str | None = Field(None, description="Day or 'start/end' days of a historical event.")
    description: str = Field("", description="What happened and how the shocks were chosen.")
    shocks: dict[str, float] = Field(
        default_factory=dict,
        description="Fractional price change per asset; 'default' covers unlisted assets.",
    )
    adverse_sigma: float = Field(
        0.0, ge=0, description="Extra move against each position, in (stressed) daily sigmas."
    )
    vol_multiplier: float = Field(1.0, gt=0, description="Daily volatility multiplier.")
    funding_rate: float = Field(
        0.0, description="Funding rate per 8-hour period during the scenario; >0: longs pay."
    )
    funding_periods: int = Field(0, ge=0, description="Funding payments made at that rate.")
    spread_multiplier: float = Field(1.0, gt=0, description="Spread widening on close-out.")
    volume_multiplier: float = Field(1.0, gt=0, description="Traded-volume factor (<1: thinner).")

    @field_validator("shocks")
    @classmethod
    def _possible(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(x) and x > -1.0 for x in value.values()):
            raise ValueError("price shocks must be finite and above -100%")
        return value

    def price_shock(self, asset: str) -> float:
        return self.shocks.get(asset, self.shocks.get("default", 0.0))


def load_scenarios(path: Path | str = SCENARIO_FILE) -> tuple[Scenario, ...]:
    """Historical scenarios from a JSON file with a 'scenarios' list."""
    raw = json.loads(Path(path).read_text())
    return tuple(Scenario.model_validate(s) for s in raw["scenarios"])


def betas_from_returns(asset_returns: pd.DataFrame, market: str = "BTC") -> dict[str, float]:
    """Beta of each asset to `market` (cov / var) from aligned simple returns."""
    if market not in asset_returns:
        raise ValueError(f"market asset {market!r} is not a column of the returns")
    cov = asset_returns.cov()
    return {a: float(cov.loc[a, market] / cov.loc[market, market]) for a in asset_returns}


def hypothetical_scenarios(
    betas: Mapping[str, float] | None = None,
    btc_shock: float = -0.30,
    vol_spike: float = 3.0,
    funding_rate: float = 0.003,
    funding_periods: int = 9,
    spread_multiplier: float = 10.0,
    volume_multiplier: float = 0.2,
) -> tuple[Scenario, ...]:
    """Invented shocks that history may not contain yet, each isolating one risk."""
    beta = {**DEFAULT_BETAS, **(betas or {})}
    crash = {a: max(b * btc_shock, -0.99) for a, b in beta.items()}
    z99 = float(stats.norm.ppf(0.99))
    return (
        Scenario(
            name="btc_crash_correlated",
            description=f"BTC {btc_shock:+.0%}; other assets move by their beta to BTC.",
            shocks=crash,
            vol_multiplier=vol_spike,
            spread_multiplier=3.0,
            volume_multiplier=0.5,
        ),
        Scenario(
            name="volatility_spike",
            description=f"Volatility x{vol_spike}: every asset moves a 99% day against the book.",
            adverse_sigma=z99,
            vol_multiplier=vol_spike,
            spread_multiplier=2.0,
        ),
        Scenario(
            name="funding_spike_longs_pay",
            description=f"Funding {funding_rate:+.2%} per 8 h for {funding_periods} periods.",
            funding_rate=funding_rate,
            funding_periods=funding_periods,
        ),
        Scenario(
            name="funding_spike_shorts_pay",
            description=f"Funding {-funding_rate:+.2%} per 8 h for {funding_periods} periods.",
            funding_rate=-funding_rate,
            funding_periods=funding_periods,
        ),
        Scenario(
            name="liquidity_crunch",
            description=(
                f"Spreads x{spread_multiplier}, volume x{volume_multiplier}: prices hold but "
                "exiting costs more."
            ),
            spread_multiplier=spread_multiplier,
            volume_multiplier=volume_multiplier,
        ),
    )


@dataclass(frozen=True)
class StressResult:
    """Outcome of one scenario; pnl is mark-to-market, close-out cost is reported apart."""

    scenario: str
    kind: str
    price_pnl: float
    funding_pnl: float
    pnl: float
    equity_after: float
    maintenance_after: float
    margin_ratio: float
    liquidated: bool
    closeout_cost: float
    equity_after_closeout: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def stress_test(
    snapshot: PortfolioSnapshot, scenario: Scenario, liquidity: MarketLiquidity | None = None
) -> StressResult:
    """Apply one scenario's shocks to the snapshot and re-margin the shocked book."""
    liq = liquidity or MarketLiquidity()
    assets = list(snapshot.positions)
    qty = np.array([snapshot.positions[a] for a in assets], dtype=np.float64)
    mark = np.array([snapshot.marks[a] for a in assets], dtype=np.float64)
    vol = np.array([liq.profile(a)[2] for a in assets], dtype=np.float64)
    move = np.array([scenario.price_shock(a) for a in assets], dtype=np.float64)
    move = np.maximum(
        move - np.sign(qty) * scenario.adverse_sigma * scenario.vol_multiplier * vol, -0.99
    )
    new_mark = mark * (1.0 + move)
    price_pnl = float(np.sum(qty * (new_mark - mark)))
    funding_pnl = (
        -float(np.sum(qty * new_mark)) * scenario.funding_rate * scenario.funding_periods + 0.0
    )
    equity = snapshot.equity + price_pnl + funding_pnl
    maint = float(snapshot.position_maintenance(dict(zip(assets, qty * new_mark,
                                                          strict=True))).sum())
    exit_cost = liquidity_table(
        dict(zip(assets, qty * new_mark, strict=True)),
        liq,
        spread_multiplier=scenario.spread_multiplier,
        volume_multiplier=scenario.volume_multiplier,
        vol_multiplier=scenario.vol_multiplier,
    )["total_cost"].sum()
    return StressResult(
        scenario=scenario.name,
        kind=scenario.kind,
        price_pnl=price_pnl,
        funding_pnl=funding_pnl,
        pnl=price_pnl + funding_pnl,
        equity_after=equity,
        maintenance_after=maint,
        margin_ratio=_ratio(maint, equity),
        liquidated=bool(equity <= maint),
        closeout_cost=float(exit_cost),
        equity_after_closeout=equity - float(exit_cost),
    )


def run_stress(
    snapshot: PortfolioSnapshot,
    scenarios: Iterable[Scenario] | None = None,
    liquidity: MarketLiquidity | None = None,
) -> pd.DataFrame:
    """Every scenario (default: stored historical plus hypothetical) as one row each."""
    chosen = (
        tuple(scenarios) if scenarios is not None else load_scenarios() + hypothetical_scenarios()
    )
    rows = [stress_test(snapshot, s, liquidity).to_dict() for s in chosen]
    columns = [f.name for f in fields(StressResult)]
    return pd.DataFrame(rows, columns=columns).set_index("scenario")
