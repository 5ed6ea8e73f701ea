"""News facts: what the headlines say about each asset, and which headlines say it.

A sentiment figure the chatbot states must be traceable to the stories behind it, so
every ``news.ASSET.sentiment`` comes with the headlines that weigh most in it
(``news.ASSET.headline_1`` ...), each quoted with its source and first-seen time. The
figures follow the policy's rule: a headline counts from its first-seen time (never an
earlier claimed publication time), scored by VADER with the crypto lexicon
(news.sentiment), weighted by ``2 ** (-age / half_life)`` over a trailing window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from llm.facts import Fact, Facts, to_utc

NEUTRAL_BAND = 0.05
"""|sentiment| below this reads as neutral (VADER's own cut-off for its compound score)."""


class NewsFactsConfig(BaseModel):
    """The window and decay of the news facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_hours: float = Field(24.0, gt=0, description="Headlines older than this are out.")
    half_life_hours: float = Field(6.0, gt=0, description="Weight halves over this age.")
    cited: int = Field(3, ge=1, le=10, description="Headlines quoted per asset.")


def tone(sentiment: float) -> str:
    """The word for a sentiment level (bullish/bearish carry a direction for grounding)."""
    if sentiment > NEUTRAL_BAND:
        return "bullish"
    return "bearish" if sentiment < -NEUTRAL_BAND else "neutral"


def cite(row: Any) -> str:
    """A headline as quoted: title, source and first-seen time."""
    source = f"{row.source}, " if getattr(row, "source", "") else ""
    return f'"{row.title}" ({source}{pd.Timestamp(row.first_seen):%Y-%m-%d %H:%M} UTC)'


def scored(headlines: pd.DataFrame) -> pd.DataFrame:
    """The headlines with a ``sentiment`` column (VADER with the crypto lexicon on title and
    summary, as the policy's features score them), computed once for many moments."""
    from news.encode import headline_text
    from news.sentiment import SentimentScorer

    if "sentiment" in headlines:
        return headlines
    summaries = (headlines["summary"].fillna("") if "summary" in headlines
                 else [""] * len(headlines))
    texts = [headline_text(t, s) for t, s in zip(headlines["title"], summaries, strict=True)]
    score = SentimentScorer().score(texts) if texts else np.zeros(0, np.float32)
    return headlines.assign(sentiment=score)


def news_facts(headlines: pd.DataFrame, assets: Sequence[str], now: Any,
               config: NewsFactsConfig | None = None) -> Facts:
    """Facts of the headlines first seen at or before ``now`` within the window, per asset
    mentioned: sentiment (decayed mean score), tone, count and the cited headlines (those
    with the largest weighted score, the ones that move the figure most). Headlines
    without a ``sentiment`` column are scored here (:func:`scored` does it once)."""
    cfg = config or NewsFactsConfig()
    stamp = to_utc(now)
    seen = pd.to_datetime(headlines["first_seen"], utc=True)
    age_h = (stamp - seen).dt.total_seconds().to_numpy() / 3600.0
    inside = (age_h >= 0) & (age_h <= cfg.window_hours)
    frame = headlines.loc[inside].assign(_age=age_h[inside])
    if frame.empty:
        return Facts()
    frame = scored(frame)
    frame = frame.assign(_score=frame["sentiment"].to_numpy(np.float64),
                         _weight=np.exp2(-frame["_age"].to_numpy() / cfg.half_life_hours))
    out: list[Fact] = []
    for asset in assets:
        mine = frame[[asset in set(a if a is not None else ()) for a in frame["assets"]]]
        if mine.empty:
            continue
        level = float((mine["_weight"] * mine["_score"]).sum() / mine["_weight"].sum())
        key = f"news.{asset}"
        out += [Fact(f"{key}.sentiment", round(level, 3), "number", stamp, "news"),
                Fact(f"{key}.tone", tone(level), "text", stamp, "news"),
                Fact(f"{key}.count", float(len(mine)), "count", stamp, "news")]
        moving = (mine["_weight"] * mine["_score"]).abs().sort_values(ascending=False,
                                                                       kind="stable")
        for k, row in enumerate(mine.loc[moving.index[: cfg.cited]].itertuples(), start=1):
            out.append(Fact(f"{key}.headline_{k}", cite(row), "text",
                            pd.Timestamp(row.first_seen), "news"))
    return Facts(tuple(out))
