"""Reward normalisation: rewards divided by a running standard deviation of the return.

A trading reward is a tiny number whose scale depends on the market, the decision
interval and the position sizes the policy happens to hold: 100 x the log-return of
one minute of a flat-ish book is ~1e-3, of a 15-minute step at 5x leverage ~1. PPO's
advantages are standardised per batch, so the policy gradient does not care, but the
value function does (its targets, its loss weight beside the policy loss, and the
``vf_clip_param`` clip of its squared error are all in reward units). Dividing each
reward by the running std of the discounted return, as SB3's ``VecNormalize`` and
CleanRL's ``NormalizeReward`` do (Engstrom et al. 2020, "Implementation Matters"),
puts value targets on a scale of about 1 on any data, so one ``vf_clip_param`` fits
every market.

The statistics live in the policy module as a buffer (``RETURN_STATS``: count, mean,
M2 of the discounted return), like PopArt's scale beside the value head: they are
checkpointed with the weights and continue across phases and resumes, and the value
head's outputs are in the units they define. The discounted return is carried across
the chunks of an episode (one rollout fragment at a time) by episode id.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

RETURN_STATS = "return_stats"
"""Name of the module buffer (float64 [count, mean, M2] of the discounted return)."""

EPS = 1e-8


@njit(cache=True)
def discounted_returns(rewards, starts, initial, gamma):
    """R_t = gamma R_{t-1} + r_t along concatenated chunks; chunk k starts at index
    ``starts[k]`` from ``initial[k]`` (the carry of the chunk before it, or 0)."""
    out = np.empty_like(rewards)
    k = 0
    running = 0.0
    for t in range(rewards.shape[0]):
        if k < starts.shape[0] and t == starts[k]:
            running = initial[k]
            k += 1
        running = gamma * running + rewards[t]
        out[t] = running
    return out


def new_stats() -> torch.Tensor:
    """An empty statistics buffer: count 0, mean 0, M2 0."""
    return torch.zeros(3, dtype=torch.float64)


def merge(stats: torch.Tensor, values: np.ndarray) -> None:
    """Fold ``values`` into ``stats`` in place (Chan et al.'s parallel variance update)."""
    n = float(values.size)
    if n == 0:
        return
    count, mean, m2 = (float(x) for x in stats)
    batch_mean = float(values.mean())
    batch_m2 = float(((values - batch_mean) ** 2).sum())
    total = count + n
    delta = batch_mean - mean
    stats[0] = total
    stats[1] = mean + delta * n / total
    stats[2] = m2 + batch_m2 + delta * delta * count * n / total


def std(stats: torch.Tensor) -> float:
    """The running standard deviation (1.0 before any data)."""
    count, _, m2 = (float(x) for x in stats)
    return float(np.sqrt(m2 / count + EPS)) if count > 0 else 1.0


class ReturnNormalizer:
    """Scales a batch's rewards by 1 / std of the discounted return (module docstring)."""

    def __init__(self, gamma: float, clip: float) -> None:
        self.gamma = gamma
        self.clip = clip
        self._carry: dict[str, float] = {}

    def __call__(self, stats: torch.Tensor, chunks: list, rewards: np.ndarray) -> np.ndarray:
        """Update ``stats`` (the module's buffer) with the chunks' discounted returns and
        return the scaled, clipped rewards. ``rewards`` are the chunks' concatenated."""
        lengths = np.array([len(e) for e in chunks])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        initial = np.array(
            [self._carry.pop(e.id_, 0.0) if e.t_started > 0 else 0.0 for e in chunks]
        )
        returns = discounted_returns(rewards, starts, initial, self.gamma)
        for chunk, end in zip(chunks, starts + lengths - 1, strict=True):
            if not chunk.is_done:
                self._carry[chunk.id_] = float(returns[end])
        merge(stats, returns)
        return np.clip(rewards / std(stats), -self.clip, self.clip)
