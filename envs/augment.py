"""Data augmentation against asset bias, applied to the market before features exist.

A policy trained on one history can learn "BTC is column 0 and mostly rose" instead of
how markets move. Each augmentation removes one such shortcut, and each is applied to
the aligned bar frame, *before* the features are computed, so every feature the
policy sees is still computed from the augmented past only: nothing can leak from the
future (shuffled segments would otherwise carry features of their original past,
which may now lie in their future).

- ``asset_permutation``: the assets' order is shuffled (each series unchanged).
- ``price_scale`` (low, high): each asset's prices are multiplied by a factor drawn in
  [low, high] and its volume divided by it (traded notional unchanged); returns and
  every scale-free feature are unchanged, absolute price levels are not learnable.
- ``segment_shuffle``: whole segments of ``segment_bars`` bars (default a day) are
  reordered; within a segment every bar is kept, and each segment is rescaled so it
  opens where the previous one closed (no artificial price gaps).
- ``feature_noise``: Gaussian noise of this standard deviation (features are
  z-scores) added to the observed features only; prices and costs are untouched.

Configured by ``env_config={"augment": {...}}`` (envs.registry); the seed makes it
reproducible, and EnvRunners can use different seeds for different views.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from envs.data import MarketArrays

PRICE_FIELDS = ("open", "high", "low", "close", "mark")


class AugmentConfig(BaseModel):
    """Which augmentations to apply (all off by default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    asset_permutation: bool = Field(False, description="Shuffle the assets' order.")
    price_scale: tuple[float, float] | None = Field(
        None, description="Per-asset price factor range, e.g. (0.5, 2.0)."
    )
    segment_shuffle: bool = Field(False, description="Reorder whole segments of bars.")
    segment_bars: int = Field(1440, ge=2, description="Bars per shuffled segment.")
    feature_noise: float = Field(0.0, ge=0, description="Std of noise on the features.")
    seed: int = Field(0, description="Seeds every random choice above.")


def augment_aligned(aligned: pd.DataFrame, config: AugmentConfig) -> pd.DataFrame:
    """The aligned frame (market.loader layout) with the frame-level augmentations."""
    rng = np.random.default_rng(config.seed)
    frame = aligned.copy()
    assets = list(frame.columns.get_level_values("asset").unique())
    if config.segment_shuffle:
        frame = _shuffle_segments(frame, assets, config.segment_bars, rng)
    if config.price_scale is not None:
        low, high = config.price_scale
        if not 0 < low <= high:
            raise ValueError("price_scale must satisfy 0 < low <= high")
        for asset in assets:
            factor = rng.uniform(low, high)
            for field in PRICE_FIELDS:
                frame[(asset, field)] = frame[(asset, field)] * factor
            frame[(asset, "volume")] = frame[(asset, "volume")] / factor
    if config.asset_permutation:
        order = [assets[i] for i in rng.permutation(len(assets))]
        frame = frame.reindex(columns=order, level="asset")
    return frame


def _shuffle_segments(
    frame: pd.DataFrame, assets: list[str], length: int, rng: np.random.Generator
) -> pd.DataFrame:
    n = len(frame)
    if n < 2 * length:
        raise ValueError(f"segment_shuffle needs at least 2 segments of {length} bars")
    starts = np.arange(0, n, length)
    order = rng.permutation(len(starts))
    values = frame.to_numpy(copy=True)
    out = np.empty_like(values)
    columns = {c: i for i, c in enumerate(frame.columns)}
    row = 0
    last_close = {a: None for a in assets}
    for k in order:
        block = values[starts[k] : min(starts[k] + length, n)].copy()
        for asset in assets:
            if last_close[asset] is not None:
                ratio = last_close[asset] / block[0, columns[(asset, "open")]]
                for field in PRICE_FIELDS:
                    block[:, columns[(asset, field)]] *= ratio
            last_close[asset] = block[-1, columns[(asset, "close")]]
        out[row : row + len(block)] = block
        row += len(block)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns).astype(frame.dtypes)


def add_feature_noise(data: MarketArrays, sigma: float, seed: int) -> MarketArrays:
    """A copy with Gaussian noise on the observed features (prices and costs untouched)."""
    if sigma <= 0:
        return data
    rng = np.random.default_rng(seed + 1)
    noise = rng.normal(0.0, sigma, data.feats.shape).astype(np.float32)
    return dataclasses.replace(data, feats=data.feats + noise)
