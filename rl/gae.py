"""PPO's learner connector for the batched EnvRunner: episodes -> train batch + GAE.

RLlib's default PPO learner pipeline appends an artificial timestep to every episode
chunk, re-batches the chunks column by column in Python, runs the value network
over the whole batch again (plus the artificial steps), and computes GAE with a
Python loop over every row. For 256 envs that is a fifth of an iteration with the
MLP policy; for the hierarchical policy the second forward pass over 16k
observations costs as much as sampling them did.

``BatchedPPOConnector`` produces the same batch (columns OBS, ACTIONS, REWARDS,
TERMINATEDS, ACTION_LOGP, ACTION_DIST_INPUTS, ADVANTAGES, VALUE_TARGETS; no loss
mask, because it adds no artificial rows) with one concatenation per column and a
numba GAE scan. Value predictions come from where CleanRL and SB3 take them: the
sampling forward pass (``VF_PREDS``, and ``VF_NEXT`` = V(s_{t+1}), which the
EnvRunner fills from its next forward pass or a final bootstrap pass). EnvRunner
and Learner hold the same weights during a synchronous PPO iteration, so these are
the values RLlib would recompute; a unit test compares the two pipelines. Episodes
without those columns (RLlib's own sampling loop) get their values from one forward
pass here.

The maths is RLlib's ``compute_value_targets``: delta_t = r_t + gamma (1 - term_t)
V(s_{t+1}) - V(s_t), advantages summed back with gamma * lambda within a chunk,
value targets = advantages + V, then advantages standardised over the batch, with the
std floored at ``advantage_std_floor``: a policy that has gone flat sees rewards of
exactly 0, its advantages are only the value function's errors, and dividing those by
their own tiny std turns them into full-sized random policy gradients (seen on real
data: a flat policy thrown back into churning after 20 quiet iterations).
With ``normalize_rewards`` the rewards are first divided by the running std of the
discounted return (rl.returns), so values and targets are in those units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from market.numba_cache import configure_numba_cache
from rl.returns import RETURN_STATS, ReturnNormalizer, std

configure_numba_cache()

REWARD_ABS_KEY = "reward_abs_mean"
"""Learner metric: mean |reward| of the batch as the loss sees it (after normalisation)."""
ADVANTAGE_STD_KEY = "advantage_std"
"""Learner metric: the std of the batch's advantages before standardisation."""
RETURN_STD_KEY = "return_std"
"""Learner metric: the running std of the discounted raw return (rl.returns)."""

VF_NEXT = "vf_next"
"""Extra model output: V(s_{t+1}) under the sampling weights (see module docstring)."""


@njit(cache=True)
def gae(rewards, values, next_values, terminated, chunk_ends, gamma, lambda_):
    """Advantages and value targets (float32) for concatenated episode chunks.

    ``chunk_ends[t]`` is True at the last step of each chunk: the recursion stops
    there (the chunk's bootstrap value is in ``next_values``).
    """
    n = rewards.shape[0]
    advantages = np.empty(n, np.float32)
    targets = np.empty(n, np.float32)
    running = 0.0
    for t in range(n - 1, -1, -1):
        alive = 0.0 if terminated[t] else 1.0
        delta = rewards[t] + gamma * alive * next_values[t] - values[t]
        carry = 0.0 if chunk_ends[t] else running
        running = delta + gamma * lambda_ * alive * carry
        advantages[t] = running
        targets[t] = running + values[t]
    return advantages, targets


def _stack(parts: list):
    """Concatenate per-episode arrays (or dicts of arrays) along the time axis."""
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


