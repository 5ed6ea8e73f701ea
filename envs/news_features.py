"""News as plain observed features: each asset's decayed sentiment level and news
intensity, and the market-wide pair (news.align.FEATURES), appended to the market
features, so every model (the MLP baseline and the hierarchical module's market
transformer) can read them. Built from ``env_config["news"]`` (news.source.NewsConfig)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.core.layout import M_CLOSE
from envs.data import MarketArrays

PREFIX = "news_"


def with_news(data: MarketArrays, news: Mapping[str, Any],
              market_dir: str | None = None) -> MarketArrays:
    """A copy of ``data`` with the news features appended (names ``news_<feature>``)."""
    from news.align import FEATURES
    from news.source import NewsConfig, aligned_news

    config = NewsConfig.model_validate(dict(news))
    aligned = aligned_news(config, data.timestamps, data.mkt[:, :, M_CLOSE], data.assets,
                           market_dir)
    feats = np.concatenate([data.feats, aligned.features.astype(np.float32)], axis=-1)
    names = tuple(PREFIX + f for f in FEATURES)
    return dataclasses.replace(data, features=(*data.features, *names), feats=feats)
