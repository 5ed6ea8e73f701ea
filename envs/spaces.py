"""Observation and action spaces, and strict action checking.

Action (Dict, one part per head of the hierarchical policy; gymnasium sorts the keys):

- ``trade``     MultiDiscrete([3] * A): per asset 0 short, 1 flat, 2 long
- ``size``      Box(0, 1, (A,)): fraction of the per-asset exposure budget
- ``risk``      Box(0, 1, (2A,)): per asset its stop-loss then its take-profit distance
                ([sl_0, tp_0, sl_1, tp_1, ...]), mapped linearly onto the configured
                ATR-multiple ranges
- ``execution`` MultiDiscrete([5, H] * A): per asset its style (ExecStyle) then its
                horizon - 1 in bars ([style_0, h_0, style_1, h_1, ...])

Every part is one-dimensional, as RLlib's and SB3's action distributions expect
(RLlib refuses a Box of shape (A, 2)); the kernels view risk and execution as
(A, 2) without copying.

Out-of-range, NaN or wrongly shaped actions raise ``ValueError``: clipping them
would hide bugs in the policy or its action distribution. (The check is a numba
kernel: it runs every step, and numpy's many small reductions would cost more
than the simulation itself.)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from gymnasium import spaces
from numba import njit

from envs.config import EnvConfig, ExecStyle
from envs.core.observe import N_RISK, portfolio_features

N_STYLES = len(ExecStyle)
DECISIONS = ("short", "flat", "long")
"""The trade head's choices by index, as signals name them."""
STYLES = tuple(s.name.lower() for s in ExecStyle)
"""The execution styles by index, as signals name them."""


def observation_space(config: EnvConfig, n_assets: int, n_features: int,
                      text: tuple[int, int] | None = None) -> spaces.Dict:
    """market (window, A, features), risk (risk_window, N_RISK), portfolio (A, its
    features under the config: envs.core.observe.portfolio_features), and with ``text``
    (slots, width) the news part: the newest visible headlines, each its embedding then
    sentiment and recency (news.align.AlignedNews.text)."""
    box = lambda shape: spaces.Box(-np.inf, np.inf, shape, np.float32)  # noqa: E731
    parts = {
        "market": box((config.window, n_assets, n_features)),
        "risk": box((config.risk_window, N_RISK)),
        "portfolio": box((n_assets, len(portfolio_features(config)))),
    }
    if text is not None:
        parts["text"] = box(tuple(text))
    return spaces.Dict(parts)


def text_shape(data) -> tuple[int, int] | None:
    """The `text` part's (slots, width) for market arrays (envs.data.MarketArrays), or None
    when they carry no headlines."""
    if data.text is None:
        return None
    return data.text.slots.shape[1], data.text.width


def action_space(config: EnvConfig, n_assets: int) -> spaces.Dict:
    """The composite action (see module docstring)."""
    horizons = config.execution.max_horizon
    return spaces.Dict(
        {
            "trade": spaces.MultiDiscrete(np.full(n_assets, 3)),
            "size": spaces.Box(0.0, 1.0, (n_assets,), np.float32),
            "risk": spaces.Box(0.0, 1.0, (2 * n_assets,), np.float32),
            "execution": spaces.MultiDiscrete(np.tile([N_STYLES, horizons], n_assets)),
        }
    )


_KEYS = ("trade", "size", "risk", "execution")
_KEY_SET = frozenset(_KEYS)
_ERRORS = {
    1: "action['trade'] must be integers 0 (short), 1 (flat) or 2 (long)",
    2: "action['size'] must lie in [0, 1] (and not be NaN)",
    3: "action['risk'] must lie in [0, 1] (and not be NaN)",
    4: "action['execution'] must hold an integer style in [0, {styles}) and horizon index in "
    "[0, {horizons})",
}


@njit(cache=True)
def _first_error(trade, size, risk, execution, n_styles, max_horizon):
    """0 if the batch is valid, else the code of the first broken rule (NaN fails every range)."""
    for x in trade.flat:
        if not (x == 0 or x == 1 or x == 2):
            return 1
    for x in size.flat:
        if not (0.0 <= x <= 1.0):
            return 2
    for x in risk.flat:
        if not (0.0 <= x <= 1.0):
            return 3
    for i, x in enumerate(execution.flat):
        bound = n_styles if i % 2 == 0 else max_horizon
        if not (0 <= x < bound) or x != math.floor(x):
            return 4
    return 0


@functools.cache
def _expected_shapes(n_envs: int | None, n_assets: int) -> list[tuple[int, ...]]:
    """Shapes of trade, size, risk, execution (cached: the check runs every step)."""
    lead = () if n_envs is None else (n_envs,)
    return [(*lead, n_assets), (*lead, n_assets), (*lead, 2 * n_assets), (*lead, 2 * n_assets)]


def check_actions(
    action: dict, n_envs: int | None, n_assets: int, max_horizon: int
) -> tuple[np.ndarray, ...]:
    """Validate a batch of actions (leading axis n_envs) and return kernel-ready arrays.

    With ``n_envs=None`` the action is one env's (no leading axis); the arrays come
    back with a leading axis of 1.
    """
    if not isinstance(action, dict) or action.keys() != _KEY_SET:
        keys = sorted(action) if isinstance(action, dict) else type(action).__name__
        raise ValueError(f"action must be a dict with trade, size, risk, execution; got {keys}")
    arrays = [np.asarray(action[k]) for k in _KEYS]
    expected = _expected_shapes(n_envs, n_assets)
    if [a.shape for a in arrays] != expected:
        for key, value, shape in zip(_KEYS, arrays, expected, strict=True):
            if value.shape != shape:
                raise ValueError(f"action[{key!r}] has shape {value.shape}, expected {shape}")
    if not all(a.dtype.kind in "iuf" for a in arrays):
        raise ValueError("action arrays must be numeric")
    batch = 1 if n_envs is None else n_envs
    trade, size, risk, execution = arrays
    if n_envs is None:
        trade, size = trade.reshape(batch, n_assets), size.reshape(batch, n_assets)
    risk, execution = risk.reshape(batch, n_assets, 2), execution.reshape(batch, n_assets, 2)
    code = _first_error(trade, size, risk, execution, N_STYLES, max_horizon)
    if code:
        raise ValueError(_ERRORS[code].format(styles=N_STYLES, horizons=max_horizon))
    # the kernels take the arrays as they come (numba specialises per dtype): no copies
    return trade, size, risk, execution
