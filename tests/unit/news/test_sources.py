"""Market-wide feature sources: parsing recorded payloads, the publication rules worked by
hand, no look-ahead under perturbation, the parquet store's merge and crash rules, and the
`quantum news sources` commands (fetch against a loopback HTTP server)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from pydantic import ValidationError
from typer.testing import CliRunner

from news.align import visible_bars
from news.cli import build_app
from news.sources import (
    SOURCES,
    BtcTransactions,
    FearGreed,
    FearGreedConfig,
    MissingSourceError,
    OnchainConfig,
    SourceStoreError,
    align_source,
    get_source,
    read_observations,
    source_features,
    source_path,
    write_observations,
)
from quantum.cli import app as quantum_app

FIXTURES = Path(__file__).parent / "fixtures"
FNG_FILE = FIXTURES / "fear_greed_2026-09-25.json"
TX_FILE = FIXTURES / "blockchain_n_transactions_constructed.json"
WIDE = {"COLUMNS": "220"}
DAY = 86_400


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def fng_payload(values: list[int], start: str = "2023-07-01") -> dict:
    """A Fear & Greed payload in the API's shape: newest first, numbers as strings."""
    first = int(utc(start).timestamp())
    data = [{"value": str(v), "value_classification": "Neutral", "timestamp": str(first + i * DAY)}
            for i, v in enumerate(values)][::-1]
    data[0]["time_until_update"] = "3600"
    return {"name": "Fear and Greed Index", "data": data, "metadata": {"error": None}}


def tx_payload(counts: list[float], start: str = "2023-07-01") -> dict:
    first = int(utc(start).timestamp())
    return {"status": "ok", "name": "Confirmed Transactions Per Day", "unit": "Transactions",
            "period": "day", "description": "The number of daily confirmed Bitcoin transactions.",
            "values": [{"x": first + i * DAY, "y": float(c)} for i, c in enumerate(counts)]}


def minute_bars(first_close: str, count: int) -> pd.DatetimeIndex:
    return pd.date_range(utc(first_close), periods=count, freq="1min")


