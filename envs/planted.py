"""A planted predictive signal: the sanity check that an agent can learn at all.

``plant_signal`` appends one observed feature per asset, ``planted_signal``, equal to
the sign of the asset's return from the next bar's open to the close ``horizon`` bars
later: a deliberately leaked piece of the future, so a policy that reads it can earn
far more than it pays in costs. ``informative=False`` plants a decoy with the same
shape and persistence (sign changes at the same average rate) that says nothing
about the future: a policy trained on it must not find an edge larger than its costs.

This is a test device for RL code (used by the learning tests and ``quantum train``
through ``env_config={"planted_signal": {...}}``); a real market has no such column.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.core.layout import M_CLOSE, M_OPEN
from envs.data import MarketArrays

FEATURE = "planted_signal"


def plant_signal(
    data: MarketArrays, horizon: int = 60, informative: bool = True, seed: int = 0
) -> MarketArrays:
    """A copy of ``data`` with the ``planted_signal`` feature appended (see module doc)."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1 bar")
    n = data.n_bars
    opens, closes = data.mkt[:, :, M_OPEN], data.mkt[:, :, M_CLOSE]
    signal = np.zeros((n, data.n_assets), np.float32)
    if n > horizon + 1:
        future = closes[horizon + 1 :] / opens[1 : n - horizon] - 1.0
        signal[: n - horizon - 1] = np.sign(future)
    if not informative:
        signal = _decoy(signal, np.random.default_rng(seed))
    feats = np.concatenate([data.feats, signal[:, :, None]], axis=-1)
    return dataclasses.replace(data, features=(*data.features, FEATURE), feats=feats)


def _decoy(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A +-1 series per asset flipping at the real signal's rate, independent of prices."""
    flips = np.mean(signal[1:] != signal[:-1], axis=0)
    out = np.empty_like(signal)
    for a in range(signal.shape[1]):
        changes = rng.random(len(signal)) < max(float(flips[a]), 1e-3)
        out[:, a] = np.where(np.cumsum(changes) % 2 == 0, 1.0, -1.0)
    return out
