"""Arrays built from past bars only equal the same bars of arrays built from all bars."""

import numpy as np
import pytest

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


def test_news_up_to_a_bar_equals_the_backtests_news_at_that_bar(tmp_path):
    """A replay aligns the run's headlines once and gives each bar the first rows; a live
    session reads the store at every bar: both equal the backtest's arrays bar for bar."""
    from datetime import timedelta

    from envs.core.layout import M_CLOSE
    from envs.news_features import with_news
    from live.feed import NewsInput
    from news.schema import NewsRecord
    from news.source import NewsConfig, aligned_news
    from news.store import NewsStore

    frame = generate_market(SyntheticConfig(days=2, seed=3)).aligned()
    plain = MarketArrays.from_aligned(frame)
    start = frame.index[0].to_pydatetime()
    NewsStore(tmp_path).append([
        NewsRecord.create(source="t", title=title, assets=(asset,), published=None,
                          first_seen=start + timedelta(minutes=m))
        for title, asset, m in (("Bitcoin rallies as buyers return", "BTC", 1990),
                                ("Ether plunges after exchange hack", "ETH", 2100.5))])
    for news in ({"text": True, "synthetic": {"move_quantile": 0.9, "min_gap_bars": 60}},
                 {"source": "store", "data_dir": str(tmp_path), "text": True}):
        full = with_news(plain, news)
        aligned = aligned_news(NewsConfig.model_validate(news), plain.timestamps,
                               plain.mkt[:, :, M_CLOSE], plain.assets)
        stored = news.get("source") == "store"
        sources = [NewsInput(news, aligned=aligned)] + ([NewsInput(news)] if stored else [])
        for source in sources:
            for bar in (2000, 2101, 2102, 2500):
                part = arrays_upto(frame, bar, source)
                np.testing.assert_array_equal(part.feats, full.feats[: bar + 1])
                np.testing.assert_array_equal(part.text.text_batch(np.arange(bar + 1)),
                                              full.text.text_batch(np.arange(bar + 1)))
    recency = full.text.embeddings.shape[1] + 1
    eth = recency + 1 + plain.assets.index("ETH")
    # the ETH story, first seen inside bar 2100, shows from that bar's close on
    assert full.text.text(2099)[0, eth] == 0.0
    assert full.text.text(2100)[0, eth] == 1.0 and full.text.text(2100)[0, recency] == 1.0
    with pytest.raises(ValueError, match="align it once"):
        NewsInput({"text": True})
