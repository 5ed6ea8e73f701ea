"""What a run's curves say about whether it is learning: the training summary's diagnosis.

Three failure signs seen on real data with settings that did not learn (a policy that
churned for millions of steps while its entropy rose), each read from results.jsonl
rows over the last third of the run against its first third:

- the entropy bonus dominates the reward: ``entropy_coeff x entropy`` per step is
  larger than the mean |reward| per step the loss sees (after normalisation) while the
  policy still trades, so it is paid more for being random than for trading well (a
  policy that has stopped trading earns 0 and is not flagged);
- turnover does not fall: a policy that learns its costs trades less (or, if it found
  an edge, earns more than it pays); the same turnover from start to end while returns
  stay negative means the fee signal is not getting through;
- the value function explains little of the returns (explained variance below
  VF_EXPLAINED_MIN): advantages are then mostly noise.

``quantum train`` prints the findings under its summary and ``quantum tune`` writes
them into each phase's recommendations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rl import metric_keys as keys

BONUS_DOMINATES = 1.0
"""Entropy bonus / mean |reward| per step above this: the bonus dominates."""
TURNOVER_FALL = 0.8
"""The last third's turnover must be below this fraction of the first third's."""
TURNOVER_FLOOR = 1.0
"""Turnover (x equity per episode) below which churn is not a concern."""
VF_EXPLAINED_MIN = 0.1
"""Explained variance of the value targets below this: the critic explains little."""



@dataclass(frozen=True)
class Finding:
    """One sign that training is not working, with the measurement behind it."""

    name: str
    """'entropy_dominates', 'turnover_not_falling' or 'value_explains_little'."""
    value: float
    """The measured quantity the rule compared with its threshold."""
    message: str


def _series(rows: Sequence[dict[str, float]], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows if key in r], dtype=float)


def _thirds(values: np.ndarray) -> tuple[float, float]:
    """Means of the first and last third (at least one value each)."""
    k = max(1, len(values) // 3)
    return float(values[:k].mean()), float(values[-k:].mean())


def diagnose(rows: Sequence[dict[str, float]], entropy_coeff: float) -> list[Finding]:
    """The failure signs (module docstring) in a run's results rows; empty if none.

    ``entropy_coeff`` is the configured coefficient, used where the rows do not carry
    RLlib's ``curr_entropy_coeff`` (a scheduled coefficient).
    """
    out: list[Finding] = []
    entropy = _series(rows, keys.ENTROPY)
    reward = _series(rows, keys.REWARD_ABS_MEAN)
    coeff = _series(rows, keys.ENTROPY_COEFF)
    turnover = _series(rows, keys.trading("turnover"))
    trading = len(turnover) == 0 or _thirds(turnover)[1] > TURNOVER_FLOOR
    if len(entropy) and len(reward) and trading:  # a flat policy earns 0: no contest
        n = min(len(entropy), len(reward))
        c = coeff[-n:] if len(coeff) >= n else np.full(n, entropy_coeff)
        ratio = _thirds(c * entropy[-n:])[1] / max(_thirds(reward[-n:])[1], 1e-12)
        if ratio > BONUS_DOMINATES:
            out.append(
                Finding(
                    "entropy_dominates",
                    ratio,
                    f"the entropy bonus is {ratio:.2g}x the mean |reward| per step over the "
                    "last third: the policy is paid more for staying random than for trading; "
                    "lower ppo.entropy_coeff",
                )
            )
    returns = _series(rows, keys.trading("return"))
    if len(turnover) >= 3:
        first, last = _thirds(turnover)
        losing = len(returns) == 0 or _thirds(returns)[1] < 0
        if last > TURNOVER_FLOOR and last >= TURNOVER_FALL * first and losing:
            out.append(
                Finding(
                    "turnover_not_falling",
                    last / max(first, 1e-12),
                    f"turnover did not fall ({first:.3g} -> {last:.3g} x equity per episode) "
                    "while episodes lose money: the cost of trading is not being learned",
                )
            )
    explained = _series(rows, keys.VF_EXPLAINED_VAR)
    if len(explained):
        tail = _thirds(explained)[1]
        if tail < VF_EXPLAINED_MIN:
            out.append(
                Finding(
                    "value_explains_little",
                    tail,
                    f"the value function explains {tail:.2g} of the return variance (below "
                    f"{VF_EXPLAINED_MIN}): advantages are mostly noise; raise ppo.vf_loss_coeff "
                    "or check the reward scale",
                )
            )
    return out
