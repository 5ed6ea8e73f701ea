"""Headlines onto market bars without look-ahead: the `text` observation and the plain
news features.

A headline is visible from the first bar that closes strictly after its ``first_seen``
time (our collector's clock), never from its claimed ``published`` time when that is
earlier: the agent decides at a bar's close, and a story first seen at that very instant
may not have been readable then. Visibility is computed once per headline
(``searchsorted`` over bar close times), so every feature below is a function of the
headlines visible at t and nothing later.

Two outputs per bar t:
- ``slots[t]``: the newest ``slots`` visible headlines within ``window_bars`` (most recent
  first, -1 when fewer): the `text` observation is their embeddings, then sentiment,
  recency weight ``2 ** (-age / half_life)`` and one 0/1 column per asset the headline
  mentions; empty slots are zero rows, which the model's TextEncoder ignores.
- ``features[t]`` (assets x 4): exponentially decayed sentiment level and news intensity
  of the headlines mentioning each asset, and of all headlines (market-wide), for the MLP
  baseline or any model as plain inputs. Intensity is the decayed count; the level is the
  decayed sentiment sum over the decayed count (0 with no news).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import lfilter

FEATURES = ("asset_sentiment", "asset_intensity", "market_sentiment", "market_intensity")
EXTRA_COLUMNS = 2
"""Columns after the embedding in each text slot: sentiment, recency weight (then one
mention flag per asset)."""


class AlignConfig(BaseModel):
    """How headlines are turned into per-bar inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    slots: int = Field(8, ge=1)
    """Headlines in the `text` observation (the newest visible ones)."""
    window_bars: int = Field(240, ge=1)
    """A headline older than this (in bars since it became visible) leaves the slots."""
    half_life_bars: float = Field(60.0, gt=0)
    """Half-life of a headline's weight in the decayed features and its slot weight."""


