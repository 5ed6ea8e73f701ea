"""A paper-trading session: bars in, decisions and fills out, state on disk after every bar.

``PaperSession.run`` is one loop for live and replayed bars. A feed (live.feed) yields
each closed bar with the market arrays up to it; the book (live.book) runs the bar
through the env's kernels and, at a step's end, asks the policy for the next action;
the monitors (live.monitors) check the kill switch; the journal (live.journal) commits
the bar atomically. Replayed over a stored span, the session's ledger and equity equal
``quantum backtest --no-fast-path`` on that span (tests/integration/test_live.py).

A kill-switch breach flattens the book through the normal execution model (market
orders at the next bar, paying the same costs), then the session stops trading; the
reason is in ``session.json`` and was sent as an alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from envs.account import Account
from envs.config import EnvConfig
from envs.data import MarketArrays
from live.alerts import Alerts
from live.book import BarResult, PaperBook, Policy
from live.journal import Journal
from live.monitors import Breach, DriftReference, KillSwitch, account_breach, drift_breach

log = logging.getLogger("quantum.live")

RUNNING, STOPPED, KILLED, ENDED, FINISHED = "running", "stopped", "killed", "ended", "finished"
"""Session states: trading; stopped on request; stopped by the kill switch; stopped by the
simulator (liquidation or the env's drawdown limit); a replay that reached its end."""


class SessionSettings(BaseModel):
    """What a session trades and how; stored in its session.json."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    session_id: str
    model_path: str
    market: dict[str, Any] = Field(description="envs.market_spec.MarketSpec fields.")
    env: dict[str, Any] = Field(description="EnvConfig fields the book trades with.")
    kill: KillSwitch = Field(default_factory=KillSwitch)
    replay: bool = False
    span: tuple[int, int] | None = Field(
        None, description="A replay's first decision bar and last bar (ns)."
    )
    serve_url: str | None = None
    alert_webhook: str | None = None
    mode: str = Field("paper", description="paper (simulator fills), testnet or live "
                      "(orders on the exchange: live.venue.TradingMode).")
    reconcile_limit: float = Field(
        0.02, gt=0, description="Testnet/live: a position difference with the exchange "
        "larger than this fraction of equity trips the kill switch.")


@dataclass
class Tick:
    """One closed bar from a feed: its open time (ns) and the market arrays up to it."""

    bar_time: int
    data: MarketArrays | None
    """None: no new bar (a feed reporting stale data or exchange errors)."""
    errors: int = 0
    """Consecutive exchange errors the feed met before this bar."""
    received: float = field(default_factory=time.perf_counter)
    """When the feed learned the bar closed (perf_counter), before it built the arrays:
    decision latencies count from here."""
    stale: bool = False
    """No closed bar for the feed's stale_bars bar lengths."""


@dataclass
class PaperSession:
    """One session folder's loop (see module docstring)."""

    folder: Path
    settings: SessionSettings
    policy: Policy
    drift: DriftReference | None = None
    alerts: Alerts | None = None
    on_bar: Callable[[dict[str, Any]], None] | None = None
    """Called with the status after every bar (progress lines, W&B)."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from a bar's arrival to its decision, for each decision this process made."""
    executor: Any = None
    """live.executor.ExchangeExecutor for testnet/live sessions: each bar is settled
    against the exchange before the kill switch looks, and the next bar's orders are sent
    after the decision. None: paper (the simulator's fills are the session's)."""

    def __post_init__(self) -> None:
        self.journal = Journal(self.folder)
        self.config = EnvConfig.model_validate(self.settings.env)
        self.alerts = self.alerts or Alerts(self.settings.session_id, self.settings.alert_webhook)

    def start_state(self, data: MarketArrays, bar: int) -> dict[str, Any]:
        """A fresh session's state: a flat account at ``bar`` (its first decision follows)."""
        account = Account.fresh(data, self.config.initial_balance, self.config.risk_window, bar)
        account.meta = {"session": self.settings.session_id}
        return {
            "settings": self.settings.model_dump(mode="json"),
            "status": RUNNING,
            "account": account.to_dict(),
            "last_bar": int(data.timestamps[bar]),
            "steps_done": 0,
            "bars_done": 0,
            "session_peak": self.config.initial_balance,
            "kill": None,
            "last_signal": None,
            "psi": {},
        }

    def run(self, ticks: Callable[[int], Iterator[Tick]], first: Callable[[], Tick],
            max_steps: int | None = None) -> dict[str, Any]:
        """Trade until the feed ends, a stop is requested, the kill switch has flattened the
        book, or ``max_steps`` decisions are done. ``first()`` gives the start bar of a new
        session; ``ticks(last_bar)`` the bars after ``last_bar``. Returns the final state."""
        with self.journal.held():
            state = self.journal.open()
            if state is None:
                tick = first()
                state = self.start_state(tick.data, int(np.searchsorted(tick.data.timestamps,
                                                                         tick.bar_time)))
                book = self._book(state)
                lines = self._decide(book, tick, state)
                self._plan(book, tick, lines)
                self._commit(state, book, lines)
                self._dispatch()
            elif self.executor is not None:
                self.executor.recover()
            book = self._book(state)
            if state["status"] == STOPPED:
                state["status"] = RUNNING  # started again after a stop: trade on
            if state["status"] != RUNNING:
                return state
            for tick in ticks(state["last_bar"]):
                if self.journal.stop_requested():
                    state["status"] = STOPPED
                    self._commit(state, book, {})
                    self.journal.clear_stop()
                    break
                if tick.data is None:
                    self._no_bar(book, tick, state)
                    self._commit(state, book, {})
                    continue
                lines = self._bar(book, tick, state, max_steps)
                self._plan(book, tick, lines)
                self._commit(state, book, lines)
                self._dispatch()
                if self.on_bar is not None:
                    self.on_bar(status_of(state))
                if state["status"] != RUNNING:
                    break
            else:
                if state["status"] == RUNNING and self.settings.replay and not book.in_step:
                    state["status"] = FINISHED
                    self._commit(state, book, {})
            return state

    def _book(self, state: dict[str, Any]) -> PaperBook:
        book = PaperBook(self.config, Account.from_dict(state["account"]), state["steps_done"])
        book.flatten_only = state["kill"] is not None
        return book

    def _bar(self, book: PaperBook, tick: Tick, state: dict[str, Any],
             max_steps: int | None) -> dict[str, list[dict]]:
        result = book.on_bar(tick.data, tick.bar_time, None)
        lines = _result_lines(result, tick.data)
        state["last_bar"] = tick.bar_time
        state["bars_done"] += 1
        state["steps_done"] = book.steps_done
        equity = book.account.values["equity"]
        state["session_peak"] = max(state["session_peak"], equity)
        if result.ended is not None:
            state["status"] = ENDED
            state["kill"] = {"rule": result.ended, "bar_time": tick.bar_time}
            self.alerts.send("ended", f"the simulator ended trading: {result.ended}",
                             bar_time=tick.bar_time)
            return lines
        mismatch = None
        if self.executor is not None:
            settled, mismatch = self.executor.settle(book, tick, lines)
            for name, rows in settled.items():
                lines.setdefault(name, []).extend(rows)
            for row in settled.get("reconcile.jsonl", []):
                if row.get("differences") and mismatch is None:
                    assets = ", ".join(d["asset"] for d in row["differences"])
                    self.alerts.send("reconciliation", f"the exchange holds other positions "
                                     f"than the model ({assets}); adopted the exchange's",
                                     bar_time=tick.bar_time)
            state["session_peak"] = max(state["session_peak"], book.account.values["equity"])
        if state["kill"] is None:
            breach = mismatch or self._breach(book, tick, state)
            if breach is not None:
                self._trip(book, breach, tick, state)
        if book.in_step:
            return lines
        if state["kill"] is not None and book.is_flat():
            state["status"] = KILLED
            return lines
        if state["kill"] is None and max_steps is not None and book.steps_done >= max_steps:
            state["status"] = FINISHED if self.settings.replay else STOPPED
            return lines
        decision = self._decide(book, tick, state)
        self.latencies.append(time.perf_counter() - tick.received)
        for name, rows in decision.items():
            lines.setdefault(name, []).extend(rows)
        return lines

    def _plan(self, book: PaperBook, tick: Tick, lines: dict[str, list[dict]]) -> None:
        """With an exchange, journal the next bar's orders before the bar commits."""
        if self.executor is None or tick.data is None:
            return
        for name, rows in self.executor.plan(book, tick).items():
            lines.setdefault(name, []).extend(rows)

    def _dispatch(self) -> None:
        """With an exchange, send the orders of the bar just committed."""
        if self.executor is not None:
            self.executor.dispatch()

    def _decide(self, book: PaperBook, tick: Tick, state: dict[str, Any]) -> dict[str, list[dict]]:
        action = book.decide(tick.data, self.policy)
        signal = {"bar_time": tick.bar_time, "time": _iso(tick.bar_time),
                  **{k: np.asarray(v)[0].tolist() for k, v in action.items()},
                  "flatten": book.flatten_only}
        state["last_signal"] = signal
        return {"signals.jsonl": [signal]}

    def _breach(self, book: PaperBook, tick: Tick, state: dict[str, Any]) -> Breach | None:
        if self.journal.flatten_requested():
            self.journal.clear_flatten()
            return Breach("manual_flatten", 1.0, 1.0)
        kill = self.settings.kill
        values = book.account.values
        breach = account_breach(kill, values["equity"], state["session_peak"],
                                values["day_start_equity"])
        if breach is None and kill.max_errors is not None and tick.errors >= kill.max_errors:
            breach = Breach("exchange_errors", tick.errors, kill.max_errors)
        if breach is None and self.drift is not None and kill.max_psi is not None:
            b = int(np.searchsorted(tick.data.timestamps, tick.bar_time))
            if b + 1 >= kill.psi_bars:
                recent = tick.data.feats[b + 1 - kill.psi_bars : b + 1]
                state["psi"] = self.drift.psi(recent)
                breach = drift_breach(kill, state["psi"])
        return breach

    def _no_bar(self, book: PaperBook, tick: Tick, state: dict[str, Any]) -> None:
        """A feed event without a bar: stale data or repeated exchange errors trip the kill
        switch (the book flattens at the next bar that arrives)."""
        kill = self.settings.kill
        if state["kill"] is not None:
            return
        if kill.max_errors is not None and tick.errors >= kill.max_errors:
            self._trip(book, Breach("exchange_errors", tick.errors, kill.max_errors), tick, state)
        elif tick.stale and kill.stale_bars is not None:
            self._trip(book, Breach("stale_data", kill.stale_bars, kill.stale_bars), tick, state)

    def _trip(self, book: PaperBook, breach: Breach, tick: Tick, state: dict[str, Any]) -> None:
        state["kill"] = {"rule": breach.rule, "value": breach.value, "limit": breach.limit,
                         "bar_time": tick.bar_time, "time": _iso(tick.bar_time)}
        book.flatten_only = True
        self.alerts.send("kill_switch", f"kill switch: {breach.message()}; flattening",
                         rule=breach.rule, value=breach.value, limit=breach.limit,
                         bar_time=tick.bar_time)

    def _commit(self, state: dict[str, Any], book: PaperBook, lines: dict[str, list]) -> None:
        state["account"] = book.account.to_dict()
        self.journal.commit(state, lines)


def _result_lines(result: BarResult, data: MarketArrays) -> dict[str, list[dict]]:
    lines: dict[str, list[dict]] = {}
    if len(result.ledger):
        frame = result.ledger.drop(columns="bar")
        frame["timestamp"] = frame["timestamp"].map(pd.Timestamp.isoformat)
        lines["ledger.jsonl"] = [{"bar_time": result.bar_time, **row}
                                 for row in frame.to_dict("records")]
    if result.step is not None:
        from backtest.result import STEP_COLUMNS

        n = len(STEP_COLUMNS)
        row = {"bar_time": result.bar_time, "time": _iso(result.bar_time),
               **dict(zip(STEP_COLUMNS, map(float, result.step[:n]), strict=True)),
               "positions": dict(zip(data.assets, map(float, result.step[n:]), strict=True))}
        lines["steps.jsonl"] = [row]
    return lines


def status_of(state: dict[str, Any]) -> dict[str, Any]:
    """The operator's view of a session state (``quantum live status``, ``/v1/live/{id}``)."""
    account = state["account"]
    values = account["values"]
    return {
        "session": state["settings"]["session_id"],
        "status": state["status"],
        "last_bar": _iso(state["last_bar"]),
        "equity": values["equity"],
        "pnl_today": values["equity"] - values["day_start_equity"],
        "drawdown": 1.0 - values["equity"] / state["session_peak"],
        "positions": {a: row["quantity"] for a, row in account["book"].items()
                      if row["quantity"] != 0.0},
        "working_orders": {a: row["working_quantity"] for a, row in account["book"].items()
                           if row["working_quantity"] != 0.0},
        "fees": values["fees"],
        "funding": values["funding"],
        "steps": state["steps_done"],
        "bars": state["bars_done"],
        "last_signal": state["last_signal"],
        "drift_psi_max": max(state["psi"].values()) if state["psi"] else None,
        "kill_switch": state["kill"],
    }


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()
