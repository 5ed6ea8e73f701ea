"""Causal alignment (news/align.py): a headline is visible from the first bar closing
strictly after its first-seen time, never from an earlier claimed publication time, and
nothing at bar t changes when anything first seen after t's close changes."""

import numpy as np
import pandas as pd
import pytest

from news.align import EXTRA_COLUMNS, AlignConfig, align

BARS = pd.date_range("2024-01-01 00:01", periods=600, freq="1min", tz="UTC")  # close times
ASSETS = ("BTC", "ETH")


def frame(rows):
    """rows: (first_seen, assets[, published])."""
    return pd.DataFrame({
        "first_seen": pd.to_datetime([r[0] for r in rows], utc=True, format="ISO8601"),
        "published": pd.to_datetime([r[2] if len(r) > 2 else r[0] for r in rows], utc=True,
                                    format="ISO8601"),
        "assets": [list(r[1]) for r in rows]})


def test_visible_from_the_first_bar_closing_strictly_after_first_seen():
    news = frame([("2024-01-01 00:04:30", ["BTC"]),
                  ("2024-01-01 00:05:00", ["BTC"]),  # exactly at a close: not yet then
                  ("2024-01-01 00:07:00.001", ["ETH"], "2023-12-31 23:00:00.000")])  # back-dated

    out = align(news, np.eye(3, 4), np.array([0.5, -0.5, 0.2]), BARS, ASSETS)

    assert list(BARS[out.visible]) == [pd.Timestamp("2024-01-01 00:05", tz="UTC"),
                                       pd.Timestamp("2024-01-01 00:06", tz="UTC"),
                                       pd.Timestamp("2024-01-01 00:08", tz="UTC")]
    assert out.features[: out.visible[2], 1, :2].sum() == 0.0  # ETH: nothing before 00:08


def test_decayed_level_and_intensity_by_hand():
    news = frame([("2024-01-01 00:09:10", ["BTC"])])
    config = AlignConfig(half_life_bars=10)

    out = align(news, np.ones((1, 4)), np.array([0.6]), BARS, ASSETS, config)

    t = int(out.visible[0])
    btc = out.features[:, 0]
    assert t == 9 and btc[t - 1].tolist() == [0, 0, 0, 0]
    assert btc[t, 1] == pytest.approx(1.0) and btc[t + 10, 1] == pytest.approx(0.5)
    assert btc[t + 20, 1] == pytest.approx(0.25)
    assert btc[t:t + 50, 0] == pytest.approx(np.full(50, 0.6))  # level: mean sentiment
    assert out.features[:, 1, :2].sum() == 0.0  # ETH not mentioned
    assert out.features[t + 10, 1, 3] == pytest.approx(0.5)  # market-wide, every asset
    assert out.features[t + 10, 1, 2] == pytest.approx(0.6)


def test_slots_hold_the_newest_headlines_with_sentiment_and_recency_until_the_window():
    news = frame([("2024-01-01 00:00:30", []), ("2024-01-01 00:01:30", ["BTC"]),
                  ("2024-01-01 00:02:30", ["ETH"])])
    emb = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    config = AlignConfig(slots=2, window_bars=5, half_life_bars=2)

    out = align(news, emb, np.array([0.1, 0.2, 0.3]), BARS, ASSETS, config)

    assert out.slots[2].tolist() == [2, 1] and out.slots[0].tolist() == [0, -1]
    text = out.text(4)
    assert text.shape == (2, 4 + EXTRA_COLUMNS + len(ASSETS))
    assert text[0, :4].tolist() == emb[2].tolist() and text[0, 4] == pytest.approx(0.3)
    assert text[0, 5] == pytest.approx(2 ** (-2 / 2)) and text[1, 5] == pytest.approx(0.5 ** 1.5)
    assert text[0, 6:].tolist() == [0.0, 1.0] and text[1, 6:].tolist() == [1.0, 0.0]  # ETH, BTC
    np.testing.assert_array_equal(out.text_batch(np.array([4, 7, 2])),
                                  np.stack([out.text(4), out.text(7), out.text(2)]))
    assert out.slots[7].tolist() == [-1, -1]  # all older than 5 bars
    assert not out.text(7).any()  # empty slots are zero rows (the encoder skips them)


def test_nothing_first_seen_after_a_bar_closes_changes_that_bar():
    rng = np.random.default_rng(3)
    n = 400
    seen = BARS[0] - pd.Timedelta("5min") + pd.to_timedelta(rng.uniform(0, 600 * 60, n), "s")
    assets = [list(rng.choice(ASSETS, rng.integers(0, 3), replace=False)) for _ in range(n)]
    news = pd.DataFrame({"first_seen": seen, "assets": assets})
    emb, score = rng.normal(size=(n, 8)), rng.uniform(-1, 1, n)
    base = align(news, emb, score, BARS, ASSETS)
    for cut in rng.integers(10, 590, 8):
        later = (news["first_seen"] >= BARS[cut]).to_numpy()
        changed = news.copy()
        changed.loc[later, "assets"] = pd.Series([["BTC", "ETH"]] * int(later.sum()),
                                                 index=changed.index[later])
        emb2, score2 = emb.copy(), score.copy()
        emb2[later], score2[later] = rng.normal(size=(int(later.sum()), 8)), 1.0
        extra = pd.DataFrame({"first_seen": [BARS[cut] + pd.Timedelta("1ms")],
                              "assets": [["ETH"]]})
        perturbed = align(pd.concat([changed, extra], ignore_index=True),
                          np.vstack([emb2, np.ones((1, 8))]), np.append(score2, -1.0),
                          BARS, ASSETS)
        t = int(cut)
        np.testing.assert_array_equal(perturbed.features[: t + 1], base.features[: t + 1])
        for k in range(t + 1):
            np.testing.assert_array_equal(perturbed.text(k), base.text(k))
        assert not np.array_equal(perturbed.features[t + 1:], base.features[t + 1:])


def test_mismatched_inputs_and_unordered_bars_are_clear_errors():
    news = frame([("2024-01-01 00:00:30", [])])
    with pytest.raises(ValueError, match="1 headlines but 2 embeddings"):
        align(news, np.ones((2, 4)), np.ones(1), BARS, ASSETS)
    with pytest.raises(ValueError, match="must increase"):
        align(news, np.ones((1, 4)), np.ones(1), BARS[::-1], ASSETS)
    empty = align(frame([]).astype({"assets": object}), np.zeros((0, 4)), np.zeros(0), BARS,
                  ASSETS)
    assert (empty.slots == -1).all() and not empty.features.any()