@dataclass(frozen=True)
class AlignedNews:
    """Headlines aligned to one bar index (``bar_close_ns``: each bar's close time)."""

    visible: np.ndarray
    """(H,) the first bar index at which each headline is visible (T when never)."""
    slots: np.ndarray
    """(T, slots) int32 headline indices, newest first, -1 for empty."""
    features: np.ndarray
    """(T, A, 4) float32, see FEATURES."""
    embeddings: np.ndarray
    """(H, E) float32 headline embeddings (row order of the headlines given)."""
    sentiment: np.ndarray
    """(H,) float32."""
    mentions: np.ndarray
    """(H, A) bool: which of the bars' assets each headline mentions."""
    config: AlignConfig

    def upto(self, n_bars: int) -> AlignedNews:
        """The alignment of the first ``n_bars`` bars: alignment is causal, so these rows
        equal aligning the same headlines to those bars alone (a replay aligns once)."""
        if n_bars > len(self.slots):
            raise ValueError(f"aligned to {len(self.slots)} bars, asked for {n_bars}")
        return dataclasses.replace(self, slots=self.slots[:n_bars],
                                   features=self.features[:n_bars])

    @property
    def width(self) -> int:
        """Columns of a text slot: the embedding, sentiment, recency weight, one flag per
        asset."""
        return self.embeddings.shape[1] + EXTRA_COLUMNS + self.mentions.shape[1]

    def text(self, t: int) -> np.ndarray:
        """The `text` observation at bar t: (slots, width) float32."""
        return self.text_batch(np.array([t]))[0]

    def text_batch(self, t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The `text` observations at bars ``t`` (N,): (N, slots, width) float32, written
        into ``out`` when given (empty slots are zero rows)."""
        index = self.slots[np.asarray(t, np.int64)]
        if out is None:
            out = np.empty((*index.shape, self.width), np.float32)
        out[:] = 0.0
        present = index >= 0
        rows = index[present]
        age = np.broadcast_to(np.asarray(t)[:, None], index.shape)[present] - self.visible[rows]
        e = self.embeddings.shape[1]
        out[present, :e] = self.embeddings[rows]
        out[present, e] = self.sentiment[rows]
        out[present, e + 1] = np.exp2(-age / self.config.half_life_bars)
        out[present, e + EXTRA_COLUMNS:] = self.mentions[rows]
        return out


def visible_bars(first_seen_ns: np.ndarray, bar_close_ns: np.ndarray) -> np.ndarray:
    """Index of the first bar closing strictly after each first-seen time (T: never)."""
    return np.searchsorted(bar_close_ns, first_seen_ns, side="right").astype(np.int64)


def _decayed(visible: np.ndarray, values: np.ndarray, n_bars: int, decay: float) -> np.ndarray:
    """y[t] = sum over headlines with visible <= t of value * decay**(t - visible)."""
    impulses = np.zeros(n_bars)
    inside = visible < n_bars
    np.add.at(impulses, visible[inside], values[inside])
    return lfilter([1.0], [1.0, -decay], impulses)


def align(headlines: pd.DataFrame, embeddings: np.ndarray, sentiment: np.ndarray,
          bar_close: pd.DatetimeIndex, assets: tuple[str, ...],
          config: AlignConfig | None = None) -> AlignedNews:
    """Align ``headlines`` (columns first_seen (UTC), assets (list of codes); row i has
    ``embeddings[i]`` and ``sentiment[i]``) to bars closing at ``bar_close``."""
    config = config or AlignConfig()
    if len(headlines) != len(embeddings) or len(headlines) != len(sentiment):
        raise ValueError(f"{len(headlines)} headlines but {len(embeddings)} embeddings and "
                         f"{len(sentiment)} sentiment scores")
    closes = (bar_close if bar_close.tz is not None else bar_close.tz_localize("UTC")
              ).as_unit("ns").asi8  # one unit for both sides (pandas keeps us or ns)
    if np.any(np.diff(closes) <= 0):
        raise ValueError("bar close times must increase")
    seen = pd.DatetimeIndex(pd.to_datetime(headlines["first_seen"], utc=True))
    visible = visible_bars(seen.as_unit("ns").asi8, closes)
    n_bars = len(closes)
    decay = float(np.exp2(-1.0 / config.half_life_bars))
    score = np.asarray(sentiment, np.float64)
    features = np.zeros((n_bars, len(assets), len(FEATURES)), np.float32)
    market_n = _decayed(visible, np.ones(len(visible)), n_bars, decay)
    market_s = _decayed(visible, score, n_bars, decay)
    named = [set(a if a is not None else ()) for a in headlines["assets"]]
    mentions = np.array([[asset in m for asset in assets] for m in named], bool).reshape(
        len(named), len(assets))
    for k in range(len(assets)):
        mine = mentions[:, k]
        count = _decayed(visible[mine], np.ones(int(mine.sum())), n_bars, decay)
        total = _decayed(visible[mine], score[mine], n_bars, decay)
        features[:, k, 0] = np.divide(total, count, out=np.zeros(n_bars), where=count > 1e-12)
        features[:, k, 1] = count
    features[:, :, 2] = np.divide(market_s, market_n, out=np.zeros(n_bars),
                                  where=market_n > 1e-12)[:, None]
    features[:, :, 3] = market_n[:, None]
    return AlignedNews(visible, _slots(visible, n_bars, config), features,
                       np.asarray(embeddings, np.float32), score.astype(np.float32), mentions,
                       config)


def _slots(visible: np.ndarray, n_bars: int, config: AlignConfig) -> np.ndarray:
    """The newest ``config.slots`` headlines visible at each bar and not older than the
    window (ties in visibility: later rows first)."""
    out = np.full((n_bars, config.slots), -1, np.int32)
    if len(visible) == 0:
        return out
    order = np.argsort(visible, kind="stable")
    when = visible[order]
    bars = np.arange(n_bars)
    count = np.searchsorted(when, bars, side="right")  # headlines visible at each bar
    for j in range(config.slots):
        k = count - 1 - j
        ok = k >= 0
        idx = np.where(ok, order[np.clip(k, 0, None)], -1)
        fresh = ok & (bars - when[np.clip(k, 0, None)] < config.window_bars)
        out[:, j] = np.where(fresh, idx, -1)
    return out
