"""PerpetualEnv: one account trading a multi-asset perpetual-futures market."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from envs.config import EnvConfig
from envs.core.layout import EQUITY, LIQUIDATED
from envs.core.shield import shield_report
from envs.core.step import REWARD_TERMS
from envs.data import MarketArrays
from envs.spaces import check_actions
from envs.vector import PerpetualVectorEnv


class PerpetualEnv(gym.Env):
    """A cross-margin USDC account trading linear perpetual futures on several assets.

    ## Description
    Each step the agent sees the market up to the close of bar t and its account,
    and chooses, per asset, a direction, a size, protective stops and how to
    execute. Orders execute from bar t+1 on (never at a price the agent has seen),
    paying fees, half the bid-ask spread and square-root price impact. Positions
    pay or receive funding at funding times, are marked on the mark price, and are
    liquidated when equity falls to the tiered maintenance margin.

    ## Action Space
    ``Dict`` (see ``envs.spaces``), for A assets and H horizons:

    | key       | space                    | meaning                                       |
    |-----------|--------------------------|-----------------------------------------------|
    | trade     | MultiDiscrete([3] * A)   | 0 short, 1 flat, 2 long                       |
    | size      | Box(0, 1, (A,))          | fraction of the per-asset exposure budget     |
    | risk      | Box(0, 1, (2A,))         | per asset: stop-loss, take-profit distance    |
    | execution | MultiDiscrete([5, H]*A)  | per asset: style (ExecStyle), horizon - 1     |

    The exposure budget of an asset is ``max_concentration * max_leverage * equity``;
    the risk limits scale orders down before they reach the book. ``envs.flat``
    offers a flat ``Box`` variant for baseline algorithms.

    ## Observation Space
    ``Dict`` of float32 arrays: ``market`` (window, A, F) past-only features,
    ``risk`` (risk_window, 6) portfolio risk history (step log return, drawdown,
    leverage used, margin ratio, day PnL, EW volatility), ``portfolio`` (A, 6) per
    asset (exposure, unrealised return, time held, working order, stop and
    take-profit distance in ATRs).

    ## Rewards
    ``scale * (log(equity_t+1 / equity_t) - w_dd * drawdown increase - w_to * turnover
    - w_lev * leverage / max_leverage)``; every term is reported in ``info`` as
    ``reward_<name>`` (log_return, drawdown, turnover, leverage).

    ## Starting State
    A flat account with ``initial_balance`` at a bar drawn uniformly (with
    ``self.np_random``) from the usable span, after the indicator warm-up, such that
    a full episode fits; ``reset(options={"start": bar})`` picks the bar.

    ## Episode End
    Terminated on liquidation or when drawdown from peak equity reaches
    ``limits.max_drawdown``. Truncated after ``episode_steps`` decisions or when the
    data ends. The last step's ``info["trading"]`` holds the episode's trading
    statistics (return, Sharpe, max drawdown, fees, funding, turnover, ...; see
    ``envs.episode_stats``).

    ## Arguments
    ``PerpetualEnv(data, config=EnvConfig(), start_range=None)`` where ``data`` is a
    ``MarketArrays`` built from any number of assets of the synthetic market or
    collected data, ``config`` an ``EnvConfig`` and ``start_range`` an optional
    (first, last) bar for episode starts.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        data: MarketArrays,
        config: EnvConfig | None = None,
        start_range: tuple[int, int] | None = None,
    ) -> None:
        self._vec = PerpetualVectorEnv(data, config, num_envs=1, start_range=start_range)
        self.config = self._vec.config
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._done = True
        self._n_assets = data.n_assets
        self._max_horizon = self.config.execution.max_horizon

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        low, high = self._vec._starts
        start = (options or {}).get("start")
        if start is None:
            start = int(self.np_random.integers(low, high, endpoint=True))
        obs, infos = self._vec.reset(options={"start": start})
        self._done = False
        return _first(obs), _first(infos)

    def step(self, action: dict[str, np.ndarray]):
        if self._done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        arrays = check_actions(action, None, self._n_assets, self._max_horizon)
        obs, reward, terms, terminated, truncated = self._vec._advance(*arrays)
        self._done = bool(terminated[0] or truncated[0])
        acct = self._vec._state["acct"][0]
        info = {
            "equity": float(acct[EQUITY]),
            "bar": int(self._vec._state["t"][0]),
            "liquidated": bool(acct[LIQUIDATED] > 0.0),
        }
        for k, name in enumerate(REWARD_TERMS):
            info[f"reward_{name}"] = float(terms[0, k])
        if self.config.shield.enabled:
            info["shield"] = shield_report(self._vec._state["book"][0], self._vec.data.assets)
        if self._done:
            stats = self._vec.episode_stats()
            info["trading"] = {key: float(value[0]) for key, value in stats.items()}
        return (
            _first(obs),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            info,
        )

    def ledger(self) -> pd.DataFrame:
        """Every fill, fee, funding payment, stop and liquidation of this episode so far."""
        return self._vec.ledger(0)

    def account(self) -> dict[str, float]:
        """Running account totals (equity, wallet, fees, funding, ...)."""
        return self._vec.account(0)

    def positions(self) -> np.ndarray:
        """Signed position per asset in base units."""
        return self._vec.positions(0)


def _first(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v[0] for k, v in batch.items()}
