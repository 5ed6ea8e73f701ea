"""Evaluate a policy on whole episodes of the batched env, without RLlib's machinery.

A policy is any callable from a batch of Dict observations to a batch of Dict actions,
so an RLModule (``module_policy``) and simple rules (``flat_policy``,
``random_policy``) are compared on exactly the same episodes (same env seed, same
starts). Validation during training (rl.validation), the learning tests and the
benchmarks use ``evaluate``/``episode_stats``; backtests (backtest.run) and the bias
analysis run ``module_policy`` over a span instead of whole episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns

from envs.registry import make_env

Policy = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def module_policy(module, deterministic: bool = True) -> Policy:
    """An RLModule as a policy (forward_inference: mode/mean of each head, in order)."""

    def act(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = {Columns.OBS: {k: torch.from_numpy(v) for k, v in obs.items()}}
        with torch.no_grad():
            out = (
                module.forward_inference(batch)
                if deterministic
                else module.forward_exploration(batch)
            )
        return {k: v.numpy() for k, v in out[Columns.ACTIONS].items()}

    return act


def flat_policy(action_space) -> Policy:
    """Never holds a position (trade = flat for every asset)."""

    def act(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        action = action_space.sample()
        action["trade"][:] = 1
        return action

    return act


def random_policy(action_space, seed: int = 0) -> Policy:
    """Uniform over the action space."""
    action_space.seed(seed)
    return lambda obs: action_space.sample()


def evaluate(
    policy_factory: Callable[[Any], Policy],
    env_config: Mapping[str, Any],
    episodes: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-episode statistics (envs.episode_stats keys) over ``episodes`` episodes.

    One batched env with ``episodes`` accounts runs one episode each from seeded start
    bars; ``policy_factory`` gets the batched action space and returns the policy.
    """
    finished = episode_stats(policy_factory, env_config, episodes, seed=seed)
    out = {key: float(values.mean()) for key, values in finished.items()}
    out["return_sem"] = float(finished["return"].std(ddof=1) / np.sqrt(episodes))
    return out


def episode_stats(
    policy_factory: Callable[[Any], Policy],
    env_config: Mapping[str, Any],
    episodes: int,
    *,
    seed: int = 0,
    starts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-episode statistics of ``episodes`` episodes run side by side, from seeded
    random start bars or from the given ``starts`` (one per episode)."""
    env = make_env({**env_config, "num_envs": episodes})
    policy = policy_factory(env.action_space)
    options = None if starts is None else {"start": np.asarray(starts, dtype=np.int64)}
    obs, _ = env.reset(seed=seed, options=options)
    finished: dict[str, np.ndarray] = {}
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, _, _, _, info = env.step(policy(obs))
        if "trading" in info:
            new = info["_trading"] & ~done
            for key, values in info["trading"].items():
                finished.setdefault(key, np.zeros(episodes))[new] = values[new]
            done |= info["_trading"]
    return finished
