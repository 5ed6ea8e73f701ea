"""Real data first-class: `quantum train/tune/backtest/analyze-bias/serve/signal` read the
exchange a store holds without being told, take `--exchange` to pick one of several, move a
model to another venue's data when the spaces match, and end every user error with one line
and exit code 2 (no traceback)."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.e2e.cli import quantum
from tests.e2e.test_cli_train import TINY_YAML

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "realdata"
SAMPLE = SAMPLE / "binance_usdm_1m_2023-07_2023-08"
DEFAULT = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"real-data sample not found at {SAMPLE} (CI has it)"
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """`real`: an imported subset of the real sample (BTC, ETH, SOL, XRP bars and funding,
    binanceusdm only); `mixed`: the same plus a synthetic market (two exchanges)."""
    root = tmp_path_factory.mktemp("markets")
    subset = root / "subset"
    subset.mkdir()
    for asset in ("BTC", "ETH", "SOL", "XRP"):
        for kind in ("ohlcv", "funding"):
            shutil.copy(SAMPLE / f"{asset}USDT_{kind}.parquet", subset)
    real, mixed = root / "real", root / "mixed"
    imported = quantum("data", "import", str(subset), "--exchange", "binanceusdm", "--label",
                       "open", "--time-unit", "datetime", "--data", str(real))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    shutil.copytree(real, mixed)
    synth = quantum("data", "synth", "--days", "6", "--seed", "2", "--out", str(mixed))
    assert synth.returncode == 0, synth.stdout + synth.stderr
    config = root / "tiny.yaml"
    config.write_text(TINY_YAML + "tracking: {wandb: false}\n")
    return root, real, mixed, config


@pytest.fixture(scope="module")
def synthetic_run(stores):
    """A tiny policy trained on the mixed store's synthetic market (--exchange synthetic)."""
    root, _, mixed, config = stores
    run = root / "runs" / "synthetic"
    trained = quantum("train", "--config", str(config), "--data", str(mixed), "--exchange",
                      "synthetic", "--steps", "256", "--out", str(run), timeout=600)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return run


