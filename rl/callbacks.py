"""RLlib callback that turns each finished episode's trading statistics into metrics.

The env computes the statistics (envs.episode_stats) and hands them over in the last
step's ``info["trading"]``; here they are logged under the ``trading/`` namespace of
the EnvRunner's MetricsLogger, averaged over the last 100 episodes (RLlib's own
smoothing window for episode returns). They
show up in the algorithm's results as ``env_runners/trading/<name>`` and from there
in the console summary, the results file and W&B.
"""

from __future__ import annotations

import math
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

NAMESPACE = "trading"


class TradingMetricsCallback(RLlibCallback):
    """Logs return, Sharpe, drawdown, fees, funding, turnover, liquidations and every
    reward term of each finished episode (means over the last 100 episodes)."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs: Any) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1)
        stats = info.get("trading") if isinstance(info, dict) else None
        if not stats:
            return
        log_trading_stats(metrics_logger, stats)


def log_trading_stats(metrics_logger, stats: dict[str, Any]) -> None:
    """Log one finished episode's statistics (envs.episode_stats) under ``trading/``."""
    for name, value in stats.items():
        value = float(value)
        if math.isfinite(value):
            metrics_logger.log_value((NAMESPACE, name), value, reduce="mean", window=100)
    metrics_logger.log_value((NAMESPACE, "episodes"), 1, reduce="sum")
