"""`quantum serve` and `quantum signal` as a user runs them (the quickstart's last step)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.e2e.cli import quantum
from tests.e2e.test_cli_backtest import TINY_YAML
from tests.integration.serving_fixtures import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_serve_answers_a_signal_on_the_latest_bars_and_stops_cleanly(tmp_path):
    data, run = tmp_path / "data", tmp_path / "runs" / "tiny"
    synth = quantum("data", "synth", "--days", "3", "--seed", "8", "--out", str(data))
    assert synth.returncode == 0, synth.stdout + synth.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    trained = quantum("train", "--config", str(config), "--data", str(data), "--steps", "256",
                      "--out", str(run), timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"QUANTUM_API_KEYS": "e2e-key-0123456789abcdef", "COLUMNS": "250",
                "NO_COLOR": "1", "WANDB_MODE": "offline"})  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "quantum", "serve", "--model-path", str(run), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        asked = subprocess.run(
            [sys.executable, "-m", "quantum", "signal", "--data-path", str(data), "--url",
             f"http://127.0.0.1:{port}", "--wait", "240"],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        log, _ = server.communicate(timeout=120)

    assert asked.returncode == 0, asked.stdout + asked.stderr
    body = json.loads(asked.stdout)
    assert [s["asset"] for s in body["signals"]] == ["BTC", "ETH", "SOL"]
    assert body["data_timestamp"].startswith("20") and body["model_id"].startswith("tiny@")
    assert server.returncode == 0, log[-3000:]
    assert "shutting down" in log
    assert "e2e-key" not in log  # the key never reaches the service's output
