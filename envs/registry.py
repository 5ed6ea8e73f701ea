"""Building envs from a plain config dict: what RLlib and gymnasium registries call.

RLlib's EnvRunner calls an env creator with its ``env_config`` dict, adding
``num_envs`` when it wants a vector env (``gym_env_vectorize_mode="vector_entry_point"``):
``make_env`` then returns the native batched :class:`PerpetualVectorEnv`, so each
EnvRunner steps all its envs in one numba call instead of looping over copies.

Keys of the dict (all optional):

- ``data_dir``, ``exchange``, ``symbols``, ``timeframe``, ``start``, ``end``: stored
  market data (market/ parquet store). Without ``data_dir`` the embedded default is
  used: the synthetic market (``synthetic_days``, ``synthetic_seed``) built in memory.
- ``env``: a dict of EnvConfig fields (unknown keys are errors).
- ``start_range``: (first, last) bar of episode starts (e.g. a training split).
- ``start_fraction``: (low, high) in [0, 1]: episode starts within that fraction of the
  usable span (a phase's data span that holds on any dataset); not with start_range.
- ``num_envs``: present -> a PerpetualVectorEnv with that many accounts.
- ``planted_signal``: ``{"horizon": 60, "informative": True, "seed": 0}`` appends the
  test feature of ``envs.planted`` (a leaked future direction, or a decoy).
- ``augment``: ``envs.augment.AugmentConfig`` fields (asset permutation, price
  scaling, segment shuffling, feature noise), applied before features are computed.

Market data is built once per process and shared by every env made from the same
data keys: an EnvRunner with many envs holds one copy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import pandas as pd

from envs.config import EnvConfig
from envs.data import MarketArrays
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv

ENV_ID = "quantum/Perpetual-v0"
_DATA_KEYS = ("data_dir", "exchange", "symbols", "timeframe", "start", "end")
_SYNTH_KEYS = ("synthetic_days", "synthetic_seed")
_KNOWN = {
    *_DATA_KEYS, *_SYNTH_KEYS, "env", "start_range", "start_fraction", "num_envs",
    "planted_signal", "augment",
}  # fmt: skip


@functools.lru_cache(maxsize=4)
def _market(key: tuple) -> MarketArrays:
    values = dict(key)
    planted = values.pop("planted_signal", None)
    if planted is not None:
        from envs.planted import plant_signal

        return plant_signal(_market(tuple(sorted(values.items()))), **dict(planted))
    augment = values.pop("augment", None)
    aligned = _aligned(values)
    if augment is None:
        return MarketArrays.from_aligned(aligned)
    from envs.augment import AugmentConfig, add_feature_noise, augment_aligned

    config = AugmentConfig(**dict(augment))
    data = MarketArrays.from_aligned(augment_aligned(aligned, config))
    return add_feature_noise(data, config.feature_noise, config.seed)


def _aligned(values: dict[str, Any]) -> pd.DataFrame:
    """The aligned bar frame the data keys name (stored data, or the synthetic market)."""
    if values.get("data_dir") is None:
        from market.synthetic import SyntheticConfig, generate_market

        config = SyntheticConfig(
            days=values.get("synthetic_days", 30.0), seed=values.get("synthetic_seed", 7)
        )
        return generate_market(config).aligned()
    from market.loader import load_aligned
    from market.store import ParquetStore

    return load_aligned(
        ParquetStore(values["data_dir"]),
        values.get("exchange", "synthetic"),
        list(values.get("symbols") or ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")),
        values.get("timeframe", "1m"),
        pd.Timestamp(values["start"], tz="UTC") if values.get("start") else None,
        pd.Timestamp(values["end"], tz="UTC") if values.get("end") else None,
    )


def market_for(env_config: Mapping[str, Any]) -> MarketArrays:
    """The (cached) market arrays an env config names."""
    unknown = set(env_config) - _KNOWN
    if unknown:
        raise ValueError(f"unknown env_config keys {sorted(unknown)}; known: {sorted(_KNOWN)}")
    key = tuple(
        (k, _hashable(v))
        for k, v in sorted(env_config.items())
        if k in _DATA_KEYS or k in _SYNTH_KEYS or k in ("planted_signal", "augment")
    )
    return _market(key)


def _fraction_range(
    data: MarketArrays, config: EnvConfig, fraction: tuple[float, float]
) -> tuple[int, int]:
    lo, hi = fraction
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"start_fraction {fraction} must satisfy 0 <= low <= high <= 1")
    first = max(data.first_valid, config.window - 1)
    last = max(first, data.n_bars - 1 - config.episode_steps * config.bars_per_step)
    return first + round(lo * (last - first)), first + round(hi * (last - first))


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def make_env(env_config: Mapping[str, Any] | None = None) -> PerpetualEnv | PerpetualVectorEnv:
    """A PerpetualEnv, or a PerpetualVectorEnv when ``num_envs`` is given (see module doc)."""
    env_config = dict(env_config or {})
    data = market_for(env_config)
    config = EnvConfig(**env_config.get("env", {}))
    start_range = env_config.get("start_range")
    start_range = tuple(start_range) if start_range is not None else None
    if env_config.get("start_fraction") is not None:
        if start_range is not None:
            raise ValueError("give start_range or start_fraction, not both")
        start_range = _fraction_range(data, config, tuple(env_config["start_fraction"]))
    if "num_envs" in env_config:
        return PerpetualVectorEnv(data, config, int(env_config["num_envs"]), start_range)
    return PerpetualEnv(data, config, start_range)


def register() -> None:
    """Register ENV_ID with gymnasium (single and vector entry points); idempotent."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        ENV_ID,
        entry_point=lambda **kwargs: make_env(kwargs),
        vector_entry_point=lambda num_envs, **kwargs: make_env({**kwargs, "num_envs": num_envs}),
    )
