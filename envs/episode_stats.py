"""Per-episode trading statistics, reported in ``info["trading"]`` when an episode ends.

Like gymnasium's RecordEpisodeStatistics with ``info["episode"]`` (a key left to it
and to SB3's Monitor, which expect their own r/l/t fields there), a vector env puts
the finished episodes' statistics in ``infos["trading"]`` with the mask
``infos["_trading"]``; RLlib's ``DictInfoToList`` hands each env its own dict. Training
callbacks, backtests and benchmarks read the same numbers, so they are computed once,
here, from the account's own totals: the simulator kernel accumulates the episode sums
(steps, reward, squared returns, max drawdown, each reward term) in the account
state, so a step costs nothing extra in Python.

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
    EP_MAX_DRAWDOWN,
    EP_REWARD,
    EP_SQ_RETURN,
    EP_STEPS,
    EP_TERMS,
    EQUITY,
    FEES,
    FUNDING,
    IMPACT,
    LIQ_FEES,
    LIQUIDATED,
    SPREAD,
)
from envs.core.step import REWARD_TERMS

_YEAR_NS = 365.25 * 24 * 3600 * 1e9


def steps_per_year(timestamps: np.ndarray, bars_per_step: int) -> float:
    """Decisions per year, from the median bar spacing of the data (ns timestamps)."""
    spacing = float(np.median(np.diff(timestamps[:10_000].astype(np.int64))))
    return _YEAR_NS / (spacing * bars_per_step)


def episode_stats(
    acct: np.ndarray, initial: float, per_year: float, risk_free_rate: float
) -> dict[str, np.ndarray]:
    """Statistics of every env's episode so far (read them at its last step)."""
    n = np.maximum(acct[:, EP_STEPS], 1.0)
    log_returns = acct[:, EP_TERMS]
    mean = log_returns / n
    var = np.maximum(acct[:, EP_SQ_RETURN] / n - mean * mean, 0.0)
    std = np.sqrt(var * n / np.maximum(n - 1, 1))
    excess = mean - math.log1p(risk_free_rate) / per_year
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(std > 0, excess / std * math.sqrt(per_year), 0.0)
    stats = {
        "return": acct[:, EQUITY] / initial - 1.0,
        "log_return": log_returns.copy(),
        "sharpe": sharpe,
        "max_drawdown": acct[:, EP_MAX_DRAWDOWN].copy(),
        "fees": acct[:, FEES] + acct[:, LIQ_FEES],
        "funding": acct[:, FUNDING].copy(),
        "spread": acct[:, SPREAD].copy(),
        "impact": acct[:, IMPACT].copy(),
        "turnover": acct[:, EP_TERMS + 2].copy(),
        "liquidated": (acct[:, LIQUIDATED] > 0).astype(np.float64),
        "bad_debt": acct[:, BAD_DEBT].copy(),
        "length": acct[:, EP_STEPS].copy(),
        "reward": acct[:, EP_REWARD].copy(),
    }
    for k, name in enumerate(REWARD_TERMS):
        stats[f"reward_{name}"] = acct[:, EP_TERMS + k].copy()
    return stats
