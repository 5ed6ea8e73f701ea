"""Per-episode trading statistics, reported in ``info["trading"]`` when an episode ends.

Like gymnasium's RecordEpisodeStatistics with ``info["episode"]`` (a key left to it
and to SB3's Monitor, which expect their own r/l/t fields there), a vector env puts
the finished episodes' statistics in ``infos["trading"]`` with the mask
``infos["_trading"]``; RLlib's ``DictInfoToList`` hands each env its own dict. Training
callbacks, backtests and benchmarks read the same numbers, so they are computed once,
here, from the simulator's own account totals and reward terms.

Keys (all floats): ``return`` (final equity / initial - 1), ``log_return``, ``sharpe``
(annualised from per-step log returns, in excess of the risk-free rate),
``max_drawdown``, ``fees`` (trading plus liquidation fees), ``funding`` (paid, net),
``spread``, ``impact``, ``turnover`` (traded notional / equity, summed), ``liquidated``
(0 or 1), ``bad_debt``, ``length`` (steps), ``reward`` (sum) and ``reward_<term>`` (the
sum of each reward term).
"""

from __future__ import annotations

import math

import numpy as np

from envs.core.layout import (
    BAD_DEBT,
    EQUITY,
    FEES,
    FUNDING,
    IMPACT,
    LIQ_FEES,
    LIQUIDATED,
    PEAK,
    SPREAD,
)
from envs.core.step import REWARD_TERMS

_YEAR_NS = 365.25 * 24 * 3600 * 1e9


class EpisodeStats:
    """Running sums over the current episode of every env (a few array ops per step)."""

    def __init__(
        self, num_envs: int, initial: float, steps_per_year: float, risk_free_rate: float
    ) -> None:
        self.initial = initial
        self.steps_per_year = steps_per_year
        self.rf_per_step = math.log1p(risk_free_rate) / steps_per_year
        self.terms = np.zeros((num_envs, len(REWARD_TERMS)))
        self.reward = np.zeros(num_envs)
        self.sq_return = np.zeros(num_envs)
        self.max_drawdown = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)

    @staticmethod
    def steps_per_year_of(timestamps: np.ndarray, bars_per_step: int) -> float:
        """Decisions per year, from the median bar spacing of the data (ns timestamps)."""
        spacing = float(np.median(np.diff(timestamps[:10_000].astype(np.int64))))
        return _YEAR_NS / (spacing * bars_per_step)

    def reset(self, mask: np.ndarray) -> None:
        for array in (self.terms, self.reward, self.sq_return, self.max_drawdown, self.length):
            array[mask] = 0

    def update(
        self, active: np.ndarray, terms: np.ndarray, rewards: np.ndarray, acct: np.ndarray
    ) -> None:
        """Add one step (inactive envs contribute zeros, so only their length is masked)."""
        self.terms += terms
        self.reward += rewards
        self.sq_return += np.square(terms[:, 0])
        np.maximum(self.max_drawdown, 1.0 - acct[:, EQUITY] / acct[:, PEAK], out=self.max_drawdown)
        self.length += active

    def finished(self, acct: np.ndarray) -> dict[str, np.ndarray]:
        """Statistics of every env's episode so far (read them at the last step)."""
        n = np.maximum(self.length, 1)
        mean = self.terms[:, 0] / n
        var = np.maximum(self.sq_return / n - mean * mean, 0.0)
        std = np.sqrt(var * n / np.maximum(n - 1, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(
                std > 0, (mean - self.rf_per_step) / std * math.sqrt(self.steps_per_year), 0.0
            )
        stats = {
            "return": acct[:, EQUITY] / self.initial - 1.0,
            "log_return": self.terms[:, 0].copy(),
            "sharpe": sharpe,
            "max_drawdown": self.max_drawdown.copy(),
            "fees": acct[:, FEES] + acct[:, LIQ_FEES],
            "funding": acct[:, FUNDING].copy(),
            "spread": acct[:, SPREAD].copy(),
            "impact": acct[:, IMPACT].copy(),
            "turnover": self.terms[:, 2].copy(),
            "liquidated": (acct[:, LIQUIDATED] > 0).astype(np.float64),
            "bad_debt": acct[:, BAD_DEBT].copy(),
            "length": self.length.astype(np.float64),
            "reward": self.reward.copy(),
        }
        for k, name in enumerate(REWARD_TERMS):
            stats[f"reward_{name}"] = self.terms[:, k].copy()
        return stats
