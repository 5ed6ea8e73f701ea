"""Sending orders so that a crash at any point neither duplicates nor loses one.

Every intent (live.orders.OrderIntent) is written to ``orders.jsonl`` in the session
folder as *pending*, fsynced, and only then sent; the exchange's acknowledgement is
written as *sent* (with the exchange's order id), a refusal as *rejected* (with the
reason). The last line per client order id is the intent's state.

After a restart, :meth:`OrderRouter.recover` settles every pending intent before
anything new is sent: it asks the exchange for the order by its client order id (the
id is deterministic: run, bar, asset, leg). Known to the exchange: it was sent before
the crash (the ack was lost), so it is marked sent and never sent again. Unknown: the
crash came before it left, so it is sent now, under the same id. A send whose answer is
a duplicate-id refusal counts as sent for the same reason. An answer that leaves the
outcome unknown (network errors, timeouts, 429, 503 and binance's -1001 "internal error",
ccxt's OperationFailed family) leaves the intent pending, to be settled the same way; only
a definite refusal (ccxt's ExchangeError: margin, precision, bad symbol) rejects it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ccxt

from live.dialects import find_order
from live.orders import OrderIntent
from market.exchanges import describe_error

log = logging.getLogger(__name__)
ORDERS = "orders.jsonl"
PENDING, SENT, REJECTED = "pending", "sent", "rejected"
DUPLICATE_ID_CODES = ("-4116", "110072", '"51016"')
"""binanceusdm's 'client order id is duplicated', bybit's 'OrderLinkedID is duplicate', okx's
'Duplicated clOrdId' (ccxt maps all three to InvalidOrder). okx's is matched as the quoted
sCode value: its answers echo the client id, whose hex digits could contain 51016."""


@dataclass(frozen=True)
class Outcome:
    client_id: str
    state: str
    order_id: str | None = None
    reason: str | None = None


class OrderRouter:
    """Idempotent sending for one session folder (see module docstring)."""

    def __init__(self, exchange: ccxt.Exchange, folder: Path) -> None:
        self.exchange = exchange
        self.path = Path(folder) / ORDERS
        self._fresh: set[str] = set()
        """Ids journaled by this process and not tried yet (no lookup needed)."""

    def states(self) -> dict[str, dict[str, Any]]:
        """Each client order id's last line (a torn last line, from a crash mid-write, is
        ignored: its intent was never sent, since sending follows the fsynced line)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[row["client_id"]] = row
        return out

    def journal(self, intents: list[OrderIntent]) -> None:
        """Write intents not seen before as pending (fsynced): from here on a crash cannot
        lose them, since recovery sends every pending intent the exchange does not know."""
        states = self.states()
        for intent in intents:
            if intent.client_id not in states:
                self._write({"client_id": intent.client_id, "state": PENDING,
                             "intent": intent.to_dict()})
                self._fresh.add(intent.client_id)

    def submit(self, intents: list[OrderIntent]) -> list[Outcome]:
        """Journal and send intents not sent before (by client id); an intent still pending
        from an earlier try is looked up first (the exchange may have it already)."""
        self.journal(intents)
        states = self.states()
        outcomes = []
        for intent in intents:
            known = states[intent.client_id]
            if intent.client_id in self._fresh:  # journaled by this process, never tried
                self._fresh.discard(intent.client_id)
                outcomes.append(self._send(intent))
            elif known["state"] == PENDING:
                outcomes.append(self._settle(intent))
            else:
                outcomes.append(Outcome(intent.client_id, known["state"],
                                        known.get("order_id"), known.get("reason")))
        return outcomes

    def recover(self) -> list[Outcome]:
        """Settle every pending intent with the exchange (see module docstring)."""
        outcomes = []
        for row in self.states().values():
            if row["state"] != PENDING:
                continue
            outcomes.append(self._settle(OrderIntent(**row["intent"])))
        return outcomes

    def _settle(self, intent: OrderIntent) -> Outcome:
        """A pending intent: marked sent if the exchange has it, else sent now."""
        try:
            found = self._lookup(intent)
        except ccxt.OperationFailed as err:
            return Outcome(intent.client_id, PENDING, reason=describe_error(err))
        if found is not None:
            return self._mark(intent, SENT, found.get("id"))
        return self._send(intent)

    def _lookup(self, intent: OrderIntent) -> dict | None:
        return find_order(self.exchange, intent.symbol, intent.client_id,
                          trigger=intent.leg in ("stop_loss", "take_profit"))

    def _send(self, intent: OrderIntent) -> Outcome:
        try:
            order = self.exchange.create_order(intent.symbol, intent.type, intent.side,
                                               intent.amount, intent.price, intent.params())
        except ccxt.OperationFailed as err:  # network errors, 429, 503, -1001: outcome unknown
            log.warning("order %s: no definite answer (%s); left pending, settled on recovery",
                        intent.client_id, describe_error(err))
            return Outcome(intent.client_id, PENDING, reason=describe_error(err))
        except ccxt.ExchangeError as err:
            if any(code in str(err) for code in DUPLICATE_ID_CODES):
                found = self._lookup(intent)
                return self._mark(intent, SENT, found.get("id") if found else None)
            return self._mark(intent, REJECTED, reason=describe_error(err))
        return self._mark(intent, SENT, order.get("id"))

    def _mark(self, intent: OrderIntent, state: str, order_id: str | None = None,
              reason: str | None = None) -> Outcome:
        self._write({"client_id": intent.client_id, "state": state, "order_id": order_id,
                     "reason": reason, "intent": intent.to_dict()})
        return Outcome(intent.client_id, state, order_id, reason)

    def _write(self, row: dict[str, Any]) -> None:
        """One fsynced line (append): the intent's state is on disk before the next act."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(row, default=float) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
