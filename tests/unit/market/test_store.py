import os

import pandas as pd
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.schema import Kind
from market.store import ParquetStore, SeriesKey
from market.validate import DataValidationError
from tests.unit.market.bars import make_bars, make_funding

KEY = SeriesKey.bars("binanceusdm", "BTC/USDT:USDT", "1m")


def visible_files(store: ParquetStore, key: SeriesKey) -> list[str]:
    return sorted(
        p.name for p in (store.root / key.partition).iterdir() if not p.name.startswith(".")
    )


def test_append_then_read_round_trips_exactly(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(500)

    written = store.append(KEY, bars)

    assert written == 500
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)
    assert str(store.read(KEY).index.dtype) == "datetime64[ns, UTC]"


def test_append_skips_rows_already_stored(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(300)
    store.append(KEY, bars.iloc[:200])

    written = store.append(KEY, bars.iloc[150:])

    assert written == 100
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), min_size=1, max_size=6), back=st.integers(0, 50))
def test_resumed_appends_that_resend_overlapping_rows_yield_the_series_once(
    tmp_path_factory, cuts, back
):
    store = ParquetStore(tmp_path_factory.mktemp("store"))
    bars = make_bars(400)
    previous = 0
    for cut in [*sorted(cuts), len(bars)]:
        store.append(KEY, bars.iloc[max(0, previous - back) : cut])
        previous = cut

    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


def test_read_returns_half_open_span(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(100)
    store.append(KEY, bars.iloc[:50])
    store.append(KEY, bars.iloc[50:])

    out = store.read(KEY, bars.index[10], bars.index[60])

    pd.testing.assert_frame_equal(out, bars.iloc[10:60], check_freq=False)


def test_replace_supersedes_everything_older(tmp_path):
    store = ParquetStore(tmp_path)
    store.append(KEY, make_bars(300, seed=1))
    new = make_bars(100, seed=2)

    store.replace(KEY, new)

    pd.testing.assert_frame_equal(store.read(KEY), new, check_freq=False)
    assert len(visible_files(store, KEY)) == 1


def test_a_crash_between_writing_a_base_and_deleting_old_files_is_harmless(tmp_path):
    store = ParquetStore(tmp_path)
    store.append(KEY, make_bars(300, seed=1))
    new = make_bars(100, seed=2)
    store._write(KEY, new, base=True, source="test")  # the process dies before cleanup

    assert len(visible_files(store, KEY)) == 2
    pd.testing.assert_frame_equal(store.read(KEY), new, check_freq=False)


def test_compact_merges_files_without_changing_data(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(300)
    for chunk in range(0, 300, 50):
        store.append(KEY, bars.iloc[chunk : chunk + 50])

    removed = store.compact(KEY)

    assert removed == 6
    assert len(visible_files(store, KEY)) == 1
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


def test_leftover_temp_file_is_ignored_by_readers_and_removed_by_next_writer(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(100)
    store.append(KEY, bars.iloc[:50])
    leftover = store.root / KEY.partition / ".deadbeef.tmp"
    leftover.write_bytes(b"PAR1 half a file")

    pd.testing.assert_frame_equal(store.read(KEY), bars.iloc[:50], check_freq=False)
    store.append(KEY, bars.iloc[50:])

    assert not leftover.exists()
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


def test_truncated_visible_file_raises_a_clear_error_naming_it(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(100)
    store.append(KEY, bars)
    (path,) = (store.root / KEY.partition).glob("*.parquet")
    path.write_bytes(path.read_bytes()[:100])

    with pytest.raises(DataValidationError, match=path.name):
        store.read(KEY)


def test_append_refuses_invalid_bars_and_writes_nothing(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(10)
    bars.iloc[3, bars.columns.get_loc("high")] = bars["low"].iloc[3] / 2

    with pytest.raises(DataValidationError, match="high < low"):
        store.append(KEY, bars)
    assert store.read(KEY).empty


def test_dataset_is_readable_with_plain_pyarrow_hive_partitioning(tmp_path):
    store = ParquetStore(tmp_path)
    store.append(KEY, make_bars(20))
    store.append(SeriesKey.bars("bybit", "ETH/USDT:USDT", "1m"), make_bars(10))

    table = ds.dataset(tmp_path / "ohlcv", partitioning="hive").to_table().to_pandas()

    assert sorted(table["symbol"].unique()) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert str(table["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert table.groupby("exchange").size().to_dict() == {"binanceusdm": 20, "bybit": 10}


def test_series_lists_every_kind_and_funding_has_no_timeframe(tmp_path):
    store = ParquetStore(tmp_path)
    store.append(KEY, make_bars(10))
    store.append(SeriesKey.bars("binanceusdm", "BTC/USDT:USDT", "1m", Kind.MARK), make_bars(10))
    store.append(SeriesKey.funding("binanceusdm", "BTC/USDT:USDT"), make_funding("2024-01-01", 3))

    kinds = {(k.kind, k.timeframe) for k in store.series()}

    assert kinds == {(Kind.OHLCV, "1m"), (Kind.MARK, "1m"), (Kind.FUNDING, None)}
    with pytest.raises(ValueError, match="timeframe"):
        SeriesKey(Kind.FUNDING, "binanceusdm", "BTC/USDT:USDT", "1m")


def test_last_timestamp_comes_from_file_names(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(42)
    assert store.last_timestamp(KEY) is None

    store.append(KEY, bars)

    assert store.last_timestamp(KEY) == bars.index[-1]
    assert store.info(KEY).rows == 42


def test_overlapping_files_put_there_by_hand_are_reported(tmp_path):
    store, bars = ParquetStore(tmp_path), make_bars(100)
    store.append(KEY, bars.iloc[:60])
    (first,) = (store.root / KEY.partition).glob("*.parquet")
    copy = first.with_name(first.name.replace("00000001-", "00000002-"))
    os.link(first, copy)

    with pytest.raises(DataValidationError, match="overlap"):
        store.read(KEY)
