"""The backtest loop: one account on the training simulator, over one contiguous span.

A backtest is the env's kernels (``envs.core.step``) driven from the span's first
decision bar to its last, so costs, fills, funding and liquidations are exactly the
ones the policy trained under. Two drivers share the account state and the per-step
record:

- :func:`run_policy`: a Python loop around any policy callable (rl.evaluate.Policy:
  a batch of Dict observations -> a batch of Dict actions), for RLModules of any kind
  and for rule baselines; about 10-20 us per step plus the policy.
- ``backtest.fast`` compiles the hierarchical policy's per-step part into the same
  numba loop as the simulator (its market encoding is batched over time first), for
  year-long minute-bar backtests.

Both write the same arrays, so their results are compared step for step in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from backtest.result import STEP_COLUMNS, BacktestResult
from envs.account import empty_observation, observe_text
from envs.config import EnvConfig
from envs.core.accounting import bracket_arrays
from envs.core.layout import (
    EQUITY,
    FEES,
    FUNDING,
    IMPACT,
    LIQ_FEES,
    LIQUIDATED,
    M_CLOSE,
    M_MARK,
    N_EVENT,
    QTY,
    SHIELD_RULE_NAMES,
    SHIELD_RULES,
    SHIELD_SCALE,
    SPREAD,
    TRADED,
)
from envs.core.observe import N_RISK
from envs.core.params import pack_params
from envs.core.step import N_TERMS, new_state, reset_batch, step_batch
from envs.data import MarketArrays
from envs.episode_stats import steps_per_year
from envs.ledger import ledger_frame
from envs.spaces import check_actions
from market.numba_cache import configure_numba_cache

configure_numba_cache(  # the backtest kernels: these, and backtest.fast's (it imports this first)
    *(Path(__file__).with_name(f) for f in ("engine.py", "fast.py", "fast_kernels.py"))
)

N_RECORD = 8
"""Per-step record columns, in STEP_COLUMNS order."""


@njit(cache=True)
def record_step(acct, book, mkt, b, k, record, positions, shield):
    """Write the account's values after decision step k (bar b) into row k; ``shield``
    keeps what the risk shield did at that step's decision (scale, rules) per asset."""
    gross = 0.0
    for a in range(book.shape[0]):
        notional = book[a, QTY] * mkt[b, a, M_MARK]
        positions[k, a] = notional
        gross += abs(notional)
        shield[k, a, 0] = book[a, SHIELD_SCALE]
        shield[k, a, 1] = book[a, SHIELD_RULES]
    equity = acct[EQUITY]
    record[k, 0] = equity
    record[k, 1] = gross
    record[k, 2] = gross / equity if equity > 0.0 else np.inf
    record[k, 3] = acct[TRADED]
    record[k, 4] = acct[FEES] + acct[LIQ_FEES]
    record[k, 5] = acct[FUNDING]
    record[k, 6] = acct[IMPACT]
    record[k, 7] = acct[SPREAD]