def run(app, *args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


# --- parsing the recorded payloads -------------------------------------------------------


def test_the_recorded_fear_greed_response_parses_to_dated_observations():
    observations = FearGreed().parse(FNG_FILE.read_bytes())

    assert list(observations.columns) == ["time", "first_seen", "value"]
    assert list(observations["time"]) == [utc("2026-09-24"), utc("2026-09-25")]
    assert list(observations["first_seen"]) == [utc("2026-09-24 01:00"), utc("2026-09-25 01:00")]
    assert list(observations["value"]) == [71.0, 71.0]


def test_the_transactions_payload_parses_and_each_day_is_seen_after_it_ends():
    observations = BtcTransactions().parse(TX_FILE.read_bytes())

    assert len(observations) == 30
    assert observations["time"].is_monotonic_increasing
    first = observations.iloc[0]
    assert (first["time"], first["first_seen"], first["value"]) == (
        utc("2024-05-01"), utc("2024-05-02 03:00"), 478881.0)
    assert observations.iloc[-1]["value"] == 510417.0


def test_the_default_urls_are_the_documented_endpoints():
    assert FearGreed().url == "https://api.alternative.me/fng/?limit=0&format=json"
    assert BtcTransactions().url == ("https://api.blockchain.info/charts/n-transactions"
                                     "?timespan=all&format=json&sampled=false")
    assert set(SOURCES) == {"fear_greed", "btc_transactions"}


@pytest.mark.parametrize(("payload", "message"), [
    (b'{"name": "Fear and Greed Index", "data": [{"value": "40", "timest', "not valid JSON"),
    (b"<html>502 Bad Gateway</html>", "not valid JSON"),
    (b"[1, 2]", "JSON list, expected an object"),
    ({"name": "x", "metadata": {"error": None}}, "no 'data' list"),
    ({"data": [], "metadata": {"error": None}}, "holds no observations"),
    ({"data": [{"value": "abc", "timestamp": "1690243200"}]}, "data[0] 'value' is not a number"),
    ({"data": [{"value": "40"}]}, "data[0] has no 'timestamp'"),
    ({"data": [{"value": "140", "timestamp": "1690243200"}]}, "outside 0..100"),
    ({"data": [{"value": "40", "timestamp": "soon"}]}, "'timestamp' is not a number"),
    ({"data": [{"value": "40", "timestamp": "1690243200"},
               {"value": "41", "timestamp": "1690243200"}]},
     "lists 2023-07-25 00:00:00+00:00 twice"),
    ({"data": [], "metadata": {"error": "Rate limited"}},
     "the API reported an error: Rate limited"),
])
def test_a_bad_fear_greed_payload_is_a_value_error_naming_the_problem(payload, message):
    with pytest.raises(ValueError, match="fear_greed") as caught:
        FearGreed().parse(payload)
    assert message in str(caught.value)


@pytest.mark.parametrize(("change", "message"), [
    ({"status": "error"}, "status is 'error', not 'ok'"),
    ({"period": "hour"}, "period is 'hour', not 'day'"),
    ({"values": [{"x": 1690243200}]}, "values[0] has no 'y'"),
    ({"values": [{"x": 1690243200, "y": "many"}]}, "values[0] 'y' is not a number"),
    ({"values": [{"x": 1690243200, "y": -1.0}]}, "values[0] 'y' is negative"),
    ({"values": [{"x": 1690243200.5, "y": 1.0}]}, "not whole Unix seconds"),
    ({"values": {"x": 1}}, "no 'values' list"),
])
def test_a_bad_transactions_payload_is_a_value_error_naming_the_problem(change, message):
    payload = {**tx_payload([1.0, 2.0]), **change}

    with pytest.raises(ValueError, match="btc_transactions") as caught:
        BtcTransactions().parse(payload)
    assert message in str(caught.value)


def test_configs_are_frozen_typed_and_refuse_a_negative_lag():
    config = FearGreedConfig(publication_lag=timedelta(hours=2))

    with pytest.raises(ValidationError):
        config.publication_lag = timedelta(0)  # type: ignore[misc]
    with pytest.raises(ValidationError, match="look-ahead"):
        OnchainConfig(publication_lag=timedelta(hours=-1))
    with pytest.raises(ValidationError, match="extra"):
        FearGreedConfig(lag=3)
    with pytest.raises(TypeError, match="FearGreedConfig"):
        FearGreed(OnchainConfig())


# --- visibility rules, worked by hand ----------------------------------------------------


def test_fear_greed_golden_visibility_with_one_minute_bars():
    """Stamped 2023-07-25 00:00 with a 1 h lag: first seen 01:00. The bar closing at 01:00
    exactly does not see it (visible only from a close strictly after first_seen); the bar
    closing at 01:01 does. Before it, the 07-24 value (60, seen since 07-24 01:00) holds:
    (60 - 50) / 50 = 0.2, then (40 - 50) / 50 = -0.2."""
    source = FearGreed(FearGreedConfig(publication_lag=timedelta(hours=1)))
    observations = source.parse(fng_payload([60, 40], start="2023-07-24"))
    bars = minute_bars("2023-07-25 00:59", 3)  # closes 00:59, 01:00, 01:01

    features = source.features(observations, bars)

    assert features.dtype == np.float32 and features.shape == (3, 1)
    np.testing.assert_allclose(features[:, 0], [0.2, 0.2, -0.2], rtol=1e-6)


def test_before_the_first_visible_value_the_feature_is_zero():
    source = FearGreed()
    observations = source.parse(fng_payload([90], start="2023-07-25"))

    features = source.features(observations, minute_bars("2023-07-25 00:58", 4))

    np.testing.assert_allclose(features[:, 0], [0.0, 0.0, 0.0, 0.8], rtol=1e-6)


def test_transactions_golden_visibility_and_log_change():
    """Counts of 07-22, 07-23 and 07-24 (x = day start). Day 07-24 ends at 07-25 00:00;
    with a 3 h lag its count is seen at 03:00, so the bar closing at 03:00 still shows the
    07-23 count and the one closing at 03:01 the 07-24 one. With trailing = 2:
    07-23: log1p(200) - log1p(100);  07-24: log1p(400) - log1p(mean(100, 200) = 150)."""
    source = BtcTransactions(OnchainConfig(trailing=2))
    observations = source.parse(tx_payload([100.0, 200.0, 400.0], start="2023-07-22"))
    assert observations.iloc[-1]["first_seen"] == utc("2023-07-25 03:00")

    features = source.features(observations, minute_bars("2023-07-25 02:59", 3))

    before = np.log1p(200.0) - np.log1p(100.0)
    after = np.log1p(400.0) - np.log1p(150.0)
    np.testing.assert_allclose(features[:, 0], [before, before, after], rtol=1e-6)


def test_the_first_transactions_count_has_no_history_and_reads_zero():
    source = BtcTransactions()
    observations = source.parse(tx_payload([5e5], start="2023-07-22"))

    features = source.features(observations, pd.DatetimeIndex([utc("2023-07-24")]))

    assert features.tolist() == [[0.0]]


def test_align_source_uses_the_news_visibility_rule():
    observations = pd.DataFrame({
        "time": [utc("2024-01-01"), utc("2024-01-02")],
        "first_seen": [utc("2024-01-01 12:00"), utc("2024-01-02 12:00")],
        "value": [1.0, 2.0],
    })
    bars = pd.date_range(utc("2024-01-01 06:00"), periods=8, freq="6h")

    aligned = align_source(observations, bars, ["value"])

    seen = pd.DatetimeIndex(observations["first_seen"]).as_unit("ns").asi8
    assert visible_bars(seen, bars.as_unit("ns").asi8).tolist() == [2, 6]
    assert aligned[:, 0].tolist() == [0, 0, 1, 1, 1, 1, 2, 2]


# --- no look-ahead ----------------------------------------------------------------------


def random_observations(rng: np.random.Generator, days: int, scale: float) -> pd.DataFrame:
    time = pd.date_range(utc("2024-01-01"), periods=days, freq="1D")
    jitter = pd.to_timedelta(rng.integers(0, 48 * 60, days), unit="min")  # out of order too
    return pd.DataFrame({"time": time, "first_seen": time + pd.Timedelta(hours=1) + jitter,
                         "value": rng.uniform(1.0, scale, days)})


@pytest.mark.parametrize("source", [FearGreed(), BtcTransactions()], ids=lambda s: s.name)
def test_observations_visible_only_after_bar_t_change_nothing_up_to_t(source):
    rng = np.random.default_rng(7)
    observations = random_observations(rng, 40, 100.0)
    bars = pd.date_range(utc("2023-12-31 20:00"), utc("2024-02-12"), freq="90min")
    base = source.features(observations, bars)
    closes = bars.as_unit("ns").asi8
    assert np.abs(base).sum() > 0

    for t in rng.integers(0, len(bars) - 1, 12):
        late = (pd.DatetimeIndex(observations["first_seen"]).as_unit("ns").asi8 >= closes[t])
        changed = observations.copy()
        changed.loc[late, "value"] = rng.uniform(1.0, 100.0, int(late.sum()))
        backfill = pd.DataFrame({  # older periods, published only after bar t
            "time": pd.date_range(utc("2023-12-01"), periods=5, freq="1D"),
            "first_seen": [bars[t] + pd.Timedelta(minutes=m) for m in (0, 1, 30, 600, 6000)],
            "value": rng.uniform(1.0, 100.0, 5),
        })
        perturbed = pd.concat([changed, backfill], ignore_index=True)

        after = source.features(perturbed, bars)

        np.testing.assert_array_equal(after[: t + 1], base[: t + 1])


def test_a_back_filled_gap_reaches_only_bars_after_it_is_seen():
    """Day 2 arrives late: until it is seen the log-change of day 3 is against day 1 alone;
    after it, against the mean of days 1 and 2."""
    source = BtcTransactions(OnchainConfig(trailing=7))
    observations = pd.DataFrame({
        "time": [utc("2024-01-01"), utc("2024-01-02"), utc("2024-01-03")],
        "first_seen": [utc("2024-01-02 03:00"), utc("2024-01-10 00:00"), utc("2024-01-04 03:00")],
        "value": [100.0, 300.0, 200.0],
    })
    bars = pd.DatetimeIndex([utc("2024-01-05"), utc("2024-01-10"), utc("2024-01-11")])

    features = source.features(observations, bars)[:, 0]

    np.testing.assert_allclose(features, [np.log1p(200.0) - np.log1p(100.0)] * 2
                               + [np.log1p(200.0) - np.log1p(200.0)], atol=1e-7)


def test_bars_must_increase_and_naive_bars_are_utc():
    observations = FearGreed().parse(fng_payload([80], start="2024-01-01"))
    naive = pd.DatetimeIndex(["2024-01-01 00:30", "2024-01-01 01:30"])

    assert FearGreed().features(observations, naive)[:, 0].tolist() == pytest.approx([0, 0.6])
    with pytest.raises(ValueError, match="increase"):
        FearGreed().features(observations, naive[::-1])


# --- store --------------------------------------------------------------------------------


def test_store_round_trip(tmp_path):
    observations = BtcTransactions().parse(TX_FILE.read_bytes())

    result = write_observations(tmp_path, "btc_transactions", observations)

    assert (result.offered, result.added, result.total) == (30, 30, 30)
    assert result.path == tmp_path / "sources" / "source=btc_transactions" / "data.parquet"
    back = read_observations(tmp_path, "btc_transactions")
    pd.testing.assert_frame_equal(back, observations, check_dtype=False)
    assert str(back["time"].dtype) == "datetime64[ms, UTC]"


def test_merge_dedups_by_time_keeping_the_earliest_first_seen(tmp_path):
    source = FearGreed()
    write_observations(tmp_path, "fear_greed", source.parse(fng_payload([10, 20, 30])))
    revised = source.parse(fng_payload([11, 21, 31, 41]))  # same rule, revised values
    earlier = revised.iloc[[1]].assign(first_seen=revised["first_seen"].iloc[1]
                                       - pd.Timedelta(minutes=30), value=99.0)

    first = write_observations(tmp_path, "fear_greed", revised)
    second = write_observations(tmp_path, "fear_greed", earlier)

    stored = read_observations(tmp_path, "fear_greed")
    assert (first.added, first.total, second.added, second.total) == (1, 4, 0, 4)
    assert stored["value"].tolist() == [10.0, 99.0, 30.0, 41.0]
    assert stored["first_seen"].iloc[1] == utc("2023-07-02 00:30")
    assert stored["time"].is_unique


def test_a_damaged_store_file_is_reported_and_never_overwritten(tmp_path):
    observations = FearGreed().parse(FNG_FILE.read_bytes())
    path = source_path(tmp_path, "fear_greed")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 torn")

    with pytest.raises(SourceStoreError, match=f"cannot read source file {path}"):
        write_observations(tmp_path, "fear_greed", observations)
    with pytest.raises(SourceStoreError, match="damaged"):
        read_observations(tmp_path, "fear_greed")
    assert path.read_bytes() == b"PAR1 torn"


def test_a_killed_writers_temp_file_is_cleared_by_the_next_write(tmp_path):
    observations = FearGreed().parse(FNG_FILE.read_bytes())
    leftover = source_path(tmp_path, "fear_greed").parent / ".0123abcd.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")

    write_observations(tmp_path, "fear_greed", observations)

    assert not leftover.exists()
    assert len(read_observations(tmp_path, "fear_greed")) == 2