def _one_line_error(result) -> str:
    """The command's error line; the command ended with exit code 2 and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


@needs_sample
def test_train_on_an_imported_real_store_reads_its_only_exchange(stores):
    root, real, _, config = stores
    run = root / "runs" / "real"

    result = quantum("train", "--config", str(config), "--data", str(real), "--steps", "256",
                     "--set", "env_config.end=2023-07-25", "--out", str(run),
                     timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "256 env steps" in result.stdout
    env = yaml.safe_load((run / "config.yaml").read_text())["env_config"]
    assert env["exchange"] == "binanceusdm"
    assert env["symbols"] == DEFAULT  # the defaults are stored (XRP too): they are kept
    assert "synthetic_days" not in env
    # import -> train -> backtest: by default on the run's untouched test part
    out = root / "real_backtest"
    backtest = quantum("backtest", "--model-path", str(run), "--data-path", str(real),
                       "--baselines", "flat", "--output-dir", str(out), timeout=600)
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    assert "sample: out of sample" in backtest.stdout
    test_part = json.loads((run / "manifest.json").read_text())["splits"]["test"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sample"]["span"][0] == test_part["first"]


@needs_sample
def test_a_store_with_two_exchanges_and_no_choice_is_refused_listing_both(stores):
    root, _, mixed, config = stores
    run = root / "runs" / "refused"

    result = quantum("train", "--config", str(config), "--data", str(mixed), "--out", str(run))

    line = _one_line_error(result)
    assert "several exchanges (binanceusdm, synthetic)" in line and "--exchange" in line
    assert not run.exists()


@needs_sample
def test_a_synthetic_trained_model_backtests_on_real_data(stores, synthetic_run):
    root, _, mixed, _ = stores
    out = root / "on_real"

    result = quantum("backtest", "--model-path", str(synthetic_run), "--data-path", str(mixed),
                     "--exchange", "binanceusdm", "--last-days", "1", "--baselines", "flat",
                     "--output-dir", str(out), timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"market: binanceusdm {', '.join(DEFAULT)} under {mixed}" in result.stdout
    steps = pd.read_parquet(out / "steps.parquet")
    assert steps.index[0] >= pd.Timestamp("2023-08-15", tz="UTC")  # the real sample's end
    assert steps.index[-1] <= pd.Timestamp("2023-08-17 12:00", tz="UTC")


@needs_sample
def test_bias_analysis_of_a_synthetic_model_on_the_real_store(stores, synthetic_run):
    root, real, _, _ = stores
    out = root / "bias_on_real"

    result = quantum("analyze-bias", "--model-path", str(synthetic_run), "--data-path", str(real),
                     "--num-samples", "40", "--start", "2023-08-10",
                     "--output-dir", str(out), timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "market: binanceusdm" in result.stdout
    assert list(pd.read_csv(out / "bias_summary.csv")["asset"]) == ["BTC", "ETH", "SOL"]


@needs_sample
def test_a_model_on_data_of_another_shape_is_refused_naming_both_shapes(stores, synthetic_run):
    root, real, _, _ = stores

    result = quantum("backtest", "--model-path", str(synthetic_run), "--data-path", str(real),
                     "--symbols", "BTC,ETH", "--output-dir", str(root / "nope"))

    line = _one_line_error(result)
    assert re.search(r"model expects market \(\d+, 3, \d+\)", line), line
    assert re.search(r"env produces market \(\d+, 2, \d+\)", line), line
    assert not (root / "nope").exists()


USER_ERRORS = {
    "train-missing-store": (
        ("train", "--data", "{root}/nowhere", "--out", "{out}"), "no market data under"),
    "train-unknown-exchange": (
        ("train", "--data", "{real}", "--exchange", "okx", "--out", "{out}"),
        "no okx bars under {real}; it holds: binanceusdm"),
    "train-exchange-without-store": (
        ("train", "--exchange", "okx", "--out", "{out}"), "give the store with --data"),
    "train-missing-symbols": (
        ("train", "--data", "{real}", "--set", "env_config.symbols=[DOGE/USDT:USDT]",
         "--out", "{out}"),
        "no 1m bars of DOGE/USDT:USDT; stored: BTC/USDT:USDT, ETH/USDT:USDT, SOL/USDT:USDT, "
        "XRP/USDT:USDT"),
    "train-bad-set-key": (
        ("train", "--set", "ppo.learning_rate=0.1", "--out", "{out}"),
        "unknown config key 'ppo.learning_rate'"),
    "train-bad-set-value": (
        ("train", "--set", "ppo.lr=[", "--out", "{out}"), "--set ppo.lr=[: the value is not YAML"),
    "train-config-unknown-key": (
        ("train", "--config", "{root}/unknown_key.yaml", "--out", "{out}"),
        "unknown_key.yaml: ppo.learning_rate: Extra inputs are not permitted"),
    "train-config-not-yaml": (
        ("train", "--config", "{root}/broken.yaml", "--out", "{out}"),
        "broken.yaml is not valid YAML"),
    "train-config-missing": (
        ("train", "--config", "{root}/missing.yaml", "--out", "{out}"), "no config file"),
    "tune-two-exchanges": (
        ("tune", "--data", "{mixed}", "--out", "{out}"),
        "several exchanges (binanceusdm, synthetic)"),
    "backtest-two-exchanges": (
        ("backtest", "--policy", "flat", "--data-path", "{mixed}", "--output-dir", "{out}"),
        "several exchanges (binanceusdm, synthetic)"),
    "backtest-unknown-exchange": (
        ("backtest", "--policy", "flat", "--data-path", "{real}", "--exchange", "okx",
         "--output-dir", "{out}"), "it holds: binanceusdm"),
    "backtest-missing-symbols": (
        ("backtest", "--policy", "flat", "--data-path", "{real}", "--symbols", "DOGE",
         "--output-dir", "{out}"), "no 1m bars of DOGE/USDT:USDT"),
    "analyze-bias-missing-model": (
        ("analyze-bias", "--model-path", "{root}/no_run", "--data-path", "{real}",
         "--output-dir", "{out}"), "no checkpoint at"),
    "serve-exchange-without-store": (
        ("serve", "--model-path", "{root}", "--exchange", "okx"),
        "give the store with --data-path"),
    "serve-missing-store": (
        ("serve", "--model-path", "{root}", "--data-path", "{root}/nowhere"),
        "no market data under"),
    "signal-two-exchanges": (
        ("signal", "--data-path", "{mixed}"), "several exchanges (binanceusdm, synthetic)"),
    "signal-unknown-exchange": (
        ("signal", "--data-path", "{real}", "--exchange", "okx"), "it holds: binanceusdm"),
}


@needs_sample
@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors_end_with_one_line_and_exit_code_2(stores, case):
    root, real, mixed, _ = stores
    (root / "unknown_key.yaml").write_text("ppo: {learning_rate: 0.1}\n")
    (root / "broken.yaml").write_text("ppo: [\n")
    out = root / "errors" / case
    args, expected = USER_ERRORS[case]
    names = {"root": root, "real": real, "mixed": mixed, "out": out}

    result = quantum(*(a.format(**names) for a in args))

    assert expected.format(**names) in _one_line_error(result)
    assert not out.exists()  # refused before anything was written
