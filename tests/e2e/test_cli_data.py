"""The `quantum data` commands as a user runs them: real subprocesses, real files."""

import pandas as pd
import pytest

from market.store import ParquetStore, SeriesKey
from tests.e2e.cli import quantum


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    result = quantum("data", "synth", "--days", "3", "--seed", "11", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_synth_writes_every_kind_for_every_asset(synth_dir):
    keys = ParquetStore(synth_dir).series()

    kinds = {(k.kind.value, k.symbol) for k in keys}

    assert kinds == {
        (kind, f"{a}/USDT:USDT")
        for kind in ("ohlcv", "mark", "funding")
        for a in ("BTC", "ETH", "SOL")
    }
    bars = ParquetStore(synth_dir).read(SeriesKey.bars("synthetic", "BTC/USDT:USDT", "1m"))
    assert len(bars) == 3 * 24 * 60


def test_summary_prints_a_row_per_asset_and_correlations(synth_dir):
    result = quantum("data", "summary", "--data", str(synth_dir))

    assert result.returncode == 0, result.stderr
    for asset in ("BTC", "ETH", "SOL"):
        assert asset in result.stdout
    assert "ann_vol_pct" in result.stdout and "correlation" in result.stdout


def test_synth_twice_with_another_seed_replaces_the_data(tmp_path):
    first = quantum("data", "synth", "--days", "1", "--seed", "1", "--out", str(tmp_path))
    before = ParquetStore(tmp_path).read(SeriesKey.bars("synthetic", "ETH/USDT:USDT", "1m"))
    second = quantum("data", "synth", "--days", "1", "--seed", "2", "--out", str(tmp_path))
    after = ParquetStore(tmp_path).read(SeriesKey.bars("synthetic", "ETH/USDT:USDT", "1m"))

    assert first.returncode == second.returncode == 0
    assert len(before) == len(after) == 1440
    assert not before["close"].equals(after["close"])


def test_validate_passes_on_good_data_and_fails_on_a_corrupt_file(synth_dir, tmp_path):
    ok = quantum("data", "validate", "--data", str(synth_dir))
    assert ok.returncode == 0, ok.stdout
    store = ParquetStore(tmp_path)
    store.replace(
        SeriesKey.bars("synthetic", "BTC/USDT:USDT", "1m"),
        ParquetStore(synth_dir).read(SeriesKey.bars("synthetic", "BTC/USDT:USDT", "1m")),
    )
    (path,) = (tmp_path / "ohlcv").rglob("*.parquet")
    path.write_bytes(path.read_bytes()[:200])

    bad = quantum("data", "validate", "--data", str(tmp_path))

    assert bad.returncode == 1
    assert "invalid" in bad.stdout and path.name in bad.stdout.replace("\n", "")


def test_bad_arguments_exit_non_zero_with_a_message(tmp_path):
    result = quantum("data", "synth", "--days", "-1", "--out", str(tmp_path))

    assert result.returncode != 0
    assert "days" in (result.stdout + result.stderr).lower()
    assert not pd.io.common.file_exists(str(tmp_path / "ohlcv"))


def test_every_command_level_has_help():
    for args in ([], ["data"], ["data", "synth"], ["data", "collect"], ["data", "summary"]):
        result = quantum(*args, "--help")
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout


def test_collect_refuses_an_unknown_exchange_and_a_reversed_span(tmp_path):
    unknown = quantum("data", "collect", "--exchange", "nosuchex", "--symbols", "BTC/USDT:USDT",
                      "--since", "2024-01-01", "--out", str(tmp_path))
    reversed_span = quantum("data", "collect", "--exchange", "binanceusdm", "--symbols",
                            "BTC/USDT:USDT", "--since", "2024-02-01", "--until", "2024-01-01",
                            "--out", str(tmp_path))

    assert unknown.returncode == 1 and "unknown ccxt exchange" in unknown.stdout
    assert reversed_span.returncode == 1 and "until" in reversed_span.stdout
    assert not (tmp_path / "ohlcv").exists()


def test_tiers_from_a_venue_without_notional_tiers_exit_2_and_write_nothing(tmp_path):
    result = quantum("data", "tiers", "--exchange", "okx", "--symbols", "BTC/USDT:USDT",
                     "--data", str(tmp_path))

    assert result.returncode == 2, result.stdout
    assert "contracts, not notional" in " ".join(result.stdout.split())
    assert not (tmp_path / "tiers").exists()