def test_observations_with_other_columns_are_refused_before_writing(tmp_path):
    write_observations(tmp_path, "fear_greed", FearGreed().parse(FNG_FILE.read_bytes()))
    path = source_path(tmp_path, "fear_greed")
    before = path.read_bytes()
    odd = FearGreed().parse(FNG_FILE.read_bytes()).rename(columns={"value": "score"})

    with pytest.raises(SourceStoreError, match="columns"):
        write_observations(tmp_path, "fear_greed", odd)
    with pytest.raises(ValueError, match="non-finite"):
        write_observations(tmp_path, "fear_greed",
                           FearGreed().parse(FNG_FILE.read_bytes()).assign(value=np.nan))
    assert path.read_bytes() == before


# --- source_features (the env's entry point) ----------------------------------------------


def test_source_features_stacks_the_named_sources_in_order(tmp_path):
    write_observations(tmp_path, "fear_greed", FearGreed().parse(fng_payload([25, 75])))
    write_observations(tmp_path, "btc_transactions",
                       BtcTransactions().parse(tx_payload([100.0, 110.0])))
    bars = pd.date_range(utc("2023-07-01"), utc("2023-07-04"), freq="1h")

    names, values = source_features(["btc_transactions", "fear_greed"], str(tmp_path), bars)

    assert names == ("src_btc_transactions", "src_fear_greed")
    assert values.shape == (len(bars), 2) and values.dtype == np.float32
    assert values[-1].tolist() == pytest.approx([np.log1p(110.0) - np.log1p(100.0), 0.5])
    assert source_features([], str(tmp_path), bars)[1].shape == (len(bars), 0)


