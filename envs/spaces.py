"""Observation and action spaces, and strict action checking.

Action (Dict, one part per head of the hierarchical policy; gymnasium sorts the keys):

- ``trade``     MultiDiscrete([3] * A): per asset 0 short, 1 flat, 2 long
- ``size``      Box(0, 1, (A,)): fraction of the per-asset exposure budget
- ``risk``      Box(0, 1, (A, 2)): stop-loss and take-profit distance, mapped linearly
                onto the configured ATR-multiple ranges
- ``execution`` MultiDiscrete([[5, H]] * A): style (ExecStyle) and horizon - 1 (bars)

Out-of-range, NaN or wrongly shaped actions raise ``ValueError``: clipping them
would hide bugs in the policy or its action distribution.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.config import EnvConfig, ExecStyle
from envs.core.observe import N_PORTFOLIO, N_RISK

N_STYLES = len(ExecStyle)


def observation_space(config: EnvConfig, n_assets: int, n_features: int) -> spaces.Dict:
    """market (window, A, features), risk (risk_window, N_RISK), portfolio (A, N_PORTFOLIO)."""
    box = lambda shape: spaces.Box(-np.inf, np.inf, shape, np.float32)  # noqa: E731
    return spaces.Dict(
        {
            "market": box((config.window, n_assets, n_features)),
            "risk": box((config.risk_window, N_RISK)),
            "portfolio": box((n_assets, N_PORTFOLIO)),
        }
    )


def action_space(config: EnvConfig, n_assets: int) -> spaces.Dict:
    """The composite action (see module docstring)."""
    horizons = config.execution.max_horizon
    return spaces.Dict(
        {
            "trade": spaces.MultiDiscrete(np.full(n_assets, 3)),
            "size": spaces.Box(0.0, 1.0, (n_assets,), np.float32),
            "risk": spaces.Box(0.0, 1.0, (n_assets, 2), np.float32),
            "execution": spaces.MultiDiscrete(np.tile([N_STYLES, horizons], (n_assets, 1))),
        }
    )


def check_actions(
    action: dict, n_envs: int, n_assets: int, max_horizon: int
) -> tuple[np.ndarray, ...]:
    """Validate a batch of actions (leading axis n_envs) and return kernel-ready arrays."""
    if not isinstance(action, dict) or set(action) != {"trade", "size", "risk", "execution"}:
        keys = sorted(action) if isinstance(action, dict) else type(action).__name__
        raise ValueError(f"action must be a dict with trade, size, risk, execution; got {keys}")
    shapes = {
        "trade": (n_envs, n_assets),
        "size": (n_envs, n_assets),
        "risk": (n_envs, n_assets, 2),
        "execution": (n_envs, n_assets, 2),
    }
    arrays = {}
    for key, shape in shapes.items():
        value = np.asarray(action[key])
        if value.shape != shape:
            raise ValueError(f"action[{key!r}] has shape {value.shape}, expected {shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"action[{key!r}] contains NaN or inf")
        arrays[key] = value
    trade = arrays["trade"]
    if np.any(trade != np.round(trade)) or trade.min() < 0 or trade.max() > 2:
        raise ValueError("action['trade'] must be integers 0 (short), 1 (flat) or 2 (long)")
    for key in ("size", "risk"):
        if arrays[key].min() < 0.0 or arrays[key].max() > 1.0:
            raise ValueError(f"action[{key!r}] must lie in [0, 1]")
    execution = arrays["execution"]
    bad_style = (execution[..., 0] < 0) | (execution[..., 0] >= N_STYLES)
    bad_horizon = (execution[..., 1] < 0) | (execution[..., 1] >= max_horizon)
    if np.any(execution != np.round(execution)) or bad_style.any() or bad_horizon.any():
        raise ValueError(
            f"action['execution'] must hold integer style in [0, {N_STYLES}) "
            f"and horizon index in [0, {max_horizon})"
        )
    return (
        trade.astype(np.int64),
        arrays["size"].astype(np.float64),
        arrays["risk"].astype(np.float64),
        execution.astype(np.float64),
    )
