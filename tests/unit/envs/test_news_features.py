"""News as plain features (envs/news_features.py) through the env registry: the
``news`` key appends the aligned sentiment and intensity per asset and market-wide, from
the synthetic stream by default or from a collected store, without look-ahead."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from envs.core.layout import M_CLOSE
from envs.registry import make_env, market_for
from news.align import FEATURES, align
from news.encode import headline_text
from news.sentiment import SentimentScorer
from news.synthetic import SyntheticNewsConfig, synthetic_news

BASE = {"synthetic_days": 4, "synthetic_seed": 5}


def test_the_news_key_appends_the_aligned_features_of_the_synthetic_stream():
    plain = market_for(BASE)
    news = market_for({**BASE, "news": {"synthetic": {"seed": 2}}})

    assert news.features == (*plain.features, *("news_" + f for f in FEATURES))
    np.testing.assert_array_equal(news.feats[:, :, : len(plain.features)], plain.feats)
    index = pd.to_datetime(plain.timestamps, utc=True)
    close = pd.DataFrame(plain.mkt[:, :, M_CLOSE], index=index, columns=list(plain.assets))
    headlines, _ = synthetic_news(close, SyntheticNewsConfig(seed=2))
    score = SentimentScorer().score([headline_text(t, s) for t, s in
                                     zip(headlines["title"], headlines["summary"], strict=True)])
    want = align(headlines, np.zeros((len(headlines), 0)), score,
                 pd.DatetimeIndex(index) + pd.Timedelta("1min"), plain.assets).features
    np.testing.assert_allclose(news.feats[:, :, len(plain.features):], want)
    assert news.feats[:, :, -1].max() > 0  # market-wide intensity: there is news


def test_an_env_with_news_observes_the_extra_features():
    env = make_env({**BASE, "news": {}, "num_envs": 2})
    obs, _ = env.reset(seed=0)

    assert obs["market"].shape[-1] == len(market_for({**BASE, "news": {}}).features)
    assert np.isfinite(obs["market"]).all()


def test_news_from_a_collected_store_is_read_up_to_the_last_bar(tmp_path):
    from news.schema import NewsRecord
    from news.store import NewsStore

    plain = market_for(BASE)
    start = pd.Timestamp(plain.timestamps[0], tz="UTC").to_pydatetime()
    store = NewsStore(tmp_path)
    store.append([NewsRecord.create(source="test", title=title, assets=(asset,),
                                    published=None, first_seen=start + timedelta(minutes=m))
                  for title, asset, m in (("Bitcoin rallies as buyers return", "BTC", 90),
                                          ("Ether plunges after exchange hack", "ETH", 200))])
    data = market_for({**BASE, "news": {"source": "store", "data_dir": str(tmp_path)}})

    btc, eth = plain.assets.index("BTC"), plain.assets.index("ETH")
    level = data.feats[:, :, len(plain.features)]
    assert level[:90, btc].tolist() == [0.0] * 90 and level[90, btc] > 0.3
    assert level[200, eth] < -0.3 and level[199, eth] == 0.0


def test_a_store_source_without_a_folder_and_unknown_keys_are_clear_errors():
    with pytest.raises(ValueError, match=r"needs news\.data_dir"):
        market_for({**BASE, "news": {"source": "store"}})
    with pytest.raises(ValueError, match="extra"):
        market_for({**BASE, "news": {"half_life": 3}})