def test_source_features_names_the_command_that_fills_a_missing_store(tmp_path):
    bars = pd.date_range(utc("2023-07-01"), periods=3, freq="1h")

    with pytest.raises(MissingSourceError) as caught:
        source_features(["fear_greed"], str(tmp_path), bars)

    message = str(caught.value)
    assert "no observations of source 'fear_greed'" in message
    assert f"quantum news sources fetch --source fear_greed --data {tmp_path}" in message
    with pytest.raises(ValueError, match="unknown source 'vix': use one of fear_greed"):
        source_features(["vix"], str(tmp_path), bars)
    with pytest.raises(ValueError, match="named twice"):
        source_features(["fear_greed", "fear_greed"], str(tmp_path), bars)


def test_source_features_takes_per_source_settings(tmp_path):
    write_observations(tmp_path, "btc_transactions",
                       BtcTransactions().parse(tx_payload([100.0, 300.0, 200.0])))
    bars = pd.DatetimeIndex([utc("2023-07-05")])
    short = {"btc_transactions": OnchainConfig(trailing=1)}

    default = source_features(["btc_transactions"], str(tmp_path), bars)[1]
    one_day = source_features(["btc_transactions"], str(tmp_path), bars, short)[1]

    assert default[:, 0].tolist() == pytest.approx([np.log1p(200.0) - np.log1p(200.0)])
    assert one_day[:, 0].tolist() == pytest.approx([np.log1p(200.0) - np.log1p(300.0)])
    assert get_source("btc_transactions", OnchainConfig(trailing=1)).window == 2


