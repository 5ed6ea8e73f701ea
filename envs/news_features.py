"""News in the observation, built from ``env_config["news"]`` (news.source.NewsConfig):

- plain features (``features``, on by default): each asset's decayed sentiment level and
  news intensity, and the market-wide pair (news.align.FEATURES), appended to the market
  features, so every model (the MLP baseline and the hierarchical module's market
  transformer) can read them;
- market-wide feature sources (``sources``: the fear & greed index, an on-chain count;
  news.sources), the same columns for every asset;
- the `text` observation (``text``): the newest visible headlines' embeddings with their
  sentiment and recency, carried by ``MarketArrays.text`` and read by the model's
  TextEncoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.core.layout import M_CLOSE
from envs.data import MarketArrays

if TYPE_CHECKING:
    from news.align import AlignedNews

PREFIX = "news_"


def with_news(data: MarketArrays, news: Mapping[str, Any], market_dir: str | None = None,
              aligned: AlignedNews | None = None) -> MarketArrays:
    """A copy of ``data`` with the news channels ``news`` asks for (feature names
    ``news_<feature>``; the text channel as ``text``), from ``aligned`` when the caller
    aligned its headlines already (to these bars or more: a replay aligns once)."""
    from news.align import FEATURES
    from news.source import NewsConfig, aligned_news

    config = NewsConfig.model_validate(dict(news))
    if not (config.features or config.text or config.sources):
        raise ValueError("news: turn on features, text, sources or a mix")
    changes: dict[str, Any] = {}
    if config.features or config.text:
        if aligned is None:
            aligned = aligned_news(config, data.timestamps, data.mkt[:, :, M_CLOSE],
                                   data.assets, market_dir)
        else:
            aligned = aligned.upto(data.n_bars)
    if config.text:
        changes["text"] = aligned
    if config.features:
        changes["feats"] = np.concatenate([data.feats, aligned.features.astype(np.float32)],
                                          axis=-1)
        changes["features"] = (*data.features, *(PREFIX + f for f in FEATURES))
    if config.sources:
        changes.update(_with_sources(data, changes, config, market_dir))
    return dataclasses.replace(data, **changes)


def _with_sources(data: MarketArrays, changes: dict[str, Any], config,
                  market_dir: str | None) -> dict[str, Any]:
    """The market-wide source features (news.sources), the same for every asset."""
    import pandas as pd

    from news.sources import source_features

    root = config.data_dir or market_dir
    if root is None:
        raise ValueError("news.sources are read from a store: set news.data_dir (or train on "
                         "a stored market)")
    opens = pd.DatetimeIndex(pd.to_datetime(data.timestamps, utc=True))
    step = opens[1] - opens[0] if len(opens) > 1 else pd.Timedelta("1min")
    names, values = source_features(config.sources, root, opens + step)
    feats = changes.get("feats", data.feats)
    block = np.broadcast_to(values[:, None, :], (data.n_bars, data.n_assets, len(names)))
    return {"feats": np.concatenate([feats, block.astype(np.float32)], axis=-1),
            "features": (*changes.get("features", data.features), *names)}
