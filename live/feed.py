"""Feeds: the closed bars a session trades on, each with the market arrays up to it.

Every tick's arrays are built from bars up to and including that bar only (features,
costs and the funding schedule are all past-only, so they equal the same bars' values in
arrays built from a longer history: tests/unit/live/test_feed.py checks it bit for bit).

- :class:`ReplayFeed`: stored (or synthetic) bars of a span, delivered as if they
  arrived live: the parity check against ``quantum backtest``, and paper sessions on
  history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from envs.data import MarketArrays
from live.session import Tick


def arrays_upto(frame: pd.DataFrame, bar: int) -> MarketArrays:
    """Market arrays of the aligned frame's bars 0..bar (nothing after ``bar``)."""
    return MarketArrays.from_aligned(frame.iloc[: bar + 1])


@dataclass
class ReplayFeed:
    """Bars ``first``..``last`` of an aligned frame, one at a time."""

    frame: pd.DataFrame
    first: int
    last: int

    def start(self) -> Tick:
        """The session's first decision bar."""
        return Tick(int(self.frame.index.asi8[self.first]), arrays_upto(self.frame, self.first))

    def _tick(self, bar: int) -> Tick:
        received = time.perf_counter()
        return Tick(int(self.frame.index.asi8[bar]), arrays_upto(self.frame, bar),
                    received=received)

    def ticks(self, last_bar: int) -> Iterator[Tick]:
        """Every bar after ``last_bar`` (ns) up to the span's end."""
        stamps = self.frame.index.asi8
        b = int(np.searchsorted(stamps, last_bar, side="right"))
        for bar in range(max(b, self.first + 1), self.last + 1):
            yield self._tick(bar)
