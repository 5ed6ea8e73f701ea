"""A session's orders on an exchange: settle each bar against it, then send the next.

At every bar close, after the paper book has run the bar with the simulator (its model of
what the orders did), :meth:`ExchangeExecutor.settle`:

1. cancels this session's entry orders still open (a limit clip lives one bar, as in the
   simulator), then reads what the exchange holds (live.reconcile): every position that
   differs from the model's beyond one amount step is recorded with the exchange's and
   the model's equity and the funding the exchange booked (its income history); past
   ``kill_fraction`` of equity the difference trips the kill switch;
2. adopts the exchange's positions, entries and wallet into the book.

Then :meth:`ExchangeExecutor.plan` translates the book's working orders into the next
bar's child orders (live.orders), with reduce-only stop-loss and take-profit orders
replaced whenever the position or the book's stop prices change, and journals them as
pending in the router (live.router); the session commits the bar; :meth:`dispatch`
sends them. Orders belong to a committed bar: a crash before the commit re-runs the bar
(nothing was sent), a crash after it leaves pending intents that :meth:`recover` settles
by client id (sent if the exchange lacks them) when the session starts again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ccxt
import numpy as np

from envs.core.layout import M_CLOSE, QTY, SL_PX, TP_PX
from envs.core.params import pack_params
from live.dialects import (
    client_id,
    cross_margin,
    funding_received,
    leverage_set,
    one_way,
    protective_params,
)
from live.monitors import Breach
from live.orders import client_order_id, contract_size, protective_orders, translate
from live.reconcile import adopt, reconcile
from live.router import OrderRouter, Outcome
from market.exchanges import describe_error

MODEL_FILLS = ("fill", "stop_loss", "take_profit")
"""The simulator's ledger kinds an exchange fill of the same bar is compared with: its
order fills and its stop-loss and take-profit closes (the exchange's stop orders)."""


@dataclass
class ExchangeExecutor:
    exchange: ccxt.Exchange
    symbols: dict[str, str]
    """Asset -> ccxt symbol, in the book's asset order."""
    router: OrderRouter
    run_id: str
    config: Any
    """The session's EnvConfig."""
    kill_fraction: float = 0.02
    max_errors: int = 5
    """Bars in a row the exchange may fail to answer before the kill switch trips."""
    errors: int = 0
    _stops: dict[str, tuple] = field(default_factory=dict)
    """Per asset, the (position, stop, take-profit) the open protective orders cover."""
    _seen: set = field(default_factory=set)
    """(kind, id) of the exchange trades and funding payments already reported."""
    _planned: list = field(default_factory=list)
    _since: dict = field(default_factory=dict)
    """(kind, symbol) -> the time the next history request starts from: the newest record
    seen (ids settle ties), at first a bar before this process started trading."""

    def __post_init__(self) -> None:
        self._start = self.exchange.milliseconds() - 60_000
        self._params = pack_params(self.config, tuple(self.symbols))

    def prepare(self, leverage: int) -> dict[str, int]:
        """Cross margin and ``leverage`` on every symbol, set through ccxt and verified from
        the exchange's answer (the simulator margins one cross wallet at that leverage)."""
        out = {}
        one_way(self.exchange)
        for symbol in self.symbols.values():
            cross_margin(self.exchange, symbol, leverage)
            got = leverage_set(self.exchange, symbol, leverage)
            if got != leverage:
                raise ccxt.ExchangeError(f"{symbol}: asked for {leverage}x leverage, the "
                                         f"exchange set {got}x")
            out[symbol] = got
        return out

    def recover(self) -> list[Outcome]:
        """Settle intents left pending by a crash; forget which stops are open (the next
        send replaces them all)."""
        self._stops.clear()
        return self.router.recover()

    def settle(self, book, tick, model_lines: dict[str, list[dict]] | None = None,
               ) -> tuple[dict[str, list[dict]], Breach | None]:
        """Reconcile the book with the exchange after the bar ``tick`` (module docstring);
        ``model_lines``: the bar's simulated ledger lines, whose fills each exchange fill
        is compared with."""
        try:
            self._cancel(trigger=False)
            fills = self._fills(tick, (model_lines or {}).get("ledger.jsonl", []))
            funding = self._funding()
            found = reconcile(self.exchange, self.symbols, book.account)
        except ccxt.OperationFailed as err:  # no answer this bar: the model stands in
            self.errors += 1
            line = {"bar_time": tick.bar_time, "error": describe_error(err),
                    "consecutive_errors": self.errors}
            breach = None
            if self.errors >= self.max_errors:
                breach = Breach("exchange_errors", self.errors, self.max_errors)
            return {"reconcile.jsonl": [line]}, breach
        self.errors = 0
        model = {a: row["quantity"] for a, row in book.account.book.items()}
        line = {"bar_time": tick.bar_time, "exchange_equity": found.equity,
                "model_equity": found.local_equity, "equity_gap": found.equity_gap,
                "positions": found.positions, "model_positions": model,
                "differences": [{"asset": d.asset, "model": d.local, "exchange": d.exchange,
                                 "notional": d.notional} for d in found.differences]}
        adopt(book.account, found)
        breach = None
        if found.breached(self.kill_fraction):
            breach = Breach("reconciliation", found.worst_fraction(), self.kill_fraction)
        line["funding"] = funding
        return {"reconcile.jsonl": [line], "fills.jsonl": fills}, breach

    def _funding(self) -> dict[str, float]:
        """Funding the exchange booked since the last bar, per asset (its income history:
        positive received, negative paid), as realised, not as modelled."""
        out = {}
        for asset, symbol in self.symbols.items():
            rows = self._new("funding", symbol, self.exchange.fetch_funding_history)
            if rows:
                out[asset] = sum(funding_received(self.exchange, r) for r in rows)
        return out

    def _new(self, kind: str, symbol: str, fetch) -> list[dict]:
        """History records of ``symbol`` not reported yet; each request starts at the newest
        record seen, so it stays one bar long however long the session runs."""
        since = self._since.get((kind, symbol), self._start)
        rows = [r for r in fetch(symbol, since=since) if (kind, r["id"]) not in self._seen]
        self._seen.update((kind, r["id"]) for r in rows)
        if rows:
            self._since[(kind, symbol)] = max(since, *(int(r["timestamp"]) for r in rows))
        return rows

    def _fills(self, tick, ledger: list[dict]) -> list[dict]:
        """The exchange's new fills per asset (price, amount, fee from its trade history)
        beside the simulator's fills of the same bar (MODEL_FILLS: a stop the exchange
        triggered beside the simulator's stop): the price difference in basis points
        (positive: the exchange cost more) against the simulator's spread and impact
        estimate, and the fees both charged."""
        out = []
        for asset, symbol in self.symbols.items():
            trades = self._new("trade", symbol, self.exchange.fetch_my_trades)
            if not trades:
                continue
            unit = contract_size(self.exchange, symbol)  # trade amounts are contracts
            amount = unit * sum(t["amount"] for t in trades)
            signed = unit * sum(t["amount"] * (1 if t["side"] == "buy" else -1)
                                for t in trades)
            price = unit * sum(t["price"] * t["amount"] for t in trades) / amount
            fee = sum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)
            model = [r for r in ledger
                     if r.get("kind") in MODEL_FILLS and r.get("asset") == asset]
            row = {"bar_time": tick.bar_time, "asset": asset, "exchange_qty": signed,
                   "exchange_price": price, "exchange_fee": fee, "model_qty": None}
            if model:
                m_qty = sum(r["qty"] for r in model)
                m_notional = sum(r["notional"] for r in model)
                m_price = m_notional / sum(abs(r["qty"]) for r in model)
                side = 1.0 if signed > 0 else -1.0
                row.update(model_qty=m_qty, model_price=m_price,
                           model_fee=sum(r["fee"] for r in model),
                           model_cost_bps=1e4 * sum(r["spread"] + r["impact"] for r in model)
                           / m_notional,
                           slippage_bps=1e4 * side * (price - m_price) / m_price)
            out.append(row)
        return out

    def plan(self, book, tick) -> dict[str, list[dict]]:
        """The next bar's child orders and, when the position or the book's stop prices
        changed, fresh protective orders (the old ones cancelled first), journaled as
        pending before the bar commits: a crash after the commit cannot lose them (module
        docstring). Sent by :meth:`dispatch` once the bar is committed."""
        data = tick.data
        _, state, _, b = book.account.to_state(data)
        ms = tick.bar_time // 1_000_000
        entries = translate(self.exchange, self.run_id, ms, self.symbols, state, data.mkt,
                            self._params, b, self.config, book.account.values["equity"])
        intents, skipped = list(entries.orders), list(entries.skipped)
        held = state[:, QTY] + self._market_fills(entries.orders)
        wanted = {a: (round(float(held[k]), 9), state[k, SL_PX], state[k, TP_PX])
                  for k, a in enumerate(self.symbols)}  # rounded: no churn from float noise
        if wanted != self._stops and self._cancelled_stops():
            stops = protective_orders(self.exchange, self.run_id, ms, self.symbols, state,
                                      held, data.mkt[b, :, M_CLOSE])
            intents += stops.orders
            skipped += stops.skipped
            snapped = _snap_stops(book.account, stops.orders)
            self._stops = {a: (w[0], *snapped.get(a, w[1:])) for a, w in wanted.items()}
        self.router.journal(intents)
        self._planned = intents
        return {"execution.jsonl": [{
            "bar_time": tick.bar_time,
            "orders": [i.to_dict() for i in intents],
            "skipped": [vars(s) for s in skipped],
            "cut": entries.cut,
        }]}

    def _market_fills(self, orders) -> np.ndarray:
        """The signed base quantity per asset this bar's market orders add. Protective
        orders are sized for the position after them and sent right after them, so a new
        position's stops rest from its entry bar on, where the simulator checks them too;
        sized for the position before, they would start a bar late."""
        index = {asset: k for k, asset in enumerate(self.symbols)}
        out = np.zeros(len(index))
        for order in orders:
            if order.type == "market":
                unit = contract_size(self.exchange, order.symbol)
                sign = 1.0 if order.side == "buy" else -1.0
                out[index[order.asset]] += sign * order.amount * unit
        return out

    def dispatch(self) -> list[Outcome]:
        """Send what :meth:`plan` journaled (outcomes go to the router's orders.jsonl)."""
        intents, self._planned = self._planned, []
        return self.router.submit(intents)

    def _cancelled_stops(self) -> bool:
        """Cancel the open protective orders; False when the exchange did not answer (the
        old ones stay until a later bar replaces them)."""
        try:
            self._cancel(trigger=True)
        except ccxt.OperationFailed:
            return False
        return True

    def _cancel(self, trigger: bool) -> None:
        """Cancel this run's open orders of one kind (entries, or stop/take-profit)."""
        prefix = client_order_id(self.run_id, 0, 0, "entry")[:17]
        params = protective_params(self.exchange, trigger)
        for symbol in self.symbols.values():
            for order in self.exchange.fetch_open_orders(symbol, params=params):
                if str(client_id(self.exchange, order) or "").startswith(prefix):
                    try:
                        self.exchange.cancel_order(order["id"], symbol, params)
                    except ccxt.OrderNotFound:
                        continue  # filled or cancelled meanwhile: nothing to cancel



