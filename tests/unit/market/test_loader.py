import numpy as np
import pandas as pd
import pytest

from market.loader import aligned_frame, asset_fields, load_aligned
from market.schema import ALIGNED_FIELDS, Kind
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError
from tests.unit.market.bars import make_bars, make_funding

EX = "binanceusdm"
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def store_with(tmp_path, btc: pd.DataFrame, eth: pd.DataFrame) -> ParquetStore:
    store = ParquetStore(tmp_path)
    store.append(SeriesKey.bars(EX, BTC, "1m"), btc)
    store.append(SeriesKey.bars(EX, ETH, "1m"), eth)
    return store


def test_aligned_frame_has_assets_by_fields_on_the_common_span(tmp_path):
    btc = make_bars(100, start="2024-01-01 00:00", seed=1)
    eth = make_bars(100, start="2024-01-01 00:10", seed=2)
    store = store_with(tmp_path, btc, eth)

    aligned = load_aligned(store, EX, [BTC, ETH], "1m")

    assert aligned.columns.names == ["asset", "field"]
    assert list(aligned.columns.get_level_values("asset").unique()) == ["BTC", "ETH"]
    assert tuple(aligned["BTC"].columns) == ALIGNED_FIELDS
    assert aligned.index[0] == eth.index[0] and aligned.index[-1] == btc.index[-1]
    assert len(aligned) == 90
    np.testing.assert_array_equal(aligned["ETH"]["close"], eth["close"].iloc[:90])


def test_missing_bars_are_filled_flat_from_the_past_and_flagged(tmp_path):
    btc = make_bars(50, seed=1)
    store = store_with(tmp_path, btc.drop(btc.index[20:23]), make_bars(50, seed=2))

    aligned = load_aligned(store, EX, [BTC, ETH], "1m", gaps="ffill")

    filled = aligned["BTC"].iloc[20:23]
    assert (filled["filled"] == 1.0).all() and aligned["BTC"]["filled"].sum() == 3
    prev_close = btc["close"].iloc[19]
    for col in ("open", "high", "low", "close"):
        assert (filled[col] == prev_close).all()
    assert (filled["volume"] == 0.0).all()


def test_gaps_raise_under_the_refuse_policy_and_when_too_long(tmp_path):
    btc = make_bars(200, seed=1)
    store = store_with(tmp_path, btc.drop(btc.index[20:120]), make_bars(200, seed=2))

    with pytest.raises(DataValidationError, match="missing bars"):
        load_aligned(store, EX, [BTC, ETH], "1m", gaps="raise")
    with pytest.raises(DataValidationError, match="gap of 100 bars"):
        load_aligned(store, EX, [BTC, ETH], "1m", gaps="ffill", max_gap_bars=60)


def test_funding_lands_on_the_bar_that_closes_at_the_event(tmp_path):
    bars = make_bars(24 * 60, start="2024-01-01", seed=1)
    store = store_with(tmp_path, bars, make_bars(24 * 60, seed=2))
    funding = make_funding("2024-01-01 08:00", 2)
    store.append(SeriesKey.funding(EX, BTC), funding)

    btc = load_aligned(store, EX, [BTC, ETH], "1m")["BTC"]

    events = btc.index[btc["funding_event"] == 1.0]
    assert list(events) == [
        pd.Timestamp("2024-01-01 07:59", tz="UTC"),
        pd.Timestamp("2024-01-01 15:59", tz="UTC"),
    ]
    np.testing.assert_array_equal(btc.loc[events, "funding_rate"], funding["funding_rate"])
    assert (btc["funding_rate"][btc["funding_event"] == 0.0] == 0.0).all()


def test_mark_defaults_to_close_and_uses_stored_mark_bars(tmp_path):
    btc, eth = make_bars(30, seed=1), make_bars(30, seed=2)
    store = store_with(tmp_path, btc, eth)
    mark = make_bars(30, seed=3)
    store.append(SeriesKey.bars(EX, BTC, "1m", Kind.MARK), mark)

    aligned = load_aligned(store, EX, [BTC, ETH], "1m")

    np.testing.assert_array_equal(aligned["BTC"]["mark"], mark["close"])
    np.testing.assert_array_equal(aligned["ETH"]["mark"], eth["close"])


def test_missing_series_gives_an_actionable_error(tmp_path):
    store = ParquetStore(tmp_path)
    store.append(SeriesKey.bars(EX, BTC, "1m"), make_bars(10))

    with pytest.raises(DataValidationError, match="quantum data"):
        load_aligned(store, EX, [BTC, ETH], "1m")


def test_asset_fields_fall_back_for_mark_and_zero_the_rate_off_events():
    bars = make_bars(6, seed=4)
    ohlcv = bars.to_numpy()
    mark = np.array([np.nan, 101.0, np.nan, np.nan, 99.0, np.nan])
    rate = np.array([np.nan, 2e-4, np.nan, 0.0, np.nan, -1e-4])

    fields = asset_fields(ohlcv, mark, funding_rate=rate, filled=[0, 0, 1, 0, 0, 0])
    got = dict(zip(ALIGNED_FIELDS, fields.T, strict=True))

    np.testing.assert_array_equal(fields[:, :5], ohlcv)
    close = bars["close"].to_numpy()
    np.testing.assert_array_equal(got["mark"], [close[0], 101, 101, 101, 99, 99])
    np.testing.assert_array_equal(got["funding_event"], [0, 1, 0, 1, 0, 1])  # a 0 rate is paid
    np.testing.assert_array_equal(got["funding_rate"], [0, 2e-4, 0, 0, 0, -1e-4])
    np.testing.assert_array_equal(got["filled"], [0, 0, 1, 0, 0, 0])
    explicit = asset_fields(ohlcv, None, np.full(6, 3e-4), funding_event=[0, 0, 0, 0, 0, 1])
    assert explicit[:, 6].tolist() == [0, 0, 0, 0, 0, 3e-4]
    np.testing.assert_array_equal(explicit[:, 5], close)  # no mark series: close
    bare = asset_fields(ohlcv)
    assert not bare[:, 6:].any()
    with pytest.raises(ValueError, match="funding_event without funding_rate"):
        asset_fields(ohlcv, funding_event=np.ones(6))
    with pytest.raises(ValueError, match="ohlcv must be"):
        asset_fields(ohlcv[:, :4])


def test_aligned_frame_lays_assets_side_by_side_as_the_loader_does(tmp_path):
    btc, eth = make_bars(40, seed=1), make_bars(40, seed=2)
    loaded = load_aligned(store_with(tmp_path, btc, eth), EX, [BTC, ETH], "1m")
    built = aligned_frame(btc.index, {"BTC": asset_fields(btc.to_numpy()),
                                      "ETH": asset_fields(eth.to_numpy())})
    pd.testing.assert_frame_equal(built, loaded, check_exact=True)
    with pytest.raises(ValueError, match="ETH: fields must be"):
        aligned_frame(btc.index, {"ETH": asset_fields(eth.to_numpy()[:-1])})
