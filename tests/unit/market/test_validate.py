import numpy as np
import pandas as pd
import pytest

from market.schema import Kind
from market.validate import DataValidationError, validate_series
from tests.unit.market.bars import make_bars, make_funding


def test_valid_bars_pass():
    validate_series(make_bars(50), Kind.OHLCV, "bars", "1m")


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda f: f.iloc[[0, 1, 1, 2]], "duplicate timestamps"),
        (lambda f: f.iloc[[0, 2, 1, 3]], "not sorted"),
        (lambda f: f.assign(close=f["close"].where(f.index != f.index[5], -1.0)), "non-positive"),
        (lambda f: f.assign(volume=f["volume"].where(f.index != f.index[5], np.nan)), "NaN or inf"),
        (lambda f: f.assign(high=f["low"] * 0.99), "high < low"),
        (lambda f: f.assign(open=f["high"] * 1.01, high=f["high"] * 1.005), "outside"),
        (lambda f: f.assign(volume=-f["volume"]), "negative volume"),
        (lambda f: f.set_axis(f.index + pd.Timedelta(seconds=30)), "off the 1m grid"),
        (lambda f: f[["open", "close"]], "columns"),
        (lambda f: f.set_axis(f.index.tz_localize(None)), "tz-aware"),
    ],
)
def test_corrupt_bars_raise_naming_the_rule(corrupt, message):
    bars = corrupt(make_bars(20))

    with pytest.raises(DataValidationError, match=message):
        validate_series(bars, Kind.OHLCV, "BTC bars", "1m")


def test_error_names_the_series_and_first_bad_timestamp():
    bars = make_bars(20)
    bars.iloc[7, bars.columns.get_loc("close")] = 0.0

    with pytest.raises(DataValidationError) as info:
        validate_series(bars, Kind.OHLCV, "binance BTC 1m", "1m")

    assert "binance BTC 1m" in str(info.value)
    assert str(bars.index[7]) in str(info.value)


def test_funding_may_be_negative_but_not_nan():
    funding = make_funding("2024-01-01", 5)
    funding.iloc[1, 0] = -0.002
    validate_series(funding, Kind.FUNDING, "funding")

    funding.iloc[2, 0] = np.inf
    with pytest.raises(DataValidationError, match="NaN or inf"):
        validate_series(funding, Kind.FUNDING, "funding")
