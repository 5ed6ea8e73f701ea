"""A flat-Box variant of PerpetualEnv for baseline algorithms (SB3-style MLP policies).

Action: ``Box(-1, 1, (A,))``, the signed target exposure of each asset as a fraction
of its budget: ``x > 0`` long, ``x < 0`` short, ``x == 0`` flat, size ``|x|``. Stops
sit at fixed ATR distances and orders are market orders (both configurable).
Observation: the Dict observation flattened into one float32 vector
(``gymnasium.spaces.flatten`` order: market, portfolio, risk).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation

from envs.config import ExecStyle
from envs.single import PerpetualEnv


class FlatActions(gym.ActionWrapper):
    """Maps a signed-exposure Box action onto the composite Dict action."""

    def __init__(
        self,
        env: PerpetualEnv,
        stop_loss: float = 1.0,
        take_profit: float = 1.0,
        style: ExecStyle = ExecStyle.MARKET,
    ) -> None:
        super().__init__(env)
        n_assets = env.action_space["trade"].shape[0]
        self.action_space = spaces.Box(-1.0, 1.0, (n_assets,), np.float32)
        self._risk = np.tile(np.array([stop_loss, take_profit], np.float32), n_assets)
        self._execution = np.tile(np.array([int(style), 0]), n_assets)

    def action(self, action: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(action, dtype=np.float32)
        if x.shape != self.action_space.shape:
            raise ValueError(f"action has shape {x.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(x)) or np.abs(x).max(initial=0.0) > 1.0:
            raise ValueError("flat actions must be finite and lie in [-1, 1]")
        return {
            "trade": (np.sign(x) + 1).astype(np.int64),
            "size": np.abs(x),
            "risk": self._risk,
            "execution": self._execution,
        }


def make_flat_env(env: PerpetualEnv, **kwargs) -> gym.Env:
    """PerpetualEnv with a Box action (see FlatActions) and a flattened Box observation."""
    return FlattenObservation(FlatActions(env, **kwargs))
