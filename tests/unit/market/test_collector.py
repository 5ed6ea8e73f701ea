"""The ccxt collector against ccxt's real binanceusdm, bybit and okx classes, offline.

The exchanges' HTTP answers come from tests/unit/market/ccxt_fakes.py (native
JSON, native paging, errors mapped by ccxt's own handle_errors).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import ccxt
import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests
from pydantic import ValidationError

from market.collector import CollectConfig, Collector, CollectorError, SeriesProgress, collect
from market.exchanges import load_credentials
from market.schema import Kind
from market.store import ParquetStore, SeriesKey
from tests.unit.market.ccxt_fakes import (
    DATA_START,
    MINUTE,
    NOW,
    VENUES,
    BinanceVenue,
    FakeVenue,
    error,
    fake_exchange,
    truth_bars,
    truth_funding,
)
from tests.unit.market.collect_subprocess import KILL_CONFIG

EXCHANGES = ("binanceusdm", "bybit", "okx")
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
DAY = 1440 * MINUTE
BAR_END = NOW // MINUTE * MINUTE
"""Open time of the bar still forming at the exchange clock NOW: it must not be stored."""
REPO = Path(__file__).resolve().parents[3]


def make_config(exchange: str, **overrides: object) -> CollectConfig:
    settings: dict[str, object] = {
        "exchange": exchange,
        "symbols": SYMBOLS,
        "since": DATA_START,
        "page_limit": 200,
        "flush_every_pages": 3,
        "max_retries": 3,
    }
    return CollectConfig(**(settings | overrides))


def run(venue: FakeVenue, store: ParquetStore, config: CollectConfig, **kwargs: object):
    """Collect through the fake; returns (report, the delays the collector slept)."""
    sleeps: list[float] = []
    report = collect(fake_exchange(venue), store, config, sleep=sleeps.append, **kwargs)
    return report, sleeps


def assert_stored_truth(store, exchange, symbols, kinds, bar_end=BAR_END, funding_end=NOW + 1):
    """The store holds exactly the venue's truth: closed bars before `bar_end`, funding
    events before `funding_end`; no duplicate, no gap, float64 values, UTC ns index."""
    for symbol in symbols:
        for kind in kinds:
            if kind is Kind.FUNDING:
                key = SeriesKey.funding(exchange, symbol)
                expected = truth_funding(symbol, DATA_START, funding_end)
            else:
                key = SeriesKey.bars(exchange, symbol, "1m", kind)
                expected = truth_bars(symbol, kind.value, DATA_START, bar_end)
            stored = store.read(key)
            pd.testing.assert_frame_equal(stored, expected, check_freq=False)
            assert str(stored.index.dtype) == "datetime64[ns, UTC]"
            assert (stored.dtypes == "float64").all()


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_collects_many_pages_of_bars_and_funding_exactly(tmp_path, exchange):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)

    report, sleeps = run(venue, store, make_config(exchange))

    assert_stored_truth(store, exchange, SYMBOLS, list(Kind))
    assert store.last_timestamp(SeriesKey.bars(exchange, SYMBOLS[0], "1m")) == pd.Timestamp(
        BAR_END - MINUTE, unit="ms", tz="UTC"
    )
    bar_reports = [s for s in report.series if s.key.kind is not Kind.FUNDING]
    assert len(bar_reports) == 4 and all(s.pages >= 10 for s in bar_reports)
    assert report.rows_written == 2 * 2 * 3 * 1440 + 10 + 19
    assert sleeps == [] and report.retries == 0
    key = SeriesKey.bars(exchange, SYMBOLS[0], "1m")
    first_file = sorted((tmp_path / key.partition).glob("*.parquet"))[0]
    source = pq.read_schema(first_file).metadata[b"quantum.source"].decode()
    assert source == f"ccxt {ccxt.__version__} {exchange} fetchOHLCV"


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_second_run_fetches_only_the_new_range(tmp_path, exchange):
    store = ParquetStore(tmp_path)
    run(VENUES[exchange](), store, make_config(exchange, until=DATA_START + DAY))
    venue = VENUES[exchange]()

    run(venue, store, make_config(exchange, until=DATA_START + 2 * DAY))

    bar_starts = venue.starts("ohlcv") + venue.starts("mark")
    assert min(bar_starts) == DATA_START + DAY
    assert len(venue.requests_for("ohlcv")) == 2 * 8
    last_btc_funding_of_first_run = DATA_START + 16 * 3_600_000
    assert min(venue.starts("funding")) == last_btc_funding_of_first_run + 1
    assert_stored_truth(
        store, exchange, SYMBOLS, list(Kind), DATA_START + 2 * DAY, DATA_START + 2 * DAY
    )


@pytest.mark.parametrize(
    ("exchange", "error_name", "ccxt_error"),
    [
        ("binanceusdm", "too_many_requests_429", "DDoSProtection"),
        ("binanceusdm", "request_weight_400", "RateLimitExceeded"),
        ("bybit", "too_many_visits_10006", "RateLimitExceeded"),
        ("okx", "too_many_requests_50011", "RateLimitExceeded"),
    ],
)
def test_rate_limit_errors_are_retried_with_growing_backoff(
    tmp_path, caplog, exchange, error_name, ccxt_error
):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)
    venue.inject("ohlcv", *[error(exchange, error_name)] * 3, after=2)
    config = make_config(exchange, until=DATA_START + DAY, kinds=(Kind.OHLCV,))

    report, sleeps = run(venue, store, config, rng=random.Random(7))

    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] <= config.backoff_max_s
    assert report.retries == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(ccxt_error in w for w in warnings)
    assert_stored_truth(store, exchange, SYMBOLS, [Kind.OHLCV], DATA_START + DAY)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_exhausted_retries_keep_fetched_pages_and_resume_from_the_stored_end(tmp_path, exchange):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)
    venue.inject("ohlcv", *[requests.ConnectionError("connection reset")] * 3, after=5)
    config = make_config(exchange, symbols=SYMBOLS[:1], kinds=(Kind.OHLCV,), max_retries=2)
    key = SeriesKey.bars(exchange, SYMBOLS[0], "1m")

    with pytest.raises(CollectorError, match=r"failed after 3 attempts.*run the same command"):
        run(venue, store, config)

    pd.testing.assert_frame_equal(
        store.read(key), truth_bars(SYMBOLS[0], "ohlcv", DATA_START, DATA_START + 5 * 200 * MINUTE)
    )
    resumed = VENUES[exchange]()
    report, _ = run(resumed, store, config)
    assert resumed.starts("ohlcv")[0] == DATA_START + 5 * 200 * MINUTE
    assert report.series[0].rows_written == 3 * 1440 - 1000
    assert_stored_truth(store, exchange, SYMBOLS[:1], [Kind.OHLCV])


@pytest.mark.parametrize("symbol", ["DOGE/USDT:USDT", "BTC/USDT"])
def test_unknown_symbol_is_a_clear_error_and_nothing_is_fetched(tmp_path, symbol):
    venue, store = BinanceVenue(), ParquetStore(tmp_path)

    with pytest.raises(CollectorError, match=rf"unknown symbol '{symbol}'.*BTC/USDT:USDT"):
        run(venue, store, make_config("binanceusdm", symbols=(SYMBOLS[0], symbol)))

    assert store.series() == []
    assert [r.path for r in venue.received] == ["/fapi/v1/exchangeInfo"]


@pytest.mark.parametrize(
    ("exchange", "error_name", "expected"),
    [
        ("binanceusdm", "invalid_api_key_401", r"AuthenticationError.*QUANTUM_BINANCEUSDM_API_KEY"),
        ("okx", "invalid_api_key_50111", r"AuthenticationError.*QUANTUM_OKX_PASSWORD"),
        ("bybit", "params_error_10001", r"BadRequest.*not retried|not retried.*BadRequest"),
    ],
)
def test_exchange_errors_are_permanent_and_not_retried(tmp_path, exchange, error_name, expected):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)
    venue.inject("ohlcv", error(exchange, error_name))

    with pytest.raises(CollectorError, match=expected) as raised:
        run(venue, store, make_config(exchange, kinds=(Kind.OHLCV,)))

    assert "ohlcv" in str(raised.value) and SYMBOLS[0] in str(raised.value)
    assert len(venue.requests_for("ohlcv")) == 1


@pytest.mark.parametrize(
    ("exchange", "symbol", "expected"),
    [
        ("binanceusdm", "BTC/USDT:USDT-240329", "future market, not a perpetual"),
        ("bybit", "BTC/USDC:USDC-240329", "future market, not a perpetual"),
        ("okx", "BTC/USD:BTC", "inverse"),
    ],
)
def test_non_perpetual_or_inverse_symbol_is_rejected_before_fetching(
    tmp_path, exchange, symbol, expected
):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)

    with pytest.raises(CollectorError, match=rf"{symbol}.*{expected}.*BTC/USDT:USDT"):
        run(venue, store, make_config(exchange, symbols=(symbol,)))

    assert store.series() == [] and not venue.requests_for("ohlcv")


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_pages_silently_shorter_than_asked_leave_no_holes(tmp_path, exchange):
    venue, store = VENUES[exchange](page_cap=70), ParquetStore(tmp_path)

    run(venue, store, make_config(exchange, until=DATA_START + DAY))

    assert_stored_truth(store, exchange, SYMBOLS, list(Kind), DATA_START + DAY, DATA_START + DAY)


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_funding_history_longer_than_a_page_is_complete(tmp_path, exchange):
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)
    config = make_config(exchange, kinds=(Kind.FUNDING,), page_limit=3)

    report, _ = run(venue, store, config)

    assert_stored_truth(store, exchange, SYMBOLS, [Kind.FUNDING])
    assert all(s.pages > 19 / 3 for s in report.series)


def test_kind_the_exchange_lacks_is_skipped_and_reported(tmp_path):
    venue, store = BinanceVenue(), ParquetStore(tmp_path)
    exchange = fake_exchange(venue)
    exchange.has["fetchMarkOHLCV"] = False
    config = make_config("binanceusdm", symbols=SYMBOLS[:1], until=DATA_START + DAY)

    report = collect(exchange, store, config, sleep=lambda _: None)

    assert [key.kind for key, _ in report.skipped] == [Kind.MARK]
    assert not venue.requests_for("mark")
    assert {s.key.kind for s in report.series} == {Kind.OHLCV, Kind.FUNDING}


def test_progress_reports_advance_to_done(tmp_path):
    events: list[SeriesProgress] = []
    config = make_config("bybit", symbols=SYMBOLS[:1], kinds=(Kind.OHLCV,))

    run(VENUES["bybit"](), ParquetStore(tmp_path), config, progress=events.append)

    positions = [e.position for e in events]
    assert positions == sorted(positions) and events[0].fraction == 0.0
    assert events[-1].done and events[-1].fraction == 1.0
    assert events[-1].rows_written == 3 * 1440 and events[-1].pages == len(events) - 2


def test_config_rejects_bad_values_with_clear_errors():
    with pytest.raises(ValidationError, match="must be after since"):
        make_config("okx", until=DATA_START)
    with pytest.raises(ValidationError, match="unknown ccxt exchange"):
        make_config("binancefutures")
    with pytest.raises(ValidationError, match="Extra inputs"):
        make_config("okx", api_key="x")
    with pytest.raises(ValidationError, match="unknown timeframe"):
        make_config("okx", timeframe="7q")


def test_killed_collector_leaves_only_readable_files_and_resume_completes(tmp_path):
    key = SeriesKey.bars("binanceusdm", "BTC/USDT:USDT", "1m")
    directory = tmp_path / key.partition
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.market.collect_subprocess", str(tmp_path), "0.01"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 30
    while len(list(directory.glob("*.parquet"))) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "the collector subprocess wrote no files"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = ParquetStore(tmp_path)
    for path in directory.glob("*.parquet"):
        assert pq.read_table(path).num_rows > 0
    partial = store.read(key)
    assert 4 * 60 <= len(partial) < 3 * 1440
    pd.testing.assert_frame_equal(
        partial, truth_bars(key.symbol, "ohlcv", DATA_START, DATA_START + len(partial) * MINUTE)
    )
    venue = BinanceVenue()
    collect(fake_exchange(venue), store, KILL_CONFIG, sleep=lambda _: None)
    assert venue.starts("ohlcv")[0] == DATA_START + len(partial) * MINUTE
    assert_stored_truth(store, "binanceusdm", [key.symbol], [Kind.OHLCV])


@pytest.mark.parametrize(
    ("exchange", "private_header"), [("binanceusdm", "X-MBX-APIKEY"), ("okx", "OK-ACCESS-KEY")]
)
def test_secrets_never_reach_logs_or_reprs(tmp_path, caplog, exchange, private_header):
    prefix = f"QUANTUM_{exchange.upper()}_"
    secrets = {"API_KEY": "k3y-8d1f0a", "SECRET": "s3cr3t-77aa19", "PASSWORD": "pa55-phrase-42"}
    env = {prefix + name: value for name, value in secrets.items()}
    venue, store = VENUES[exchange](), ParquetStore(tmp_path)
    venue.inject("ohlcv", requests.ConnectionError("reset"))
    config = make_config(exchange, symbols=SYMBOLS[:1], until=DATA_START + DAY)
    caplog.set_level(logging.DEBUG)

    exchange_obj = fake_exchange(venue, env=env)
    report = Collector(exchange_obj, store, config, sleep=lambda _: None).run()
    logging.getLogger("market.collector").warning("leak attempt %s", secrets["SECRET"])

    assert any(r.headers.get(private_header) == secrets["API_KEY"] for r in venue.received)
    assert "***" in caplog.text and any(r.levelno == logging.WARNING for r in caplog.records)
    credentials = load_credentials(exchange, env)
    shown = [caplog.text, *(r.getMessage() for r in caplog.records), repr(config), repr(report)]
    shown += [repr(credentials), str(credentials), repr(exchange_obj), str(exchange_obj)]
    for value in secrets.values():
        assert not any(value in text for text in shown), value


def test_credentials_come_from_dotenv_without_overriding_the_environment(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("QUANTUM_BYBIT_API_KEY=from-file\nQUANTUM_BYBIT_SECRET=file-secret\n")
    monkeypatch.setenv("QUANTUM_BYBIT_API_KEY", "from-env")

    credentials = load_credentials("bybit", dotenv_path=dotenv)

    assert credentials.api_key is not None and credentials.secret is not None
    assert credentials.api_key.get_secret_value() == "from-env"
    assert credentials.secret.get_secret_value() == "file-secret"
    assert credentials.password is None
