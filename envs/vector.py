"""PerpetualVectorEnv: N accounts on one market, stepped in one numba call."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.account import empty_observation, observe_text
from envs.config import EnvConfig
from envs.core.accounting import bracket_arrays
from envs.core.layout import (
    ENTRY,
    EQUITY,
    LIQUIDATED,
    M_MARK,
    N_EVENT,
    QTY,
    SHIELD_RULES,
    SHIELD_SCALE,
)
from envs.core.observe import N_RISK
from envs.core.params import pack_params
from envs.core.step import N_TERMS, REWARD_TERMS, new_state, reset_batch, step_batch
from envs.data import MarketArrays
from envs.episode_stats import episode_stats, steps_per_year
from envs.ledger import account_totals, ledger_frame
from envs.spaces import action_space, check_actions, observation_space, text_shape

_TERM_KEYS = tuple(f"reward_{name}" for name in REWARD_TERMS)


class PerpetualVectorEnv(gym.vector.VectorEnv):
    """`num_envs` independent accounts trading the same perpetual-futures market.

    The batched twin of :class:`envs.single.PerpetualEnv` (same core, same spaces,
    same rewards; see its docstring for the full description). Each env starts its
    episodes at its own random bar. Finished envs are reset on the *next* call to
    `step` (gymnasium's NEXT_STEP autoreset, as RLlib expects): that call ignores
    their action and returns their first observation with reward 0.

    Args:
        data: market arrays (``MarketArrays.from_frames``).
        config: simulator and episode parameters.
        num_envs: number of accounts.
        start_range: optional (first, last) bar index for episode starts (e.g. the
            training span of a walk-forward split); defaults to every usable bar.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        data: MarketArrays,
        config: EnvConfig | None = None,
        num_envs: int = 1,
        start_range: tuple[int, int] | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.data = data
        self.config = config or EnvConfig()
        self.num_envs = num_envs
        self.assets = data.assets
        self.single_observation_space = observation_space(
            self.config, data.n_assets, len(data.features), text_shape(data)
        )
        self.single_action_space = action_space(self.config, data.n_assets)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._params = pack_params(self.config, data.assets)
        self._brackets = bracket_arrays(self.config.margin, data.assets)
        self._starts = self._start_bounds(start_range)
        self._state = new_state(num_envs, data.n_assets, self.config.risk_window, N_RISK)
        # rows a step can write: per bar and asset a fill, a stop, a funding payment, a cancel and
        # a liquidation, plus one bad-debt row; no buffer at all when nothing is recorded
        capacity = (5 * data.n_assets + 1) * self.config.bars_per_step
        capacity = capacity if self.config.record_ledger else 0
        self._events = np.zeros((num_envs, capacity, N_EVENT))
        self._counts = np.zeros(num_envs, dtype=np.int64)
        self._pending_reset = np.zeros(num_envs, dtype=bool)
        self._ledgers: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self._last_ledgers: list[pd.DataFrame | None] = [None] * num_envs
        self._np_random, self._np_random_seed = seeding.np_random(None)
        self._steps_per_year = steps_per_year(data.timestamps, self.config.bars_per_step)

    def _start_bounds(self, start_range: tuple[int, int] | None) -> tuple[int, int]:
        data, cfg = self.data, self.config
        low = max(data.first_valid, cfg.window - 1)
        last_start = data.n_bars - 1 - cfg.bars_per_step
        if last_start < low:
            need = low + 1 + cfg.bars_per_step
            raise ValueError(
                f"market data too short: {data.n_bars} bars, of which the first {low} are "
                f"indicator warm-up / observation window; need at least {need}"
            )
        high = max(low, min(last_start, data.n_bars - 1 - cfg.episode_steps * cfg.bars_per_step))
        if start_range is not None:
            lo, hi = start_range
            if not low <= lo <= hi <= last_start:
                raise ValueError(
                    f"start_range {start_range} outside usable bars [{low}, {last_start}]"
                )
            low, high = lo, hi
        return low, high

    def _new_obs(self) -> dict[str, np.ndarray]:
        return empty_observation(self.data, self.config, self.num_envs)


    def _reset_envs(
        self, mask: np.ndarray, obs: dict[str, np.ndarray], starts: np.ndarray | None
    ) -> None:
        if starts is None:
            low, high = self._starts
            starts = self._np_random.integers(low, high, size=self.num_envs, endpoint=True)
        if self.config.record_ledger:
            for n in np.flatnonzero(mask):
                self._finish_ledger(n)
        s = self._state
        reset_batch(
            self.data.mkt, self.data.feats, self.data.days, self._params, s["acct"], s["book"],
            s["hist"], s["t"], s["steps"], mask, np.asarray(starts, dtype=np.int64),
            obs["market"], obs["risk"], obs["portfolio"],
        )
        observe_text(self.data, self._state["t"], obs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start new episodes in every env. options: {"start": bar index or one per env}."""
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(
                seed if isinstance(seed, int) else seed[0]
            )
        starts = None
        if options and "start" in options:
            starts = np.broadcast_to(np.asarray(options["start"], dtype=np.int64), (self.num_envs,))
            low, last = self.data.first_valid, self.data.n_bars - 1 - self.config.bars_per_step
            if starts.min() < max(low, self.config.window - 1) or starts.max() > last:
                raise ValueError(f"start must lie in [{max(low, self.config.window - 1)}, {last}]")
        obs = self._new_obs()
        self._reset_envs(np.ones(self.num_envs, dtype=bool), obs, starts)
        self._pending_reset[:] = False
        return obs, self._infos(np.zeros((self.num_envs, N_TERMS)))

    def step(self, actions: dict[str, np.ndarray]):
        """One decision step for every env (see class docstring for autoreset)."""
        arrays = check_actions(
            actions, self.num_envs, self.data.n_assets, self.config.execution.max_horizon
        )
        obs, rewards, terms, terminated, truncated = self._advance(*arrays)
        if self._pending_reset.any():
            self._reset_envs(self._pending_reset.copy(), obs, None)
        self._pending_reset = done = terminated | truncated
        infos = self._infos(terms)
        if done.any():
            infos["trading"] = self.episode_stats()
            infos["_trading"] = done
        return obs, rewards, terminated, truncated, infos

    def _advance(self, trade, size, risk, execution):
        """Run the kernel for every env not waiting for its reset; record the ledger."""
        s, n = self._state, self.num_envs
        obs = self._new_obs()
        rewards = np.zeros(n)
        terms = np.zeros((n, N_TERMS))
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        active = ~self._pending_reset
        step_batch(
            self.data.mkt, self.data.feats, self.data.days, self._params, *self._brackets,
            s["acct"], s["book"], s["hist"], s["t"], s["steps"], active,
            trade, size, risk, execution,
            self._events, self._counts, rewards, terms, terminated, truncated,
            obs["market"], obs["risk"], obs["portfolio"],
        )
        observe_text(self.data, self._state["t"], obs)
        if self.config.record_ledger:
            if self._counts.max(initial=0) > self._events.shape[1]:
                raise RuntimeError("ledger event buffer overflow: a bug in the simulator core")
            for i in np.flatnonzero(active & (self._counts > 0)):
                self._ledgers[i].append(self._events[i, : self._counts[i]].copy())
        return obs, rewards, terms, terminated, truncated

    def episode_stats(self) -> dict[str, np.ndarray]:
        """Every env's current-episode statistics (see envs.episode_stats)."""
        cfg = self.config
        return episode_stats(
            self._state["acct"], cfg.initial_balance, self._steps_per_year, cfg.risk_free_rate
        )

    @property
    def pending_reset(self) -> np.ndarray:
        """Which envs finished and will be reset by the next ``step`` (a copy)."""
        return self._pending_reset.copy()

    def _infos(self, terms: np.ndarray) -> dict[str, Any]:
        acct = self._state["acct"]
        infos: dict[str, Any] = {
            "equity": acct[:, EQUITY].copy(),
            "bar": self._state["t"].copy(),
            "liquidated": acct[:, LIQUIDATED] > 0,
        }
        for k, key in enumerate(_TERM_KEYS):
            infos[key] = terms[:, k]  # a view of this step's fresh array
        if self.config.shield.enabled:  # what the risk shield cut at this step's decision
            book = self._state["book"]
            infos["shield_scale"] = book[:, :, SHIELD_SCALE].copy()
            infos["shield_rules"] = book[:, :, SHIELD_RULES].astype(np.int64)
        return infos

    def _finish_ledger(self, n: int) -> None:
        rows = self._ledgers[n]
        stacked = np.concatenate(rows) if rows else np.zeros((0, N_EVENT))
        self._last_ledgers[n] = ledger_frame(stacked, self.data.timestamps, self.assets)
        self._ledgers[n] = []

    def finished_ledger(self, n: int = 0) -> pd.DataFrame | None:
        """The ledger of env n's last finished episode (needs record_ledger)."""
        return self._last_ledgers[n]

    def ledger(self, n: int = 0) -> pd.DataFrame:
        """The ledger of env n's current episode so far (needs record_ledger)."""
        rows = self._ledgers[n]
        stacked = np.concatenate(rows) if rows else np.zeros((0, N_EVENT))
        return ledger_frame(stacked, self.data.timestamps, self.assets)

    def account(self, n: int = 0) -> dict[str, float]:
        """Running totals of env n's account, plus its unrealised PnL at the last mark."""
        totals = account_totals(self._state["acct"][n])
        book, t = self._state["book"][n], self._state["t"][n]
        marks = self.data.mkt[t, :, M_MARK]
        totals["unrealized_pnl"] = float(np.sum(book[:, QTY] * (marks - book[:, ENTRY])))
        totals["bar"] = int(t)
        return totals

    def positions(self, n: int = 0) -> np.ndarray:
        """Signed position (base units) per asset of env n."""
        return self._state["book"][n][:, QTY].copy()
