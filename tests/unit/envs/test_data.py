"""From the parquet store to the env: synthetic data, features, MarketArrays, any asset count."""

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.data import OBS_FEATURES, load_market_arrays
from envs.vector import PerpetualVectorEnv
from market.schema import Kind, perp_symbol
from market.store import ParquetStore, SeriesKey
from market.synthetic import SyntheticConfig, generate_market
from market.validate import DataValidationError


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    market = generate_market(SyntheticConfig(assets=("BTC", "ETH", "SOL", "DOGE"), days=4, seed=2))
    store = ParquetStore(root)
    for asset in market.config.assets:
        symbol = perp_symbol(asset)
        store.replace(SeriesKey.bars("synthetic", symbol, "1m"), market.ohlcv[symbol])
        store.replace(SeriesKey.bars("synthetic", symbol, "1m", Kind.MARK), market.mark[symbol])
        store.replace(SeriesKey.funding("synthetic", symbol), market.funding[symbol])
    return root


@pytest.mark.parametrize("assets", [("BTC",), ("BTC", "ETH", "SOL"), ("BTC", "ETH", "SOL", "DOGE")])
def test_env_runs_on_stored_synthetic_data_with_any_number_of_assets(store_dir, assets):
    data = load_market_arrays(store_dir, "synthetic", [perp_symbol(a) for a in assets])
    env = PerpetualVectorEnv(data, EnvConfig(episode_steps=50, record_ledger=False), num_envs=8)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)

    for _ in range(60):
        obs, reward, *_ = env.step(env.action_space.sample())

    assert data.assets == assets
    assert obs["market"].shape == (8, 24, len(assets), len(OBS_FEATURES))
    assert np.isfinite(obs["market"]).all() and np.isfinite(reward).all()
    assert data.first_valid >= 1440  # the day-long z-score windows are warm before trading


def test_cost_inputs_come_from_the_features_and_are_sane(store_dir):
    data = load_market_arrays(store_dir, "synthetic", [perp_symbol("BTC")])
    from envs.core.layout import M_ATR, M_DAILY_NOTIONAL, M_DAILY_VOL, M_HALF_SPREAD

    usable = data.mkt[data.first_valid :, 0]
    assert (usable[:, M_ATR] > 0).all()
    assert (usable[:, M_HALF_SPREAD] >= 0).all() and np.median(usable[:, M_HALF_SPREAD]) < 5e-3
    assert 0.005 < np.median(usable[:, M_DAILY_VOL]) < 0.2
    assert np.median(usable[:, M_DAILY_NOTIONAL]) > 1e9


def test_unknown_assets_and_empty_spans_raise_clear_errors(store_dir):
    with pytest.raises(DataValidationError, match="XRP"):
        load_market_arrays(store_dir, "synthetic", [perp_symbol("BTC"), perp_symbol("XRP")])
    with pytest.raises(DataValidationError, match="no 1m bars"):
        load_market_arrays(store_dir, "nowhere", [perp_symbol("BTC")])
