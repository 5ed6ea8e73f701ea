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
- ``span``: (first, last) bars an episode may read, start to end (a run's training part,
  rl.splits): episodes start and end inside it.
- ``start_range``: (first, last) bar of episode starts (inside ``span`` if given).
- ``start_fraction``: (low, high) in [0, 1]: episode starts within that fraction of the
  usable span, or of ``span`` (a phase's data span that holds on any dataset); not with
  start_range.
- ``num_envs``: present -> a PerpetualVectorEnv with that many accounts.
- ``planted_signal``: ``{"horizon": 60, "informative": True, "seed": 0}`` appends the
  test feature of ``envs.planted`` (a leaked future direction, or a decoy).
- ``news``: ``news.source.NewsConfig`` fields (``{}`` for the synthetic stream) appends
  the news features of ``envs.news_features`` (decayed sentiment and intensity per asset
  and market-wide), aligned without look-ahead.
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
    *_DATA_KEYS, *_SYNTH_KEYS, "env", "span", "start_range", "start_fraction", "num_envs",
    "planted_signal", "augment", "news",
}


@functools.lru_cache(maxsize=4)
def _market(key: tuple) -> MarketArrays:
    values = dict(key)
    news = values.pop("news", None)
    if news is not None:
        from envs.news_features import with_news

        return with_news(_market(tuple(sorted(values.items()))), _plain(news),
                         values.get("data_dir"))
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
    from market.loader import DEFAULT_SYMBOLS, load_aligned
    from market.store import ParquetStore

    return load_aligned(
        ParquetStore(values["data_dir"]),
        values.get("exchange", "synthetic"),
        list(values.get("symbols") or DEFAULT_SYMBOLS),
        values.get("timeframe", "1m"),
        pd.Timestamp(values["start"], tz="UTC") if values.get("start") else None,
        pd.Timestamp(values["end"], tz="UTC") if values.get("end") else None,
    )


def aligned_for(env_config: Mapping[str, Any]) -> pd.DataFrame:
    """The aligned bar frame (before features) of the plain market data an env config names
    (stored or synthetic); planted signals and augmentation are training devices, refused."""
    extra = sorted(k for k in ("planted_signal", "augment") if env_config.get(k) is not None)
    if extra:
        raise ValueError(f"{extra} alter the market for training; they have no bars to trade")
    return _aligned({k: v for k, v in env_config.items() if k in _DATA_KEYS or k in _SYNTH_KEYS})


def market_for(env_config: Mapping[str, Any]) -> MarketArrays:
    """The (cached) market arrays an env config names."""
    unknown = set(env_config) - _KNOWN
    if unknown:
        raise ValueError(f"unknown env_config keys {sorted(unknown)}; known: {sorted(_KNOWN)}")
    key = tuple(
        (k, _hashable(v))
        for k, v in sorted(env_config.items())
        if k in _DATA_KEYS or k in _SYNTH_KEYS or k in ("planted_signal", "augment", "news")
    )
    return _market(key)


def _starts_in(
    data: MarketArrays, config: EnvConfig, span: tuple[int, int] | None
) -> tuple[int, int]:
    """First and last episode start whose whole episode lies in ``span``; without one,
    the usable bars (an episode longer than the data ends at its last bar)."""
    first = max(data.first_valid, config.window - 1)
    episode = config.episode_steps * config.bars_per_step
    if span is None:
        return first, max(first, data.n_bars - 1 - episode)
    first = max(first, span[0])
    last = min(span[1], data.n_bars - 1) - episode
    if last < first:
        raise ValueError(
            f"span {tuple(span)} holds no whole episode ({config.episode_steps} steps x "
            f"{config.bars_per_step} bars): shorten env.episode_steps or give more data"
        )
    return first, last


def _fraction_range(
    bounds: tuple[int, int], fraction: tuple[float, float]
) -> tuple[int, int]:
    lo, hi = fraction
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"start_fraction {fraction} must satisfy 0 <= low <= high <= 1")
    first, last = bounds
    return first + round(lo * (last - first)), first + round(hi * (last - first))


def _plain(value: Any) -> Any:
    """A config made hashable by :func:`_hashable` back as dicts (its mappings were
    sorted (key, value) pairs)."""
    if isinstance(value, tuple) and all(
            isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
        return {k: _plain(v) for k, v in value}
    return value


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
    span = env_config.get("span")
    bounds = _starts_in(data, config, tuple(span) if span is not None else None)
    inside = start_range is None or bounds[0] <= start_range[0] <= start_range[1] <= bounds[1]
    if span is not None and not inside:
        raise ValueError(
                f"start_range {start_range} lets episodes leave span {tuple(span)} "
                f"(starts must lie in {bounds})"
            )
    if env_config.get("start_fraction") is not None:
        if start_range is not None:
            raise ValueError("give start_range or start_fraction, not both")
        start_range = _fraction_range(bounds, tuple(env_config["start_fraction"]))
    elif span is not None and start_range is None:
        start_range = bounds
    if "num_envs" in env_config:
        return PerpetualVectorEnv(data, config, int(env_config["num_envs"]), start_range)
    return PerpetualEnv(data, config, start_range)


def episode_start_bounds(env_config: Mapping[str, Any]) -> tuple[int, int]:
    """First and last episode start bar the config allows (inside its ``span``, if any)."""
    data = market_for({k: v for k, v in env_config.items() if k != "num_envs"})
    span = env_config.get("span")
    config = EnvConfig(**env_config.get("env", {}))
    return _starts_in(data, config, tuple(span) if span is not None else None)


def register() -> None:
    """Register ENV_ID with gymnasium (single and vector entry points); idempotent."""
    if ENV_ID in gym.registry:
        return
    gym.register(
        ENV_ID,
        entry_point=lambda **kwargs: make_env(kwargs),
        vector_entry_point=lambda num_envs, **kwargs: make_env({**kwargs, "num_envs": num_envs}),
    )
