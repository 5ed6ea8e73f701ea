"""The exchange is the truth: its positions and balance against the local book, each bar.

A session trading on an exchange keeps the simulator's book as its model of the account
(it schedules orders and computes the observation). After every bar
:func:`reconcile` reads the exchange's positions and balance through ccxt
(``fetch_positions``, ``fetch_balance``) and compares: a position that differs by more
than one amount step of its market, or equity that differs by more than a tolerance, is
a difference (an alert; past ``kill_fraction`` of equity, a reason to trip the kill
switch). :func:`adopt` then puts the exchange's quantities, entries and wallet into the
local account, so the next decision starts from what is really held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ccxt

from envs.account import Account
from live import dialects
from live.orders import amount_step


@dataclass(frozen=True)
class Difference:
    asset: str
    local: float
    exchange: float
    step: float
    """The market's amount precision: differences within it are rounding."""
    mark: float

    @property
    def notional(self) -> float:
        return abs(self.exchange - self.local) * self.mark


@dataclass
class Reconciliation:
    """What the exchange holds, and where the local book disagrees with it."""

    positions: dict[str, float]
    entries: dict[str, float]
    marks: dict[str, float]
    equity: float
    unrealized: float
    local_equity: float
    differences: list[Difference] = field(default_factory=list)

    @property
    def equity_gap(self) -> float:
        return self.equity - self.local_equity

    def worst_fraction(self) -> float:
        """The largest position difference's notional, as a fraction of equity."""
        if not self.differences:
            return 0.0
        return max(d.notional for d in self.differences) / max(self.equity, 1e-9)

    def breached(self, kill_fraction: float) -> bool:
        return self.worst_fraction() > kill_fraction


def reconcile(exchange: ccxt.Exchange, symbols: dict[str, str], account: Account,
              settle: str = "USDT") -> Reconciliation:
    """The exchange's view of ``account``'s assets (``symbols``: asset -> ccxt symbol)."""
    by_symbol = {p["symbol"]: p for p in dialects.positions(exchange, list(symbols.values()),
                                                              settle)}
    balance = exchange.fetch_balance()
    positions, entries, marks, differences = {}, {}, {}, []
    unrealized = 0.0
    for asset, symbol in symbols.items():
        held = by_symbol.get(symbol)
        qty = 0.0
        if held is not None and held.get("contracts"):
            size = float(held["contracts"]) * float(held.get("contractSize") or 1.0)
            qty = size if held.get("side") == "long" else -size
            entries[asset] = float(held["entryPrice"])
            marks[asset] = float(held.get("markPrice") or held["entryPrice"])
            unrealized += float(held.get("unrealizedPnl") or 0.0)
        positions[asset] = qty
        local = account.book[asset]["quantity"]
        step = amount_step(exchange, symbol)
        if abs(qty - local) > step * (1.0 + 1e-9):
            mark = marks.get(asset) or account.book[asset]["entry_price"] or 0.0
            differences.append(Difference(asset, local, qty, step, mark))
    equity = dialects.equity(exchange, balance, settle, unrealized)
    return Reconciliation(positions, entries, marks, equity, unrealized,
                          account.values["equity"], differences)


def adopt(account: Account, found: Reconciliation) -> None:
    """Put the exchange's positions, entries and wallet into ``account`` (in place); the
    simulator's next mark to market recomputes equity from them."""
    for asset, qty in found.positions.items():
        row = account.book[asset]
        was_open = row["quantity"] != 0.0
        row["quantity"] = qty
        row["entry_price"] = found.entries.get(asset, 0.0) if qty else 0.0
        if qty and not was_open:
            account.book[asset]["bars_held"] = 0.0
    account.values["wallet"] = found.equity - found.unrealized
    account.values["equity"] = found.equity
