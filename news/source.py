"""The news an env, a backtest or a run reads, from one config: the synthetic stream
(the embedded default, generated from the market's own prices) or a collected store,
scored for sentiment, encoded when the policy reads the `text` observation, and aligned
to the market's bars (news.align)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from news.align import AlignConfig, AlignedNews, align
from news.synthetic import SyntheticNewsConfig, synthetic_news


class NewsConfig(BaseModel):
    """``env_config["news"]``: where headlines come from, how they are aligned, and which
    of the two channels the policy reads."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: Literal["synthetic", "store"] = "synthetic"
    """synthetic: generated from the market (news.synthetic); store: `quantum news
    collect`'s parquet dataset under ``data_dir`` (the market's store by default)."""
    data_dir: str | None = None
    synthetic: SyntheticNewsConfig = Field(default_factory=SyntheticNewsConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    features: bool = True
    """Append the decayed sentiment and intensity per asset and market-wide to the market
    features (envs.news_features)."""
    text: bool = False
    """Give the policy the `text` observation: the newest visible headlines' sentence
    embeddings with their sentiment, recency and the assets they mention (read by the
    model's TextEncoder, which is on whenever the observation has this part)."""
    sources: tuple[str, ...] = ()
    """Market-wide feature sources (news.sources: fear_greed, btc_transactions) read from
    the store under ``data_dir`` (`quantum news sources fetch|import` fills it), appended
    to every asset's features as ``src_<name>``; independent of ``source``."""
    encoder_path: str | None = None
    """A local Hugging Face encoder directory for the `text` observation; None: the
    packaged all-MiniLM-L6-v2."""


def headlines_for(config: NewsConfig, timestamps_ns: np.ndarray, close: np.ndarray,
                  assets: tuple[str, ...], market_dir: str | None = None) -> pd.DataFrame:
    """The headlines of the bars opening at ``timestamps_ns`` (with ``close`` prices,
    bars x assets): generated, or read from the store up to the last bar's close."""
    index = pd.DatetimeIndex(pd.to_datetime(timestamps_ns, utc=True))
    if config.source == "synthetic":
        frame = pd.DataFrame(close, index=index, columns=list(assets))
        return synthetic_news(frame, config.synthetic)[0]
    from news.store import NewsStore

    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta("1min")
    return NewsStore(_root(config, market_dir)).read(end=index[-1] + step)


def _root(config: NewsConfig, market_dir: str | None) -> str:
    root = config.data_dir or market_dir
    if root is None:
        raise ValueError("news.source 'store' needs news.data_dir (or a stored market's "
                         "data_dir)")
    return root


@functools.lru_cache(maxsize=2)
def _encoder(path: str | None, summary_chars: int):
    from news.encode import Encoder, EncoderConfig

    settings = {"summary_chars": summary_chars}
    return Encoder(EncoderConfig(**settings, **({"model_path": Path(path)} if path else {})))


def _summary_chars(config: NewsConfig) -> int:
    """How much summary is encoded: none for the synthetic stream (its summary holds only
    the report time), the encoder's default for collected news."""
    return 0 if config.source == "synthetic" else 300


def _embeddings(config: NewsConfig, headlines: pd.DataFrame,
                cache_root: str | None) -> np.ndarray:
    """Each headline's embedding: through the store's embedding cache under ``cache_root``
    (each collected headline encoded once, ever), else in memory, each distinct text once
    (the synthetic stream's few templates; a request's headlines)."""
    from news.encode import headline_text

    chars = _summary_chars(config)
    encoder = _encoder(config.encoder_path, chars)
    if cache_root is not None:
        from news.cache import EmbeddingCache

        return EmbeddingCache(cache_root, encoder).encode_frame(headlines)[0]
    texts = [headline_text(t, s, chars) for t, s in
             zip(headlines["title"], headlines["summary"].fillna(""), strict=True)]
    unique, inverse = np.unique(np.asarray(texts, dtype=object).astype(str),
                                return_inverse=True)
    if len(unique) == 0:
        return np.zeros((0, encoder.dim), np.float32)
    return encoder.encode([str(t) for t in unique])[inverse.ravel()]


def align_headlines(config: NewsConfig, headlines: pd.DataFrame, timestamps_ns: np.ndarray,
                    assets: tuple[str, ...], cache_root: str | None = None) -> AlignedNews:
    """Headlines (the store's columns) scored (VADER with the crypto lexicon), encoded when
    ``config.text`` asks for the `text` observation (else no embedding columns), and
    aligned to the bars opening at ``timestamps_ns``."""
    from news.encode import headline_text
    from news.sentiment import SentimentScorer

    texts = [headline_text(t, s) for t, s in zip(headlines["title"],
                                                  headlines["summary"].fillna(""), strict=True)]
    sentiment = SentimentScorer().score(texts) if texts else np.zeros(0, np.float32)
    embeddings = (_embeddings(config, headlines, cache_root) if config.text
                  else np.zeros((len(headlines), 0), np.float32))
    index = pd.DatetimeIndex(pd.to_datetime(timestamps_ns, utc=True))
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta("1min")
    return align(headlines, embeddings, sentiment, index + step, assets, config.align)


def aligned_news(config: NewsConfig, timestamps_ns: np.ndarray, close: np.ndarray,
                 assets: tuple[str, ...], market_dir: str | None = None) -> AlignedNews:
    """The configured headlines (generated or stored) aligned to the bars."""
    headlines = headlines_for(config, timestamps_ns, close, assets, market_dir)
    cache_root = _root(config, market_dir) if config.source == "store" else None
    return align_headlines(config, headlines, timestamps_ns, assets, cache_root)
