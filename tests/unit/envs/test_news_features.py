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


TEXT = {"text": True, "synthetic": {"seed": 2, "move_quantile": 0.9, "min_gap_bars": 60}}


def test_the_text_observation_is_the_aligned_slots_at_each_envs_bar():
    env = make_env({**BASE, "news": TEXT, "num_envs": 3})
    data = env.data
    obs, _ = env.reset(seed=0, options={"start": [1600, 3000, 5000]})
    for _ in range(3):
        bars = env._state["t"]
        for i, t in enumerate(bars):
            np.testing.assert_array_equal(obs["text"][i], data.text.text(int(t)))
        assert env.single_observation_space.contains({k: v[0] for k, v in obs.items()})
        obs, *_ = env.step(env.action_space.sample())

    width = data.text.width
    assert obs["text"].shape == (3, 8, width) and width == 384 + 2 + len(data.assets)
    present = obs["text"][:, :, 385] > 0
    assert present.any()  # news within the window
    norms = np.linalg.norm(obs["text"][:, :, :384][present], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)  # unit-norm sentence embeddings
    assert data.features == market_for(BASE).features + tuple(
        "news_" + f for f in FEATURES)  # the plain features stay on by default


def test_text_alone_leaves_the_market_features_and_neither_is_an_error():
    data = market_for({**BASE, "news": {**TEXT, "features": False}})
    assert data.features == market_for(BASE).features and data.text is not None
    with pytest.raises(ValueError, match="features, text, sources or a mix"):
        market_for({**BASE, "news": {"features": False}})


def test_an_account_observes_the_text_part_as_the_env_does():
    from envs.account import Account

    env = make_env({**BASE, "news": TEXT, "num_envs": 1})
    obs, _ = env.reset(seed=0, options={"start": 3000})
    bar = int(env._state["t"][0])
    account = Account.fresh(env.data, env.config.initial_balance, env.config.risk_window, bar)

    seen = account.observe(env.data, env.config)
    assert seen.keys() == obs.keys()
    np.testing.assert_array_equal(seen["text"], obs["text"])


def test_the_policy_reads_the_text_part_with_each_assets_own_news():
    """The module's text encoder is on when the observation has a text part; each asset's
    heads read the slots that mention it, so news about one asset moves its own inputs."""
    import torch
    from ray.rllib.core.columns import Columns

    from rl.algo import module_spec
    from rl.config import TrainConfig

    env = make_env({**BASE, "news": TEXT, "num_envs": 1})
    spec = module_spec(TrainConfig())
    spec.observation_space, spec.action_space = (env.single_observation_space,
                                                 env.single_action_space)
    module = spec.build()
    assert module.text is not None and module.text_width == env.data.text.width

    obs, _ = env.reset(seed=0, options={"start": 3000})
    text = obs["text"].copy()
    text[0, 1:] = 0.0  # one headline, about BTC only
    e = env.data.text.embeddings.shape[1]
    text[0, 0, e + 2:] = [1.0, 0.0, 0.0]
    assert env.data.assets[0] == "BTC"
    batch = {k: torch.as_tensor(v) for k, v in obs.items()}
    base = module.encode({**batch, "text": torch.as_tensor(text)})[0]
    moved = text.copy()
    moved[0, 0, e] = -text[0, 0, e] - 0.5  # another tone for the BTC story
    other = module.encode({**batch, "text": torch.as_tensor(moved)})[0]
    own = slice(base.shape[-1] - module.cfg.text_hidden, None)
    assert not torch.equal(base[0, 0, own], other[0, 0, own])  # BTC's own news changed
    assert torch.equal(base[0, 1:, own], other[0, 1:, own])  # ETH and SOL have none
    assert not base[0, 1:, own].any()
    out = module.forward_inference({Columns.OBS: batch})
    assert torch.isfinite(out[Columns.ACTION_DIST_INPUTS]).all()


def test_feature_sources_are_appended_for_every_asset_from_the_store(tmp_path):
    """A stored fear & greed series (news.sources) as a market-wide feature: each asset
    gets the same column, 0 until the first value is visible."""
    from news.sources import get_source, write_observations

    plain = market_for(BASE)
    first = pd.Timestamp(plain.timestamps[0], tz="UTC").normalize()
    payload = {"name": "Fear and Greed Index", "metadata": {"error": None}, "data": [
        {"value": str(v), "value_classification": "x", "timestamp": str(int(t.timestamp()))}
        for v, t in ((20, first), (80, first + pd.Timedelta("1D")))]}
    write_observations(tmp_path, "fear_greed", get_source("fear_greed").parse(payload))
    news = {"features": False, "sources": ["fear_greed"], "data_dir": str(tmp_path)}
    data = market_for({**BASE, "news": news})

    assert data.features == (*plain.features, "src_fear_greed")
    column = data.feats[:, :, -1]
    assert (column == column[:, :1]).all()  # market-wide
    closes = pd.to_datetime(plain.timestamps, utc=True) + pd.Timedelta("1min")
    lag = pd.Timedelta("1h")  # the source's default publication lag
    day2 = np.flatnonzero(closes > first + pd.Timedelta("1D") + lag)[0]
    assert column[day2 - 1, 0] == pytest.approx(-0.6) and column[day2, 0] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="read from a store"):
        market_for({**BASE, "news": {"sources": ["fear_greed"]}})


def test_a_backtest_shows_the_policy_the_text_part_at_each_decision_bar():
    from backtest.engine import run_policy
    from envs.config import EnvConfig

    data = market_for({**BASE, "news": TEXT})
    config = EnvConfig(record_ledger=False)
    seen = []

    def policy(obs):
        seen.append(obs["text"][0].copy())
        flat = {"trade": np.ones((1, 3), np.int64), "size": np.zeros((1, 3), np.float32),
                "risk": np.zeros((1, 6), np.float32), "execution": np.zeros((1, 6), np.int64)}
        return flat

    result = run_policy(policy, data, config, 3000, 3000 + 20 * config.bars_per_step, "flat")

    bars = [3000, *result.steps.index.map(lambda t: int(np.searchsorted(
        data.timestamps, t.value)))[1:]]
    assert len(seen) == 20
    for bar, text in zip(bars, seen, strict=False):
        np.testing.assert_array_equal(text, data.text.text(bar))
    assert any(t[:, 385].any() for t in seen)
