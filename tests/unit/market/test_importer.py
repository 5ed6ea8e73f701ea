"""`quantum data import`: files in, validated series out, timestamps never guessed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from market import importer
from market.cli import app
from market.importer import ImportConfig
from market.schema import Kind
from market.store import ParquetStore, SeriesKey
from tests.unit.market.bars import make_bars, make_funding
from tests.unit.market.realdata import EXCHANGE, SAMPLE, needs_sample, source_frame

SYMBOL = "BTC/USDT:USDT"
KEY = SeriesKey.bars(EXCHANGE, SYMBOL, "1m")
runner = CliRunner()


def run(*args: object):
    result = runner.invoke(app, ["import", *map(str, args)])
    return result, " ".join(result.output.split())  # rich wraps long lines


def import_file(path, store, *extra: object):
    return run(path, "--data", store, "--exchange", EXCHANGE, "--symbol", SYMBOL, *extra)


def bars_csv(tmp_path, bars: pd.DataFrame, stamps: pd.Series, name: str = "bars.csv"):
    path = tmp_path / name
    bars.reset_index(drop=True).assign(timestamp=stamps.to_numpy()).to_csv(path, index=False)
    return path


@needs_sample
def test_real_sample_folder_imports_every_series_and_reads_back_equal_to_the_source(tmp_path):
    result, _ = run(SAMPLE, "--data", tmp_path, "--exchange", EXCHANGE, "--label", "open",
                    "--time-unit", "datetime", "--mark-timeframe", "8h")

    assert result.exit_code == 0, result.output
    store = ParquetStore(tmp_path)
    assert len(store.series()) == 15  # 5 symbols x ohlcv, mark (8h), funding
    for base in ("BTC", "SOL"):
        symbol = f"{base}/USDT:USDT"
        for kind, timeframe in (("ohlcv", "1m"), ("mark", "8h")):
            stored = store.read(SeriesKey.bars(EXCHANGE, symbol, timeframe, Kind(kind)))
            pd.testing.assert_frame_equal(stored, source_frame(f"{base}USDT_{kind}.parquet"),
                                          check_freq=False)
        funding = store.read(SeriesKey.funding(EXCHANGE, symbol))
        pd.testing.assert_frame_equal(funding, source_frame(f"{base}USDT_funding.parquet"))


@needs_sample
def test_folder_without_a_mark_timeframe_skips_the_8h_mark_files_with_a_note(tmp_path):
    result, output = run(SAMPLE, "--data", tmp_path, "--exchange", EXCHANGE, "--label", "open",
                         "--time-unit", "datetime")

    assert result.exit_code == 0, result.output
    assert "skipped BTCUSDT_mark.parquet" in output and "--mark-timeframe" in output
    assert {k.kind for k in ParquetStore(tmp_path).series()} == {Kind.OHLCV, Kind.FUNDING}


def test_close_time_labels_in_epoch_ms_are_shifted_back_to_open_times(tmp_path):
    bars = make_bars(300)
    close_ms = (bars.index + pd.Timedelta(minutes=1)).asi8 // 1_000_000
    path = bars_csv(tmp_path, bars, pd.Series(close_ms))

    result, _ = import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "close",
                            "--time-unit", "ms")

    assert result.exit_code == 0, result.output
    stored = ParquetStore(tmp_path / "store").read(KEY)
    pd.testing.assert_frame_equal(stored, bars, check_freq=False, check_exact=False, rtol=1e-15)


def test_iso_timestamps_with_or_without_an_offset_are_read_as_utc(tmp_path):
    bars = make_bars(240)
    iso = pd.Series(bars.index.strftime("%Y-%m-%dT%H:%M:%S"))
    iso[100:] = (bars.index[100:].tz_convert("Europe/Paris")).strftime("%Y-%m-%dT%H:%M:%S%z")
    path = bars_csv(tmp_path, bars, iso)

    result, _ = import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "open",
                            "--time-unit", "iso")

    assert result.exit_code == 0, result.output
    stored = ParquetStore(tmp_path / "store").read(KEY)
    pd.testing.assert_frame_equal(stored, bars, check_freq=False, check_exact=False, rtol=1e-15)


def test_columns_are_renamed_with_store_equals_file_pairs(tmp_path):
    bars = make_bars(60)
    path = tmp_path / "vendor.csv"
    frame = bars.reset_index().rename(columns={"timestamp": "Time", "close": "Close"})
    frame.assign(Time=bars.index.asi8 // 1_000_000_000).to_csv(path, index=False)

    result, _ = import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "open",
                            "--time-unit", "s", "--column", "timestamp=Time",
                            "--column", "close=Close")

    assert result.exit_code == 0, result.output
    assert ParquetStore(tmp_path / "store").read(KEY)["close"].tolist() == bars["close"].tolist()


def _corrupt(bars: pd.DataFrame, how: str) -> tuple[pd.DataFrame, str]:
    """A malformed copy of `bars` (timestamp column in ms) and a word its error must contain."""
    frame = bars.reset_index()
    frame["timestamp"] = bars.index.asi8 // 1_000_000
    if how == "missing column":
        return frame.drop(columns="volume"), "missing columns ['volume']"
    if how == "unsorted":
        frame.loc[[10, 11], "timestamp"] = frame.loc[[11, 10], "timestamp"].to_numpy()
        return frame, "not sorted"
    if how == "duplicate":
        frame.loc[11, "timestamp"] = frame.loc[10, "timestamp"]
        return frame, "duplicate timestamps"
    if how == "nan":
        frame.loc[20, "close"] = np.nan
        return frame, "NaN"
    if how == "text in a number column":
        frame["high"] = frame["high"].astype(object)
        frame.loc[5, "high"] = "12.5x"
        return frame, "non-number"
    if how == "wrong time unit":
        frame["timestamp"] = frame["timestamp"] * 1000  # microseconds passed off as ms
        return frame, "unit is probably wrong"
    if how == "no rows":
        return frame.iloc[:0], "no rows"
    if how == "off the grid":
        frame["timestamp"] = frame["timestamp"] + 30_000
        return frame, "off the 1m grid"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["missing column", "unsorted", "duplicate", "nan", "text in a number column",
     "wrong time unit", "off the grid", "no rows"],
)
def test_a_malformed_file_is_refused_with_exit_code_2_and_nothing_is_written(tmp_path, how):
    frame, expected = _corrupt(make_bars(50), how)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)

    result, output = import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "open",
                                 "--time-unit", "ms")

    assert result.exit_code == 2, output
    assert "error:" in output and expected in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert ParquetStore(tmp_path / "store").series() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--kind", "ohlcv", "--time-unit", "ms"), "need a timeframe and a label"),
        (("--kind", "ohlcv", "--label", "open", "--time-unit", "iso"), "not ISO-8601"),
        (("--kind", "ohlcv", "--label", "open", "--time-unit", "datetime"), "--time-unit datetime"),
        (("--kind", "funding", "--label", "close", "--time-unit", "ms"), "no timeframe/label"),
        (("--kind", "candles", "--label", "open", "--time-unit", "ms"), "kind"),
        (("--kind", "ohlcv", "--label", "open", "--time-unit", "ms", "--column", "close"),
         "store_name=file_name"),
    ],
)
def test_unclear_conventions_are_refused_with_exit_code_2(tmp_path, args, expected):
    path = bars_csv(tmp_path, make_bars(10), pd.Series(make_bars(10).index.asi8 // 1_000_000))

    result, output = import_file(path, tmp_path / "store", *args)

    assert result.exit_code == 2, output
    assert expected in output
    assert not (tmp_path / "store").exists()


def test_a_missing_file_is_refused_with_exit_code_2(tmp_path):
    result, output = import_file(tmp_path / "nope.parquet", tmp_path / "store", "--kind",
                                 "ohlcv", "--label", "open", "--time-unit", "ms")

    assert result.exit_code == 2
    assert "no such file" in output


def test_importing_the_same_file_twice_stores_it_once(tmp_path):
    bars = make_bars(500)
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    args = ("--kind", "ohlcv", "--label", "open", "--time-unit", "datetime")

    first, _ = import_file(path, tmp_path / "store", *args)
    second, _ = import_file(path, tmp_path / "store", *args)

    assert first.exit_code == second.exit_code == 0
    store = ParquetStore(tmp_path / "store")
    assert store.info(KEY).files == 1  # the second import added nothing
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


def test_an_overlapping_newer_file_appends_only_rows_after_the_stored_end(tmp_path):
    bars = make_bars(400)
    early, late = tmp_path / "early.parquet", tmp_path / "late.parquet"
    bars.iloc[:250].to_parquet(early)
    bars.iloc[200:].to_parquet(late)
    args = ("--kind", "ohlcv", "--label", "open", "--time-unit", "datetime")

    import_file(early, tmp_path / "store", *args)
    result, _ = import_file(late, tmp_path / "store", *args)

    assert result.exit_code == 0
    store = ParquetStore(tmp_path / "store")
    assert store.info(KEY).rows == 400 and store.info(KEY).files == 2
    pd.testing.assert_frame_equal(store.read(KEY), bars, check_freq=False)


def test_replace_makes_the_file_the_whole_series(tmp_path):
    bars = make_bars(300)
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "open",
                "--time-unit", "datetime")
    bars.iloc[50:100].to_parquet(path)

    result, _ = import_file(path, tmp_path / "store", "--kind", "ohlcv", "--label", "open",
                            "--time-unit", "datetime", "--replace")

    assert result.exit_code == 0
    pd.testing.assert_frame_equal(ParquetStore(tmp_path / "store").read(KEY), bars.iloc[50:100],
                                  check_freq=False)


def test_funding_events_import_without_a_timeframe(tmp_path):
    funding = make_funding("2024-01-01 08:00", 30)
    path = tmp_path / "funding.csv"
    funding.reset_index().assign(timestamp=funding.index.asi8 // 1_000_000).to_csv(
        path, index=False
    )

    result, _ = import_file(path, tmp_path / "store", "--kind", "funding", "--time-unit", "ms")

    assert result.exit_code == 0, result.output
    stored = ParquetStore(tmp_path / "store").read(SeriesKey.funding(EXCHANGE, SYMBOL))
    pd.testing.assert_frame_equal(stored, funding, check_freq=False)


def test_a_folder_with_one_bad_file_writes_none_of_its_files(tmp_path):
    folder = tmp_path / "dump"
    folder.mkdir()
    good = make_bars(100)
    good.reset_index().to_parquet(folder / "BTCUSDT_ohlcv.parquet")
    good.reset_index().iloc[::-1].to_parquet(folder / "ETHUSDT_ohlcv.parquet")  # unsorted

    result, output = run(folder, "--data", tmp_path / "store", "--exchange", EXCHANGE,
                         "--label", "open", "--time-unit", "datetime")

    assert result.exit_code == 2 and "ETHUSDT_ohlcv.parquet" in output
    assert ParquetStore(tmp_path / "store").series() == []


def test_a_repeated_import_reports_every_row_as_already_stored(tmp_path):
    bars = make_bars(120)
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    store = ParquetStore(tmp_path / "store")
    config = ImportConfig(kind="ohlcv", exchange=EXCHANGE, symbol=SYMBOL, timeframe="1m",
                          label="open", time_unit="datetime")

    first, again = (
        importer.import_file(store, path, config),
        importer.import_file(store, path, config),
    )

    assert (first.rows, first.written) == (120, 120)
    assert (again.rows, again.written) == (120, 0)
