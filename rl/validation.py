"""Periodic deterministic evaluation on the validation part: what selects a model.

Every ``validation.every`` iterations the current policy (its mode, as it will be
backtested and served) runs ``validation.episodes`` whole episodes whose starts are
spread evenly over the run's validation part (rl.splits): the same starts every time,
so two checkpoints are compared on the same market, not on the luck of the draw. The
episodes run in the driver, or split over ``validation.workers`` Ray tasks (one CPU
each) so a cluster evaluates them side by side like rollouts.

The mean episode return, Sharpe, max drawdown and turnover go into each result under
``validation/``, beside the training metrics (carried forward between evaluations,
with ``validation/fresh`` 1 where they were measured); the best checkpoint, Tune's and
PBT's score and the phases' early ends read them (``rl.train``, ``rl.phases``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from rl import metric_keys as keys
from rl.config import VALIDATION_METRICS, ValidationSettings
from rl.evaluate import episode_stats, module_policy


def starts(span: tuple[int, int], episodes: int) -> np.ndarray:
    """``episodes`` start bars spread evenly over [first, last] start bars."""
    return np.linspace(span[0], span[1], episodes).round().astype(np.int64)


def _stats(module, env_config: Mapping[str, Any], chunk: np.ndarray) -> dict[str, np.ndarray]:
    return episode_stats(lambda space: module_policy(module), env_config, len(chunk), starts=chunk)


@functools.cache
def _remote_stats():
    """``_stats`` as a Ray task of one CPU (made once per process, not per evaluation)."""
    import ray

    return ray.remote(num_cpus=1)(_stats)


def validate(
    module, env_config: Mapping[str, Any], start_bars: np.ndarray, workers: int = 0
) -> dict[str, float]:
    """Mean statistics of deterministic episodes from ``start_bars`` (see module doc)."""
    if workers == 0:
        stats = _stats(module, env_config, start_bars)
    else:
        import ray

        task = _remote_stats()
        ref = ray.put(module)
        chunks = [c for c in np.array_split(start_bars, workers) if len(c)]
        parts = ray.get([task.remote(ref, dict(env_config), c) for c in chunks])
        stats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = {k: float(np.mean(stats[k])) for k in VALIDATION_METRICS if k in stats}
    out["episodes"] = float(len(start_bars))
    return out


def validation_callbacks(base: type, settings: ValidationSettings, env_config: dict) -> type:
    """``base`` (an RLlibCallback class) that also validates every ``settings.every``
    iterations and adds the result under ``validation/`` (``env_config`` holds the
    validation part as ``span``)."""
    from envs.registry import episode_start_bounds

    bounds = episode_start_bounds(env_config)
    start_bars = starts(bounds, settings.episodes)

    class ValidationCallbacks(base):
        last_validation: dict[str, float] | None = None
        """The latest validation (one callbacks object per Algorithm)."""

        def on_train_result(self, *, algorithm, result, **kwargs: Any) -> None:
            iteration = int(result.get("training_iteration", algorithm.iteration))
            last = self.last_validation
            fresh = settings.every > 0 and iteration % settings.every == 0
            if fresh:
                module = algorithm.get_module()
                if module is None:
                    raise RuntimeError("validation needs the policy in the driver's EnvRunner")
                last = validate(module, env_config, start_bars, settings.workers)
                self.last_validation = last
            if last is not None:  # carried forward: scores and early ends read the latest
                result[keys.VALIDATION_PART] = {**last, keys.FRESH: float(fresh)}
            super().on_train_result(algorithm=algorithm, result=result, **kwargs)

    return ValidationCallbacks
