"""The paper book: one account driven bar by bar with the env's own kernels.

At the close of each bar the book (1) runs that bar for the step in progress, if any
(fills, stops, funding, marks, liquidation: ``envs.core.incremental.advance_bar``), (2)
closes the step after its last bar (reward terms, risk history), and (3) when no step is
in progress, shows the policy the env's observation and opens the next step with its
action. Those are the calls a backtest's ``step_batch`` makes, in the same order on the
same state, so a book fed a stored span reproduces the backtest of that span exactly.

The book holds its state as an :class:`envs.account.Account` (times, not bar indices),
so the market arrays may be rebuilt at every bar (live: from the store, as bars arrive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest.engine import N_RECORD, record_step
from envs.account import Account
from envs.config import EnvConfig, ExecStyle
from envs.core.accounting import bracket_arrays
from envs.core.incremental import advance_bar, close_step, open_step
from envs.core.layout import EQUITY, LIQUIDATED, N_EVENT, PEAK
from envs.core.params import pack_params
from envs.core.step import N_TERMS
from envs.data import MarketArrays
from envs.ledger import ledger_frame
from envs.spaces import check_actions

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
"""A batch of Dict observations -> a batch of Dict actions (rl.evaluate.Policy)."""


@dataclass
class BarResult:
    """What one bar did to the book."""

    bar_time: int
    ledger: pd.DataFrame
    """This bar's ledger rows (envs.ledger.ledger_frame)."""
    step: np.ndarray | None = None
    """The finished step's record (backtest.engine.record_step columns), if one finished."""
    decided: dict[str, np.ndarray] | None = None
    """The action taken at this bar's close, if a step opened."""
    ended: str | None = None
    """'liquidation' or 'max_drawdown' when the simulator ended trading at this bar."""


@dataclass
class PaperBook:
    """One account on the env's execution model (see module docstring)."""

    config: EnvConfig
    account: Account
    steps_done: int = 0
    flatten_only: bool = False
    """Set by the kill switch: the next decision closes every position, then none follow."""
    _params: np.ndarray = field(init=False, repr=False)
    _brackets: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._params = pack_params(self.config, self.account.assets)
        self._brackets = bracket_arrays(self.config.margin, self.account.assets)
        self._capacity = 5 * len(self.account.assets) + 1

    @property
    def in_step(self) -> bool:
        return self.account.pending is not None

    def on_bar(self, data: MarketArrays, bar_time: int, policy: Policy | None) -> BarResult:
        """Process the bar that closed at ``bar_time`` (it must be the bar after the book's):
        run it for the step in progress; open the next step when ``policy`` is given and no
        step is in progress."""
        acct, book, hist, last = self.account.to_state(data)
        b = int(np.searchsorted(data.timestamps, bar_time))
        if b != last + 1 or b >= data.n_bars or int(data.timestamps[b]) != bar_time:
            raise ValueError(
                f"bar {bar_time} is not the bar after the book's ({self.account.bar_time})"
            )
        result = BarResult(bar_time, ledger_frame(np.zeros((0, N_EVENT)), data.timestamps,
                                                  data.assets))
        pending = self.account.pending
        if pending is not None:
            events = np.zeros((self._capacity, N_EVENT))
            count, ended = advance_bar(acct, book, data.mkt, data.days, self._params,
                                       *self._brackets, b, events)
            result.ledger = ledger_frame(events[:count], data.timestamps, data.assets)
            pending = {**pending, "bars_run": pending["bars_run"] + 1}
            if ended or pending["bars_run"] >= self.config.bars_per_step:
                close_step(acct, book, hist, data.mkt, self._params, b, pending["equity_before"],
                           pending["drawdown_before"], np.zeros(N_TERMS))
                result.step = _record(acct, book, data, b)
                self.steps_done += 1
                pending = None
                if ended or acct[LIQUIDATED] > 0.0:
                    result.ended = "liquidation" if acct[LIQUIDATED] > 0.0 else "max_drawdown"
        self.account = Account.from_state(acct, book, hist, data, b, pending)
        if pending is None and policy is not None and result.ended is None:
            result.decided = self.decide(data, policy)
        return result

    def decide(self, data: MarketArrays, policy: Policy) -> dict[str, np.ndarray]:
        """Show ``policy`` the observation at the book's bar and open a step with its action
        (a flattening action instead when ``flatten_only``)."""
        obs = self.account.observe(data, self.config)
        action = flat_action(len(self.account.assets)) if self.flatten_only else policy(obs)
        trade, size, risk, execution = check_actions(
            action, 1, len(self.account.assets), self.config.execution.max_horizon
        )
        acct, book, hist, b = self.account.to_state(data)
        before = float(acct[EQUITY])
        drawdown_before = 1.0 - before / acct[PEAK]
        open_step(acct, book, data.mkt, self._params, *self._brackets, b, trade[0], size[0],
                  risk[0], execution[0])
        pending = {"decided_at": float(data.timestamps[b]), "equity_before": before,
                   "drawdown_before": drawdown_before, "bars_run": 0.0}
        self.account = Account.from_state(acct, book, hist, data, b, pending)
        return {"trade": trade, "size": size, "risk": risk, "execution": execution}

    def is_flat(self) -> bool:
        return all(row["quantity"] == 0.0 and row["working_quantity"] == 0.0
                   for row in self.account.book.values())


def flat_action(n_assets: int) -> dict[str, np.ndarray]:
    """Close every position now, at market (the kill switch's action)."""
    return {
        "trade": np.ones((1, n_assets), np.int64),
        "size": np.zeros((1, n_assets), np.float32),
        "risk": np.zeros((1, 2 * n_assets), np.float32),
        "execution": np.tile(np.array([int(ExecStyle.MARKET), 0]), (1, n_assets)),
    }


def _record(acct: np.ndarray, book: np.ndarray, data: MarketArrays, b: int) -> np.ndarray:
    record = np.zeros((1, N_RECORD))
    positions = np.zeros((1, data.n_assets))
    record_step(acct, book, data.mkt, b, 0, record, positions, np.zeros((1, data.n_assets, 2)))
    return np.concatenate([record[0], positions[0]])

