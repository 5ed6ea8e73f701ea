"""`quantum live` as a user runs it: replay parity with `quantum backtest`, kill -9 and
restart, the kill switch with a webhook, stop/start, W&B offline, clear errors."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.e2e.cli import quantum
from tests.http_receiver import start_receiver
from tests.unit.market.realdata import SAMPLE, needs_sample

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY_YAML = """
env_config:
  synthetic_days: 4
  synthetic_seed: 3
  env: {record_ledger: false, episode_steps: 32}
ppo: {train_batch_size: 256, minibatch_size: 128, num_epochs: 1}
rollouts: {envs_per_runner: 8}
checkpoint_every: 1
tracking: {wandb: false}
"""


def make_trader(run: Path, out: Path) -> Path:
    """A copy of ``run`` whose trade head decides from the features it sees (a briefly
    trained policy stays flat, and parity on a flat book would prove little): the last
    layer's weights redrawn to spread decisions and its bias centring them over the
    run's market. Any weights serve: parity must hold for every policy."""
    from envs.registry import make_env
    from rl.checkpoint import TrainedRun, module_path

    shutil.copytree(run, out)
    trained = TrainedRun.open(out)
    module = trained.module
    last = [m for m in module.heads.trade.modules() if isinstance(m, torch.nn.Linear)][-1]
    env = make_env({**trained.market.keys(), "env": trained.env.model_dump(), "num_envs": 256})
    obs, _ = env.reset(seed=0)
    inputs = []
    hook = last.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach()))
    torch.manual_seed(0)
    with torch.no_grad():
        module.act({k: torch.from_numpy(v) for k, v in obs.items()}, True)
        x = inputs[0].reshape(-1, inputs[0].shape[-1])
        last.weight.copy_(torch.randn_like(last.weight) / (x.std(0) + 1e-6))
        last.bias.copy_(-(x @ last.weight.T).mean(0))
    hook.remove()
    module.save_to_path(str(module_path(trained.checkpoint)))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    config = root / "tiny.yaml"
    config.write_text(TINY_YAML)
    run = root / "runs" / "tiny"
    train = quantum("train", "--config", str(config), "--steps", "256", "--out", str(run),
                    timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    return root, make_trader(run, root / "runs" / "trader")


def _live(*args: str, timeout: float = 600):
    return quantum("live", *args, timeout=timeout)


def _session(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    steps = pd.DataFrame([json.loads(x) for x in (folder / "steps.jsonl").read_text().splitlines()])
    ledger_lines = (folder / "ledger.jsonl").read_text().splitlines()
    ledger = pd.DataFrame([json.loads(x) for x in ledger_lines])
    return steps, ledger


def _assert_same_as_backtest(folder: Path, report: Path) -> int:
    steps, ledger = _session(folder)
    backtest_steps = pd.read_parquet(report / "steps.parquet")
    backtest_ledger = pd.read_parquet(report / "ledger.parquet")
    assert len(steps) == len(backtest_steps) - 1
    np.testing.assert_array_equal(steps["equity"], backtest_steps["equity"].to_numpy()[1:])
    assert len(ledger) == len(backtest_ledger)
    assert (pd.to_datetime(ledger["timestamp"]).to_numpy()
            == backtest_ledger["timestamp"].to_numpy()).all()
    for column in ("asset", "kind", "qty", "price", "fee", "spread", "impact", "funding",
                   "realized_pnl", "liquidation_fee", "bad_debt"):
        np.testing.assert_array_equal(ledger[column].to_numpy(),
                                      backtest_ledger[column].to_numpy(), err_msg=column)
    return len(ledger)


@pytest.fixture(scope="module")
def reference(runs):
    """An uninterrupted replay of the trader's untouched test part, and its backtest."""
    root, trader = runs
    folder, report = root / "sessions" / "reference", root / "backtest"
    done = _live("start", "--replay", "--model-path", str(trader), "--session-dir", str(folder),
                 "--json", "--no-wandb")
    assert done.returncode == 0, done.stdout + done.stderr
    backtest = quantum("backtest", "--model-path", str(trader), "--no-fast-path",
                       "--output-dir", str(report), "--baselines", "")
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    return folder, report, json.loads(done.stdout.splitlines()[-1])


def test_a_replay_equals_the_backtest_without_the_fast_path_bit_for_bit(runs, reference):
    folder, report, status = reference
    assert status["status"] == "finished" and status["kill_switch"] is None
    assert _assert_same_as_backtest(folder, report) >= 20  # the policy traded
    signals = (folder / "signals.jsonl").read_text().splitlines()
    assert len(signals) == status["steps"]
    # the numba twin of the default backtest agrees to float32 rounding, not to the bit
    root, trader = runs
    fast = quantum("backtest", "--model-path", str(trader), "--output-dir",
                   str(root / "backtest_fast"), "--baselines", "")
    assert fast.returncode == 0, fast.stdout + fast.stderr
    fast_equity = pd.read_parquet(root / "backtest_fast" / "steps.parquet")["equity"]
    steps, _ = _session(folder)
    np.testing.assert_allclose(steps["equity"], fast_equity.to_numpy()[1:], rtol=1e-6)


def _start_in_background(trader: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "quantum", "live", "start", "--replay", "--model-path",
         str(trader), "--session-dir", str(folder), "--no-wandb"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_for_lines(folder: Path, name: str, n: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    path = folder / name
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {n} lines (exit {process.poll()})")


def test_kill_9_at_any_bar_then_restart_gives_the_uninterrupted_session(runs, reference):
    root, trader = runs
    folder = root / "sessions" / "killed"
    for lines in (3, 17):  # kill -9 twice, at different points of the replay
        process = _start_in_background(trader, folder)
        _wait_for_lines(folder, "steps.jsonl", lines, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = _live("start", "--replay", "--session-dir", str(folder), "--json", "--no-wandb")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "finished"
    for name in ("steps.jsonl", "ledger.jsonl", "signals.jsonl"):
        assert (folder / name).read_text() == (reference[0] / name).read_text(), name


def test_stop_then_start_carries_on_with_the_same_book(runs, reference):
    root, trader = runs
    folder = root / "sessions" / "stopped"
    process = _start_in_background(trader, folder)
    _wait_for_lines(folder, "steps.jsonl", 5, process)
    stop = _live("stop", "--session-dir", str(folder))
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert process.wait(timeout=120) == 0
    status = _live("status", "--session-dir", str(folder), "--json")
    assert json.loads(status.stdout)["status"] == "stopped"
    done = _live("start", "--replay", "--session-dir", str(folder), "--no-wandb")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("steps.jsonl", "ledger.jsonl"):
        assert (folder / name).read_text() == (reference[0] / name).read_text(), name


def test_the_kill_switch_flattens_stops_alerts_and_reports(runs):
    from tests.integration.wandb_offline import history

    root, trader = runs
    folder = root / "sessions" / "tripped"
    server, got = start_receiver()
    try:
        done = _live("start", "--replay", "--model-path", str(trader), "--session-dir",
                     str(folder), "--max-drawdown", "0.003", "--alert-webhook",
                     f"http://127.0.0.1:{server.server_port}/alerts", "--json")
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout.splitlines()[-1])
    assert status["status"] == "killed" and status["positions"] == {}
    assert status["kill_switch"]["rule"] == "max_drawdown"
    assert status["kill_switch"]["value"] >= 0.003
    ((_, alert),) = got
    assert alert["kind"] == "kill_switch" and alert["rule"] == "max_drawdown"
    _, ledger = _session(folder)
    tripped = status["kill_switch"]["bar_time"]
    after = ledger[ledger["bar_time"] > tripped]
    assert set(after["kind"]) <= {"fill", "funding"} and (after["fee"] >= 0).all()
    last_signal = json.loads((folder / "signals.jsonl").read_text().splitlines()[-1])
    assert last_signal["flatten"] and last_signal["trade"] == [1, 1, 1]
    shown = _live("status", "--session-dir", str(folder), "--json")
    assert json.loads(shown.stdout) == status
    (run_file,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    rows = history(run_file)
    assert len(rows) == status["bars"] and rows[-1]["kill_switch"] == 1.0


@needs_sample
def test_a_replay_on_the_real_sample_equals_its_backtest(runs, tmp_path):
    _, trader = runs
    subset, store = tmp_path / "subset", tmp_path / "store"
    subset.mkdir()
    for asset in ("BTC", "ETH", "SOL"):
        for kind in ("ohlcv", "funding"):
            shutil.copy(SAMPLE / f"{asset}USDT_{kind}.parquet", subset)
    imported = quantum("data", "import", str(subset), "--exchange", "binanceusdm", "--label",
                       "open", "--time-unit", "datetime", "--data", str(store))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    span = ("--start", "2023-07-22T00:00:00", "--end", "2023-07-22T08:00:00")
    folder, report = tmp_path / "session", tmp_path / "report"
    done = _live("start", "--replay", "--model-path", str(trader), "--data-path", str(store),
                 "--session-dir", str(folder), *span, "--json", "--no-wandb")
    assert done.returncode == 0, done.stdout + done.stderr
    backtest = quantum("backtest", "--model-path", str(trader), "--data-path", str(store),
                       "--no-fast-path", "--output-dir", str(report), "--baselines", "", *span)
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    assert _assert_same_as_backtest(folder, report) >= 10


def test_bad_input_ends_with_one_line_and_exit_code_2(runs, tmp_path):
    _, trader = runs
    broken = tmp_path / "broken"
    broken.mkdir()
    two = tmp_path / "two_assets"
    synth = quantum("data", "synth", "--assets", "BTC,ETH", "--days", "3", "--seed", "4",
                    "--out", str(two))
    assert synth.returncode == 0, synth.stdout + synth.stderr
    train_part = json.loads((trader / "manifest.json").read_text())["splits"]["train"]
    (broken / "session.json").write_text("{half a file")
    cases = [
        (("start", "--replay", "--session-dir", str(broken)), "unreadable session state"),
        (("status", "--session-dir", str(tmp_path / "none")), "no session here"),
        (("start", "--model-path", str(trader), "--session-dir", str(tmp_path / "x")),
         "--data-path"),
        (("start", "--replay", "--model-path", str(trader), "--session-dir",
          str(tmp_path / "y"), "--data-path", str(two)), "SOL/USDT:USDT"),
        (("start", "--replay", "--model-path", str(trader), "--session-dir",
          str(tmp_path / "y"), "--start", train_part["first"], "--end", train_part["last"]),
         "overlaps the model's train"),
    ]
    for args, message in cases:
        result = _live(*args)
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "Traceback" not in output and message in " ".join(output.split()), output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "session.json").exists()


def test_live_mode_without_consent_and_a_replay_on_an_exchange_exit_2(tmp_path):
    live = quantum("live", "start", "--session-dir", str(tmp_path / "s"), "--mode", "live",
                   "--model-path", str(tmp_path / "none"), "--data-path", str(tmp_path))
    replay = quantum("live", "start", "--session-dir", str(tmp_path / "r"), "--replay",
                     "--mode", "testnet")

    assert replay.returncode == 2 and "--mode paper" in " ".join(replay.stdout.split())
    assert live.returncode == 2
    assert "--i-understand-this-trades-real-money" in " ".join(live.stdout.split())
    assert not (tmp_path / "s").exists()
