"""The news an env, a backtest or a run reads, from one config: the synthetic stream
(the embedded default, generated from the market's own prices) or a collected store,
scored for sentiment and aligned to the market's bars (news.align)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from news.align import AlignConfig, AlignedNews, align
from news.synthetic import SyntheticNewsConfig, synthetic_news


class NewsConfig(BaseModel):
    """``env_config["news"]``: where headlines come from and how they are aligned."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: Literal["synthetic", "store"] = "synthetic"
    """synthetic: generated from the market (news.synthetic); store: `quantum news
    collect`'s parquet dataset under ``data_dir`` (the market's store by default)."""
    data_dir: str | None = None
    synthetic: SyntheticNewsConfig = Field(default_factory=SyntheticNewsConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)


def headlines_for(config: NewsConfig, timestamps_ns: np.ndarray, close: np.ndarray,
                  assets: tuple[str, ...], market_dir: str | None = None) -> pd.DataFrame:
    """The headlines of the bars opening at ``timestamps_ns`` (with ``close`` prices,
    bars x assets): generated, or read from the store up to the last bar's close."""
    index = pd.DatetimeIndex(pd.to_datetime(timestamps_ns, utc=True))
    if config.source == "synthetic":
        frame = pd.DataFrame(close, index=index, columns=list(assets))
        return synthetic_news(frame, config.synthetic)[0]
    from news.store import NewsStore

    root = config.data_dir or market_dir
    if root is None:
        raise ValueError("news.source 'store' needs news.data_dir (or a stored market's "
                         "data_dir)")
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta("1min")
    return NewsStore(root).read(end=index[-1] + step)


def aligned_news(config: NewsConfig, timestamps_ns: np.ndarray, close: np.ndarray,
                 assets: tuple[str, ...], market_dir: str | None = None) -> AlignedNews:
    """Headlines scored (VADER with the crypto lexicon) and aligned to the bars; no
    embeddings (the plain features need none)."""
    from news.encode import headline_text
    from news.sentiment import SentimentScorer

    headlines = headlines_for(config, timestamps_ns, close, assets, market_dir)
    texts = [headline_text(t, s) for t, s in zip(headlines["title"], headlines["summary"],
                                                  strict=True)]
    sentiment = SentimentScorer().score(texts) if texts else np.zeros(0, np.float32)
    index = pd.DatetimeIndex(pd.to_datetime(timestamps_ns, utc=True))
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta("1min")
    return align(headlines, np.zeros((len(headlines), 0), np.float32), sentiment,
                 index + step, assets, config.align)