@dataclass
class Account:
    """Kernel state, observation buffers and records of one backtest account."""

    data: MarketArrays
    config: EnvConfig
    start_bar: int
    n_steps: int

    def __post_init__(self) -> None:
        data, cfg = self.data, self.config
        self.params = pack_params(cfg, data.assets)
        self.brackets = bracket_arrays(cfg.margin, data.assets)
        self.state = new_state(1, data.n_assets, cfg.risk_window, N_RISK)
        self.obs = empty_observation(data, cfg)
        self.record = np.zeros((self.n_steps + 1, N_RECORD))
        self.positions = np.zeros((self.n_steps + 1, data.n_assets))
        self.shield = np.zeros((self.n_steps + 1, data.n_assets, 2))
        self.bars = np.zeros(self.n_steps + 1, dtype=np.int64)
        capacity = (5 * data.n_assets + 1) * cfg.bars_per_step
        self.step_events = np.zeros((1, capacity, N_EVENT))
        self.counts = np.zeros(1, dtype=np.int64)
        self.events = np.zeros((max(64, self.n_steps // 4), N_EVENT))
        self.n_events = 0
        self.done_steps = 0
        self.ended_early: str | None = None
        s = self.state
        reset_batch(
            data.mkt, data.feats, data.days, self.params, s["acct"], s["book"], s["hist"],
            s["t"], s["steps"], np.ones(1, dtype=bool), np.array([self.start_bar]),
            self.obs["market"], self.obs["risk"], self.obs["portfolio"],
        )
        observe_text(data, s["t"], self.obs)
        record_step(s["acct"][0], s["book"][0], data.mkt, self.start_bar, 0, self.record,
                    self.positions, self.shield)
        self.bars[0] = self.start_bar

    def kernel_args(self) -> tuple:
        """The arguments of ``step_batch`` that come before the actions."""
        d, s = self.data, self.state
        return (d.mkt, d.feats, d.days, self.params, *self.brackets, s["acct"], s["book"],
                s["hist"], s["t"], s["steps"], np.ones(1, dtype=bool))

    def keep_events(self, count: int) -> None:
        """Append this step's ledger rows to the run's buffer (growing it when full)."""
        if count == 0:
            return
        if self.n_events + count > len(self.events):
            grown = np.zeros((2 * len(self.events) + count, N_EVENT))
            grown[: self.n_events] = self.events[: self.n_events]
            self.events = grown
        self.events[self.n_events : self.n_events + count] = self.step_events[0, :count]
        self.n_events += count

    def finish(self, terminated: bool) -> None:
        if terminated:
            liquidated = self.state["acct"][0, LIQUIDATED] > 0
            self.ended_early = "liquidation" if liquidated else "max_drawdown"

    def result(self, name: str, meta: dict | None = None) -> BacktestResult:
        """The run so far as a BacktestResult (only the steps actually taken)."""
        d, n = self.data, self.done_steps + 1
        index = pd.DatetimeIndex(pd.to_datetime(d.timestamps[self.bars[:n]], utc=True))
        steps = pd.DataFrame(self.record[:n], index=index, columns=list(STEP_COLUMNS))
        positions = pd.DataFrame(self.positions[:n], index=index, columns=list(d.assets))
        prices = pd.DataFrame(d.mkt[self.bars[:n], :, M_CLOSE], index=index, columns=list(d.assets))
        ledger = ledger_frame(self.events[: self.n_events], d.timestamps, d.assets)
        return BacktestResult(
            name=name,
            assets=d.assets,
            steps=steps,
            positions=positions,
            prices=prices,
            ledger=ledger,
            initial_capital=self.config.initial_balance,
            periods_per_year=steps_per_year(d.timestamps, self.config.bars_per_step),
            risk_free_rate=self.config.risk_free_rate,
            ended_early=self.ended_early,
            meta={**(meta or {}), **self._shield_summary()},
        )

    def _shield_summary(self) -> dict:
        """With the risk shield on: how often it cut a target, by rule, and how much of
        the asked exposure it left on average over the targets it cut (report provenance)."""
        if not self.config.shield.enabled:
            return {}
        shield = self.shield[1 : self.done_steps + 1]
        cut = shield[:, :, 1] != 0
        by_rule = {name: int(((shield[:, :, 1].astype(np.int64) >> k) & 1).sum())
                   for k, name in enumerate(SHIELD_RULE_NAMES)}
        return {"shield": {
            "decisions": int(shield.shape[0]), "asset_targets_cut": int(cut.sum()),
            "by_rule": {k: v for k, v in by_rule.items() if v},
            "mean_scale_when_cut": float(shield[:, :, 0][cut].mean()) if cut.any() else 1.0,
            "settings": self.config.shield.model_dump(mode="json", exclude={"enabled"}),
        }}


def span_steps(data: MarketArrays, config: EnvConfig, start_bar: int, end_bar: int) -> int:
    """Decision steps from ``start_bar`` until ``end_bar`` (inclusive), checked against the data."""
    first = max(data.first_valid, config.window - 1)
    if not first <= start_bar < end_bar <= data.n_bars - 1:
        raise ValueError(
            f"backtest span [{start_bar}, {end_bar}] outside usable bars [{first}, "
            f"{data.n_bars - 1}] (the first bars are indicator warm-up and observation window)"
        )
    steps = (end_bar - start_bar) // config.bars_per_step
    if steps < 1:
        raise ValueError("the backtest span is shorter than one decision step")
    return steps


def backtest_config(config: EnvConfig, n_steps: int) -> EnvConfig:
    """The env config of a backtest: one episode as long as the span, ledger kept."""
    return config.model_copy(update={"episode_steps": n_steps, "record_ledger": True})


def run_policy(
    policy,
    data: MarketArrays,
    config: EnvConfig,
    start_bar: int,
    end_bar: int,
    name: str,
    meta: dict | None = None,
) -> BacktestResult:
    """Run ``policy`` (batched Dict obs -> batched Dict action) from start_bar to end_bar.

    The policy sees each observation right after its decision bar closes, exactly as
    in training; the run stops early on liquidation or the max-drawdown limit.
    """
    n_steps = span_steps(data, config, start_bar, end_bar)
    account = Account(data, backtest_config(config, n_steps), start_bar, n_steps)
    before = account.kernel_args()
    out = _outputs()
    obs, max_horizon = account.obs, config.execution.max_horizon
    terminated = False
    for k in range(1, n_steps + 1):
        actions = check_actions(policy(obs), 1, data.n_assets, max_horizon)
        step_batch(*before, *actions, account.step_events, account.counts, *out,
                   obs["market"], obs["risk"], obs["portfolio"])
        observe_text(data, account.state["t"], obs)
        account.keep_events(int(account.counts[0]))
        b = int(account.state["t"][0])
        record_step(account.state["acct"][0], account.state["book"][0], data.mkt, b, k,
                    account.record, account.positions, account.shield)
        account.bars[k] = b
        account.done_steps = k
        terminated = bool(out[2][0])
        if terminated or out[3][0]:
            break
    account.finish(terminated)
    return account.result(name, meta)


def _outputs() -> tuple[np.ndarray, ...]:
    """rewards, terms, terminated, truncated buffers of step_batch for one env."""
    return (np.zeros(1), np.zeros((1, N_TERMS)), np.zeros(1, dtype=bool),
            np.zeros(1, dtype=bool))


def benchmark_equity(prices: pd.DataFrame, asset: str, initial: float) -> pd.Series:
    """Buy-and-hold of one asset at 1x, without costs or funding: the price path scaled to
    the initial capital (the conventional benchmark line; the simulated rule baseline
    ``buy_and_hold`` carries the costs)."""
    if asset not in prices.columns:
        raise ValueError(f"benchmark asset {asset!r} not in the data's assets {list(prices)}")
    path = prices[asset]
    return (path / path.iloc[0] * initial).rename(f"buy_and_hold_{asset}")