def _snap_stops(account, orders) -> dict[str, tuple]:
    """Give the book the trigger prices the venue holds (each rounded to its tick by
    ``price_to_precision``), so the simulator checks the stops the exchange will trigger:
    with the unrounded price a bar whose low fell between the two was a stop for the
    model and none for the venue (measured: the one disagreement of 27 stop closes, a
    position difference of about equity). Returns (stop-loss, take-profit) per asset
    snapped."""
    for order in orders:
        field = "stop_loss_price" if order.leg == "stop_loss" else "take_profit_price"
        account.book[order.asset][field] = order.stop_price
    return {order.asset: (account.book[order.asset]["stop_loss_price"],
                          account.book[order.asset]["take_profit_price"]) for order in orders}


def fill_report(rows: list[dict]) -> dict[str, dict]:
    """Per asset (and 'all'), over a session's fills.jsonl: the exchange's fills against
    the simulator's (how many, the mean price difference in bps against the simulator's
    mean spread-and-impact estimate, and both fee totals): is the cost model right?"""
    out = {}
    groups = {"all": rows, **{a: [r for r in rows if r["asset"] == a]
                               for a in dict.fromkeys(r["asset"] for r in rows)}}
    for name, group in groups.items():
        paired = [r for r in group if r.get("model_qty") is not None]
        out[name] = {
            "fills": len(group), "paired_with_model": len(paired),
            "slippage_bps": _mean(paired, "slippage_bps"),
            "model_cost_bps": _mean(paired, "model_cost_bps"),
            "exchange_fees": sum(r["exchange_fee"] for r in group),
            "model_fees": sum(r.get("model_fee") or 0.0 for r in paired),
        }
    return out


def _mean(rows: list[dict], key: str) -> float | None:
    return sum(r[key] for r in rows) / len(rows) if rows else None
