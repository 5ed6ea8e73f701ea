"""Arrays built from past bars only equal the same bars of arrays built from all bars."""

import numpy as np

from envs.data import MarketArrays
from live.feed import ReplayFeed, arrays_upto
from market.synthetic import SyntheticConfig, generate_market


def test_arrays_up_to_a_bar_equal_the_full_history_arrays_bit_for_bit():
    frame = generate_market(SyntheticConfig(days=2, seed=3)).aligned()
    full = MarketArrays.from_aligned(frame)
    for bar in (full.first_valid + 5, 2000, 2200, len(frame) - 2):
        part = arrays_upto(frame, bar)
        assert part.n_bars == bar + 1 and part.first_valid == full.first_valid
        np.testing.assert_array_equal(part.mkt, full.mkt[: bar + 1])
        np.testing.assert_array_equal(part.feats, full.feats[: bar + 1])


def test_the_next_funding_event_follows_the_schedule_past_the_data():
    frame = generate_market(SyntheticConfig(days=2, seed=3)).aligned()
    full = MarketArrays.from_aligned(frame)
    next_event = full.mkt[:, 0, 14]
    assert np.isfinite(next_event[full.first_valid:]).all()
    assert next_event.max() == 480  # 8 h of 1m bars


def test_a_replay_resumes_after_the_last_processed_bar():
    frame = generate_market(SyntheticConfig(days=2, seed=3)).aligned()
    feed = ReplayFeed(frame, 2000, 2010)
    assert feed.start().bar_time == frame.index.asi8[2000]
    times = [t.bar_time for t in feed.ticks(int(frame.index.asi8[2004]))]
    assert times == list(frame.index.asi8[2005:2011])
    assert [t.bar_time for t in feed.ticks(0)] == list(frame.index.asi8[2001:2011])