class BatchedPPOConnector(ConnectorV2):
    """Episodes in, PPO's train batch out (module docstring)."""

    def __init__(
        self,
        input_observation_space=None,
        input_action_space=None,
        *,
        gamma: float,
        lambda_: float,
        normalize_rewards: bool = False,
        reward_clip: float = 10.0,
        advantage_std_floor: float = 1e-4,
        **kwargs,
    ) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.gamma = gamma
        self.lambda_ = lambda_
        self.normalizer = ReturnNormalizer(gamma, reward_clip) if normalize_rewards else None
        self.advantage_std_floor = advantage_std_floor

    def __call__(self, *, rl_module, batch, episodes, metrics=None, **kwargs) -> dict[str, Any]:
        module = rl_module[DEFAULT_MODULE_ID]
        chunks = [e for e in episodes if len(e) > 0]
        lengths = np.array([len(e) for e in chunks])
        obs = _stack([e.get_observations(slice(0, len(e))) for e in chunks])
        values, next_values = self._values(module, chunks, obs, lengths)
        raw = _stack([e.get_rewards() for e in chunks]).astype(np.float64)
        rewards = raw
        if self.normalizer is not None:
            stats = getattr(_unwrapped(module), RETURN_STATS)
            rewards = self.normalizer(stats, chunks, raw)
            if metrics is not None:
                metrics.log_value((DEFAULT_MODULE_ID, RETURN_STD_KEY), std(stats), window=1)
        if metrics is not None:  # the reward as PPO sees it, beside the entropy bonus
            metrics.log_value(
                (DEFAULT_MODULE_ID, REWARD_ABS_KEY), float(np.abs(rewards).mean()), window=1
            )
        terminated = np.zeros(lengths.sum(), dtype=bool)
        ends = np.cumsum(lengths) - 1
        terminated[ends] = [e.is_terminated for e in chunks]
        chunk_ends = np.zeros(lengths.sum(), dtype=bool)
        chunk_ends[ends] = True
        advantages, targets = gae(
            rewards, values, next_values, terminated, chunk_ends, self.gamma, self.lambda_
        )
        spread = float(advantages.std())
        if metrics is not None:
            metrics.log_value((DEFAULT_MODULE_ID, ADVANTAGE_STD_KEY), spread, window=1)
        advantages = (advantages - advantages.mean()) / max(self.advantage_std_floor, spread)
        extra = lambda key: _stack([e.get_extra_model_outputs(key) for e in chunks])  # noqa: E731
        columns = {
            Columns.OBS: obs,
            Columns.ACTIONS: _stack([e.get_actions() for e in chunks]),
            Columns.REWARDS: raw.astype(np.float32),
            Columns.TERMINATEDS: terminated,
            Columns.ACTION_LOGP: extra(Columns.ACTION_LOGP),
            Columns.ACTION_DIST_INPUTS: extra(Columns.ACTION_DIST_INPUTS),
            Postprocessing.ADVANTAGES: advantages.astype(np.float32),
            Postprocessing.VALUE_TARGETS: targets,
        }
        device = next(module.parameters()).device
        return {DEFAULT_MODULE_ID: _to_tensors(columns, device)}

    @staticmethod
    def _values(module, chunks, obs, lengths) -> tuple[np.ndarray, np.ndarray]:
        """V(s_t) and V(s_{t+1}) per row: from the sampling pass, or computed here."""
        outputs = chunks[0].extra_model_outputs
        if Columns.VF_PREDS in outputs and VF_NEXT in outputs:
            values = _stack([e.get_extra_model_outputs(Columns.VF_PREDS) for e in chunks])
            next_values = _stack([e.get_extra_model_outputs(VF_NEXT) for e in chunks])
            return values.astype(np.float64), next_values.astype(np.float64)
        last = _stack([e.get_observations(slice(len(e), len(e) + 1)) for e in chunks])
        device = next(module.parameters()).device
        with torch.no_grad():
            values = module.compute_values({Columns.OBS: _to_tensors(obs, device)})
            bootstrap = module.compute_values({Columns.OBS: _to_tensors(last, device)})
        values = values.cpu().numpy().astype(np.float64)
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[np.cumsum(lengths) - 1] = bootstrap.cpu().numpy()
        return values, next_values


def _unwrapped(module):
    """The RLModule itself (under DDP, learners hold a wrapper)."""
    return module.unwrapped() if hasattr(module, "unwrapped") else module


def map_tree(tree: Any, fn) -> Any:
    """fn applied to every leaf of a nested dict (dm-tree's map, minus its overhead)."""
    if isinstance(tree, dict):
        return {k: map_tree(v, fn) for k, v in tree.items()}
    return fn(tree)


def _to_tensors(tree: Any, device) -> Any:
    return map_tree(tree, lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device))
