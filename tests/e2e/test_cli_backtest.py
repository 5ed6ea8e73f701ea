"""`quantum backtest` and `quantum analyze-bias` as a user runs them, on a short trained model:
the report (HTML, plots, metrics, ledger), walk-forward, bias outputs, clear errors."""

import json
import struct
from html.parser import HTMLParser

import pandas as pd
import pytest

from envs.config import EnvConfig
from tests.e2e.cli import quantum

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY_YAML = """
env_config:
  env: {record_ledger: false, episode_steps: 32}
ppo: {train_batch_size: 256, minibatch_size: 128, num_epochs: 1}
rollouts: {envs_per_runner: 8}
checkpoint_every: 1
tracking: {wandb: false}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-asset store, a 2-asset store, and a policy trained briefly on the first."""
    root = tmp_path_factory.mktemp("backtest")
    data, data2 = root / "data", root / "data2"
    for out, assets in ((data, "BTC,ETH,SOL"), (data2, "BTC,ETH")):
        synth = quantum("data", "synth", "--assets", assets, "--days", "4", "--seed", "4",
                        "--out", str(out))
        assert synth.returncode == 0, synth.stdout + synth.stderr
    config = root / "tiny.yaml"
    config.write_text(TINY_YAML)
    run = root / "runs" / "tiny"
    train = quantum("train", "--config", str(config), "--data", str(data), "--steps", "512",
                    "--out", str(run), timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    return root, data, data2, run


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_backtest_writes_a_report_with_plots_metrics_and_ledger(trained):
    root, data, _, run = trained
    out = root / "report"

    result = quantum("backtest", "--model-path", str(run), "--data-path", str(data),
                     "--output-dir", str(out), "--initial-capital", "250000",
                     "--commission", "0.0005", "--slippage", "0.0001", "--max-leverage", "5",
                     "--risk-free-rate", "0.02", "--benchmark", "BTC", "--n-trials", "4",
                     timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "total_return" in result.stdout and "buy_and_hold" in result.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    assert "sample: out of sample" in result.stdout  # the run's untouched test part
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    names = {src.rsplit("/", 1)[-1].removesuffix(".png") for src in parser.sources}
    assert {"equity", "drawdown", "returns", "rolling_sharpe", "positions", "regimes"} <= names
    for src in parser.sources:
        width, height = _png_size(out / src)
        assert width > 200 and height > 100, src
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sample"]["in_sample"] is False
    assert metrics["sample"]["span"][0] == manifest["splits"]["test"]["first"]
    for key in ("sharpe", "sortino", "calmar", "max_drawdown", "deflated_sharpe",
                "probabilistic_sharpe", "fees", "funding", "turnover"):
        assert key in metrics, key
    assert set(metrics["baselines"]) == {"flat", "buy_and_hold", "momentum"}
    assert metrics["baselines"]["flat"]["total_return"] == 0.0
    steps = pd.read_parquet(out / "steps.parquet")
    assert steps["equity"].iloc[0] == 250_000.0
    assert steps["leverage"].max() <= 5.0 + 1e-6
    risk = json.loads((out / "risk_report.json").read_text())
    assert {"covid_crash_2020", "ftx_collapse_2022"} <= {row["scenario"] for row in risk["stress"]}
    assert {row["method"] for row in risk["var"]} == {"historical", "parametric", "cornish_fisher"}
    assert "Stress tests on the final positions" in (out / "report.html").read_text()
    ledger = pd.read_parquet(out / "ledger.parquet")
    fills = ledger[ledger["kind"] == "fill"]
    rates = (fills["fee"] / fills["notional"]).round(10)
    # --commission sets the taker fee; a passive (limit/iceberg) fill pays the maker fee
    assert rates.isin([0.0005, EnvConfig().costs.maker_fee]).all(), rates.value_counts()
    assert (rates == 0.0005).any()


def test_a_rule_backtests_without_a_model(trained):
    root, data, _, _ = trained
    out = root / "momentum"

    result = quantum("backtest", "--policy", "momentum", "--data-path", str(data),
                     "--output-dir", str(out), "--baselines", "flat")

    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_trades"] > 0 and list(metrics["baselines"]) == ["flat"]


def test_walk_forward_trains_each_window_and_reports_them(trained):
    root, data, _, run = trained
    out = root / "walk_forward"

    result = quantum("backtest", "--model-path", str(run), "--data-path", str(data),
                     "--output-dir", str(out), "--walk-forward", "--train-bars", "1500",
                     "--test-bars", "600", "--purge-bars", "60", "--windows", "2",
                     "--train-steps", "256", "--baselines", "", timeout=900)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "window 0" in result.stdout and "window 1" in result.stdout
    assert (out / "plots" / "walk_forward.png").stat().st_size > 1000
    for k in (0, 1):
        assert (out / "training" / f"window_{k:02d}" / "checkpoints" / "final").exists()
    steps = pd.read_parquet(out / "steps.parquet")
    # two stitched test windows of 599 decisions each (fewer if one hit the drawdown limit)
    assert len(steps) <= 2 * 599 + 1 and steps.index.is_monotonic_increasing
    assert steps.index[-1] - steps.index[0] >= pd.Timedelta(minutes=600)  # window 1 is in


def test_analyze_bias_writes_distributions_per_asset(trained):
    root, data, _, run = trained
    out = root / "bias"

    result = quantum("analyze-bias", "--model-path", str(run), "--data-path", str(data),
                     "--num-samples", "200", "--output-dir", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    summary = pd.read_csv(out / "bias_summary.csv")
    assert list(summary["asset"]) == ["BTC", "ETH", "SOL"]
    assert (summary[["short", "flat", "long"]].sum(axis=1) == 200).all()
    assert (out / "bias_directions.png").stat().st_size > 1000


def test_a_model_for_other_assets_is_refused_with_the_mismatch_named(trained):
    root, _, data2, run = trained
    args = ("backtest", "--model-path", str(run), "--data-path", str(data2))

    missing = quantum(*args, "--output-dir", str(root / "nope"))
    other = quantum(*args, "--symbols", "BTC/USDT:USDT,ETH/USDT:USDT",
                    "--output-dir", str(root / "nope"))

    assert missing.returncode == 2 and "SOL/USDT:USDT" in missing.stdout
    assert other.returncode == 2
    assert "market" in other.stdout and "(24, 3, 12)" in other.stdout
    assert "(24, 2, 12)" in other.stdout
    assert not (root / "nope").exists()


def test_a_backtest_overlapping_the_training_span_is_refused_unless_allowed(trained):
    root, data, _, run = trained
    train_part = json.loads((run / "manifest.json").read_text())["splits"]["train"]
    args = ("backtest", "--model-path", str(run), "--data-path", str(data), "--baselines", "",
            "--start", train_part["first"], "--end", train_part["last"])

    refused = quantum(*args, "--output-dir", str(root / "refused"))
    allowed = quantum(*args, "--output-dir", str(root / "allowed"), "--allow-in-sample")

    assert refused.returncode == 2 and "Traceback" not in refused.stdout + refused.stderr
    text = " ".join(refused.stdout.split())
    assert "overlaps the model's train" in text and train_part["first"] in text
    assert not (root / "refused").exists()
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    metrics = json.loads((root / "allowed" / "metrics.json").read_text())
    assert metrics["sample"]["in_sample"] is True
    assert "IN SAMPLE" in (root / "allowed" / "report.html").read_text()
