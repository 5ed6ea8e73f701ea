"""Stylised facts of crypto markets, each checked on generated data."""

import numpy as np
import pandas as pd
import pytest

from market.schema import perp_symbol
from market.synthetic import REGIMES, SyntheticConfig, generate_market
from market.validate import validate_series

BTC, ETH, SOL = (perp_symbol(a) for a in ("BTC", "ETH", "SOL"))


@pytest.fixture(scope="module")
def market():
    return generate_market(SyntheticConfig(days=120, seed=3))


@pytest.fixture(scope="module")
def returns(market):
    closes = pd.DataFrame({s.split("/")[0]: f["close"] for s, f in market.ohlcv.items()})
    return np.log(closes).diff().dropna()


def acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).mean() / x.var())


def test_btc_eth_returns_correlate_about_0_8_and_all_pairs_positively(returns):
    corr = returns.corr()

    assert 0.7 <= corr.loc["BTC", "ETH"] <= 0.9
    assert (corr.to_numpy()[np.triu_indices(3, 1)] > 0.5).all()


@pytest.mark.parametrize("lag", [1, 10, 60, 360])
def test_volatility_clusters_while_returns_stay_uncorrelated(returns, lag):
    for asset in returns:
        r = returns[asset].to_numpy()
        assert acf(np.abs(r), lag) > 0.05, (asset, lag)
        assert abs(acf(r, lag)) < 0.03, (asset, lag)


def test_one_minute_returns_have_fat_tails(returns):
    assert (returns.kurt() > 3.0).all()


def test_regimes_all_occur_persist_and_differ_in_volatility_and_drift(market, returns):
    labels = market.regimes.iloc[1:].to_numpy()
    btc = returns["BTC"].to_numpy()
    spells = (market.regimes != market.regimes.shift()).cumsum()
    spell_hours = spells.value_counts().mean() / 60

    assert set(market.regimes.unique()) == set(REGIMES)
    assert spell_hours > 12
    assert btc[labels == "crisis"].std() > 2 * btc[labels == "calm"].std()
    drift = returns["BTC"].groupby(spells.iloc[1:].to_numpy()).agg(["mean", "size"])
    kind = market.regimes.groupby(spells).first().to_numpy()
    long_spells = drift["size"].to_numpy() > 600
    trending = np.abs(drift["mean"].to_numpy()[(kind == "trending") & long_spells]).mean()
    calm = np.abs(drift["mean"].to_numpy()[(kind == "calm") & long_spells]).mean()
    assert trending > 1.5 * calm


def test_volume_rises_with_volatility(market, returns):
    hourly_vol = returns["BTC"].pow(2).resample("1h").sum().pow(0.5)
    hourly_volume = market.ohlcv[BTC]["volume"].resample("1h").sum()

    assert hourly_vol.corr(hourly_volume.loc[hourly_vol.index], method="spearman") > 0.3


def test_bars_are_valid_continuous_and_on_the_grid(market):
    for symbol, bars in market.ohlcv.items():
        validate_series(bars, "ohlcv", symbol, "1m")
        validate_series(market.mark[symbol], "mark", symbol, "1m")
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])
        assert len(bars) == 120 * 1440 and str(bars.index.dtype) == "datetime64[ns, UTC]"


def test_funding_every_8_hours_follows_the_premium(market):
    funding = market.funding[BTC]
    closes = market.ohlcv[BTC]["close"]
    trailing = np.log(closes).diff().rolling(24 * 60).sum()

    assert set(funding.index.hour) == {0, 8, 16} and (funding.index.minute == 0).all()
    assert funding["funding_rate"].abs().max() <= 0.0075
    assert funding.index[0] >= closes.index[0] + pd.Timedelta(hours=8)
    before = trailing.reindex(funding.index - pd.Timedelta(minutes=1))
    assert funding["funding_rate"].corr(pd.Series(before.to_numpy(), index=funding.index)) > 0.2


def test_mark_price_stays_near_but_not_at_the_last_price(market):
    basis = market.mark[BTC]["close"] / market.ohlcv[BTC]["close"] - 1

    assert basis.abs().max() < 0.01
    assert (basis != 0).mean() > 0.99


def test_daily_volatility_is_realistic(market):
    for symbol, bars in market.ohlcv.items():
        daily = np.log(bars["close"]).resample("1D").last().diff().dropna()
        assert 0.25 < daily.std() * np.sqrt(365) < 2.0, symbol


def test_same_seed_same_data_other_seed_other_data():
    config = SyntheticConfig(days=2, seed=5)

    first, again = generate_market(config), generate_market(config)
    other = generate_market(config.model_copy(update={"seed": 6}))

    for symbol in first.ohlcv:
        pd.testing.assert_frame_equal(first.ohlcv[symbol], again.ohlcv[symbol])
        pd.testing.assert_frame_equal(first.funding[symbol], again.funding[symbol])
        assert not first.ohlcv[symbol]["close"].equals(other.ohlcv[symbol]["close"])


def test_other_timeframes_and_unknown_assets_work():
    market = generate_market(SyntheticConfig(assets=("BTC", "DOGE"), timeframe="1h", days=30))

    bars = market.ohlcv[perp_symbol("DOGE")]
    assert len(bars) == 30 * 24
    validate_series(bars, "ohlcv", "DOGE", "1h")


@pytest.mark.parametrize(
    "bad", [{"assets": ()}, {"days": 0}, {"timeframe": "7x"}, {"assets": ("BTC", "BTC")}]
)
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        SyntheticConfig(**bad)
