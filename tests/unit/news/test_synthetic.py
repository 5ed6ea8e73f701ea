"""The synthetic news stream (news/synthetic.py): event headlines lead the asset's large
moves by the configured lead, with the move's tone at the configured accuracy; the decoy
has the same timing and no information; the templates' sentiment has the planted sign;
alignment makes each event visible before its move starts."""

import numpy as np
import pandas as pd
import pytest

from market.synthetic import SyntheticConfig, generate_market
from news.align import align
from news.sentiment import SentimentScorer
from news.synthetic import NEGATIVE, NEUTRAL, POSITIVE, SyntheticNewsConfig, synthetic_news


@pytest.fixture(scope="module")
def close():
    frame = generate_market(SyntheticConfig(days=20, seed=11)).aligned()
    return frame.xs("close", axis=1, level="field")


def test_event_headlines_lead_large_moves_with_the_planted_accuracy(close):
    config = SyntheticNewsConfig(seed=1, accuracy=0.8)

    headlines, events = synthetic_news(close, config)

    assert len(events) > 60 and set(events["asset"]) == set(close.columns)
    hit = (np.sign(events["move"]) == events["tone"]).mean()
    assert 0.7 < hit < 0.9
    lead = events["bar"] - events["visible_bar"]
    assert lead.between(config.lead_bars, config.lead_bars + config.lead_jitter_bars).all()
    days = (close.index[-1] - close.index[0]) / pd.Timedelta("1D")
    noise = len(headlines) - len(events)
    assert abs(noise - config.noise_per_day * days) < 4 * np.sqrt(config.noise_per_day * days)
    assert headlines["hash"].is_unique and headlines["first_seen"].is_monotonic_increasing


def test_aligned_events_are_visible_before_the_move_they_announce(close):
    headlines, events = synthetic_news(close, SyntheticNewsConfig(seed=2))
    bar_close = pd.DatetimeIndex(close.index) + (close.index[1] - close.index[0])
    n = len(headlines)

    out = align(headlines, np.zeros((n, 4)), np.zeros(n), bar_close, tuple(close.columns))

    event_rows = headlines.index[headlines["title"].str.contains(
        "|".join(t.split(" ")[1] for t in POSITIVE + NEGATIVE))]
    visible = set(out.visible[event_rows].tolist())
    assert set(events["visible_bar"]) <= visible
    assert (events["visible_bar"] < events["bar"]).all()


def test_the_decoy_keeps_the_timing_and_loses_the_information(close):
    real, events = synthetic_news(close, SyntheticNewsConfig(seed=3))
    decoy, decoy_events = synthetic_news(close, SyntheticNewsConfig(seed=3, informative=False))

    assert decoy_events["bar"].tolist() == events["bar"].tolist()
    hit = (np.sign(decoy_events["move"]) == decoy_events["tone"]).mean()
    assert abs(hit - 0.5) < 0.15
    assert len(decoy) == pytest.approx(len(real), rel=0.2)


def test_template_sentiment_has_the_planted_sign():
    scorer = SentimentScorer()
    fill = [t.format(name="Bitcoin") for t in POSITIVE + NEGATIVE + NEUTRAL]

    score = scorer.score(fill)

    k = len(POSITIVE)
    assert (score[:k] > 0.2).all() and (score[k:2 * k] < -0.2).all()
    assert (np.abs(score[2 * k:]) < 0.3).all()