# --- CLI ----------------------------------------------------------------------------------


def test_cli_import_then_show(tmp_path):
    app = build_app()

    imported = run(app, "sources", "import", "--source", "fear_greed", "--file", str(FNG_FILE),
                   "--data", str(tmp_path))
    again = run(app, "sources", "import", "--source", "fear_greed", "--file", str(FNG_FILE),
                "--data", str(tmp_path))
    shown = run(app, "sources", "show", "--data", str(tmp_path), "--source", "fear_greed")

    assert imported.exit_code == 0, imported.output
    assert "fear_greed: 2 observation(s) read from" in imported.output
    assert "(2026-09-24 to 2026-09-25), 2 new; 2 stored" in imported.output
    assert "0 new; 2 stored" in again.output
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if "fear_greed" in line
               and "2026-09-24" in line)
    for cell in ("2026-09-24", "2026-09-25", "71", "2026-09-25 01:00"):
        assert cell in row
    assert "latest 2 of fear_greed" in shown.output


def test_cli_show_lists_every_stored_source_or_says_none(tmp_path):
    app = build_app()
    assert f"no source observations stored under {tmp_path}" in run(
        app, "sources", "show", "--data", str(tmp_path)).output
    run(app, "sources", "import", "--source", "btc_transactions", "--file", str(TX_FILE),
        "--data", str(tmp_path))
    run(app, "sources", "import", "--source", "fear_greed", "--file", str(FNG_FILE),
        "--data", str(tmp_path))

    shown = run(app, "sources", "show", "--data", str(tmp_path))

    assert shown.exit_code == 0, shown.output
    assert "btc_transactions" in shown.output and "510,417" in shown.output
    assert "fear_greed" in shown.output and "2024-05-30" in shown.output


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],  # a half-written download
    lambda text: text.replace('"71"', '"seventy-one"', 1),
    lambda text: text.replace('"timestamp"', '"time"', 1),
])
def test_a_bad_payload_exits_2_and_leaves_the_store_unchanged(tmp_path, damage):
    app = build_app()
    run(app, "sources", "import", "--source", "fear_greed", "--file", str(FNG_FILE),
        "--data", str(tmp_path))
    path = source_path(tmp_path, "fear_greed")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    bad = tmp_path / "bad.json"
    bad.write_text(damage(FNG_FILE.read_text()))

    result = run(app, "sources", "import", "--source", "fear_greed", "--file", str(bad),
                 "--data", str(tmp_path))

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fear_greed: ")
    assert lines[0].endswith("nothing was stored")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_cli_refuses_an_unknown_source_and_a_missing_file(tmp_path):
    app = build_app()

    unknown = run(app, "sources", "import", "--source", "vix", "--file", str(FNG_FILE),
                  "--data", str(tmp_path))
    missing = run(app, "sources", "import", "--source", "fear_greed", "--file",
                  str(tmp_path / "nope.json"), "--data", str(tmp_path))
    no_store = run(app, "sources", "show", "--data", str(tmp_path), "--source", "fear_greed")

    assert unknown.exit_code == 2 and "unknown source 'vix'" in unknown.output
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert no_store.exit_code == 2 and "quantum news sources fetch" in no_store.output
    assert not (tmp_path / "sources").exists()


