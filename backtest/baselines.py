"""Rule baselines, run on the same simulator as the policy so every comparison is
cost-for-cost: a trained policy that cannot beat these after fees has learned nothing
worth deploying.

Each rule is a Policy (rl.evaluate): a batch of Dict observations in, a batch of
Dict actions out, deciding only from what it observes. Rules trade with market
orders and the widest stop-loss/take-profit the env allows (stops as a crash guard,
not a strategy).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.config import EnvConfig
from envs.data import MarketArrays

Rule = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def _unit_size(config: EnvConfig, n_assets: int, gross: float) -> float:
    """The size action that gives each asset gross / n_assets of equity in notional."""
    per_asset = gross / n_assets
    return min(1.0, per_asset / (config.limits.max_concentration * config.limits.max_leverage))


def _action(trade: np.ndarray, size: float) -> dict[str, np.ndarray]:
    n, a = trade.shape
    return {
        "trade": trade.astype(np.int64),
        "size": np.full((n, a), size, np.float32),
        "risk": np.ones((n, 2 * a), np.float32),
        "execution": np.zeros((n, 2 * a), np.int64),
    }


def flat(data: MarketArrays, config: EnvConfig) -> Rule:
    """Never trades: the zero line every cost-paying strategy is measured against."""
    return lambda obs: _action(np.ones((len(obs["market"]), data.n_assets)), 0.0)


def buy_and_hold(data: MarketArrays, config: EnvConfig, gross: float = 1.0) -> Rule:
    """Long every asset in equal notional, ``gross`` x equity in total, held throughout
    (backtests run the rules without stops; the rebalance band keeps it from churning)."""
    size = _unit_size(config, data.n_assets, gross)
    return lambda obs: _action(np.full((len(obs["market"]), data.n_assets), 2), size)


def momentum(data: MarketArrays, config: EnvConfig, gross: float = 1.0) -> Rule:
    """Long the assets whose standardised returns over the observation window sum above
    zero, short the others (time-series momentum over ``config.window`` bars)."""
    if "log_return_z" not in data.features:
        raise ValueError("the momentum rule needs the log_return_z feature")
    column = data.features.index("log_return_z")
    size = _unit_size(config, data.n_assets, gross)

    def act(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signal = obs["market"][:, :, :, column].sum(axis=1)  # (n, A)
        return _action(np.where(signal > 0, 2, 0), size)

    return act


RULES: dict[str, Callable[..., Rule]] = {
    "flat": flat,
    "buy_and_hold": buy_and_hold,
    "momentum": momentum,
}
"""Rule baselines by name (``quantum backtest --baselines``)."""