class _Recorded(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the class's status and body; remembers the paths asked."""

    status = 200
    body = b""
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recorded]]]:
    handler = type("Handler", (_Recorded,), {"paths": [], "body": FNG_FILE.read_bytes()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/fng/?limit=0&format=json", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def local_session() -> requests.Session:
    """A real session that ignores proxy settings from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def test_cli_fetch_reads_over_http_and_stores(tmp_path, server):
    url, handler = server

    result = run(build_app(local_session), "sources", "fetch", "--source", "fear_greed",
                 "--data", str(tmp_path), "--url", url)

    assert result.exit_code == 0, result.output
    assert handler.paths == ["/fng/?limit=0&format=json"]
    assert f"2 observation(s) read from {url}" in result.output
    assert read_observations(tmp_path, "fear_greed")["value"].tolist() == [71.0, 71.0]


def test_cli_fetch_reports_an_http_error_status(tmp_path, server):
    url, handler = server
    handler.status, handler.body = 503, b"busy"

    result = run(build_app(local_session), "sources", "fetch", "--source", "fear_greed",
                 "--data", str(tmp_path), "--url", url)

    assert result.exit_code == 2
    assert f"error: fear_greed: HTTP 503 Service Unavailable from {url}" in result.output
    assert not (tmp_path / "sources").exists()


def test_cli_fetch_network_failure_is_one_clear_error_and_exit_2(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/charts/n-transactions"

    result = run(build_app(local_session), "sources", "fetch", "--source",
                 "btc_transactions", "--data", str(tmp_path), "--url", url)

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: btc_transactions: cannot fetch {url} (ConnectionError")
    assert "quantum news sources import --source btc_transactions --file SAVED.json" in lines[0]
    assert not (tmp_path / "sources").exists()


def test_sources_are_registered_on_the_quantum_command():
    result = CliRunner().invoke(quantum_app, ["news", "sources", "--help"], env=WIDE)

    assert result.exit_code == 0, result.output
    for command in ("import", "fetch", "show"):
        assert command in result.output


def test_the_recorded_fixture_keeps_the_api_field_formats():
    document = json.loads(FNG_FILE.read_text())

    newest, older = document["data"]
    assert all(isinstance(e["value"], str) and isinstance(e["timestamp"], str)
               for e in (newest, older))
    assert "time_until_update" in newest and "time_until_update" not in older
    assert document["metadata"] == {"error": None}
