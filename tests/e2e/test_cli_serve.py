"""`quantum serve` and `quantum signal` as a user runs them (the quickstart's last step)."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from serving.auth import API_KEY_HEADER
from tests.e2e.cli import quantum
from tests.e2e.test_cli_backtest import TINY_YAML
from tests.integration.serving_fixtures import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _direct_url(server: subprocess.Popen, lines: list[str], timeout: float = 300.0) -> str:
    """Read the server's output until it prints its direct-ingress URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("direct ingress:"):
            return line.split()[2]
    raise AssertionError("no direct-ingress URL printed:\n" + "".join(lines)[-3000:])


def test_serve_answers_a_signal_on_the_latest_bars_and_stops_cleanly(tmp_path):
    """Through the proxy (what `quantum signal` uses) and, with --direct-ingress, straight
    to the ingress replica's own port: the same model answers on both."""
    data, run = tmp_path / "data", tmp_path / "runs" / "tiny"
    synth = quantum("data", "synth", "--days", "5", "--seed", "8", "--out", str(data))
    assert synth.returncode == 0, synth.stdout + synth.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    trained = quantum("train", "--config", str(config), "--data", str(data), "--steps", "256",
                      "--out", str(run), timeout=600)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    port, direct = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"QUANTUM_API_KEYS": "e2e-key-0123456789abcdef", "COLUMNS": "250",
                "NO_COLOR": "1", "WANDB_MODE": "offline"})
    server = subprocess.Popen(
        [sys.executable, "-m", "quantum", "serve", "--model-path", str(run), "--port", str(port),
         "--direct-ingress", "--direct-ports", f"{direct}-{direct}",
         "--state-dir", str(tmp_path / "state")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        direct_url = _direct_url(server, lines)
        with httpx.Client(base_url=direct_url, timeout=30,
                          headers={API_KEY_HEADER: env["QUANTUM_API_KEYS"]}) as client:
            models = client.get("/v1/models")
        asked = subprocess.run(
            [sys.executable, "-m", "quantum", "signal", "--data-path", str(data), "--url",
             f"http://127.0.0.1:{port}", "--wait", "240"],
            env=env, capture_output=True, text=True, timeout=300,
        )
    finally:
        server.send_signal(signal.SIGINT)
        rest, _ = server.communicate(timeout=120)
        log = "".join(lines) + rest

    assert asked.returncode == 0, asked.stdout + asked.stderr
    body = json.loads(asked.stdout)
    assert [s["asset"] for s in body["signals"]] == ["BTC", "ETH", "SOL"]
    assert body["data_timestamp"].startswith("20") and body["model_id"].startswith("tiny@")
    assert direct_url == f"http://127.0.0.1:{direct}"
    assert models.status_code == 200, models.text
    assert models.json()[0]["id"] == body["model_id"]
    assert server.returncode == 0, log[-3000:]
    assert "shutting down" in log
    assert "e2e-key" not in log  # the key never reaches the service's output


def test_keys_are_made_listed_and_revoked_and_the_secret_is_shown_once(tmp_path):
    state = tmp_path / "state"
    made = quantum("keys", "add", "--name", "bot", "--scopes", "trade,read", "--state-dir",
                   str(state), "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    key = json.loads(made.stdout)
    listed = quantum("keys", "list", "--state-dir", str(state), "--json")
    revoked = quantum("keys", "revoke", key["id"], "--state-dir", str(state))
    after = json.loads(quantum("keys", "list", "--state-dir", str(state), "--json").stdout)
    bad_scope = quantum("keys", "add", "--name", "x", "--scopes", "root", "--state-dir", str(state))
    unknown = quantum("keys", "revoke", "nope", "--state-dir", str(state))

    assert key["scopes"] == ["read", "trade"] and key["secret"].startswith(f"qk_{key['id']}_")
    assert listed.returncode == 0 and key["secret"] not in listed.stdout
    assert json.loads(listed.stdout) == [{k: v for k, v in key.items() if k != "secret"}]
    assert key["secret"] not in (state / "keys.json").read_text()
    assert revoked.returncode == 0 and after[0]["revoked"] is not None
    assert bad_scope.returncode == 2 and "unknown scope" in bad_scope.stdout + bad_scope.stderr
    assert unknown.returncode == 2 and "no key 'nope'" in unknown.stdout + unknown.stderr
    audit = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    assert [a["route"] for a in audit] == ["cli keys add", "cli keys revoke"]
    assert all(a["id"] == key["id"] for a in audit)
    assert key["secret"] not in (state / "audit.jsonl").read_text()


def test_serve_refuses_to_start_without_keys_and_names_a_public_bind(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("QUANTUM_API_KEYS", "QUANTUM_API_KEYS_FILE", "RAY_ADDRESS")}
    public = subprocess.run(
        [sys.executable, "-m", "quantum", "serve", "--model-path", str(run), "--host", "0.0.0.0",
         "--state-dir", str(tmp_path / "state")],
        env={**env, "COLUMNS": "250", "NO_COLOR": "1"}, capture_output=True, text=True,
        timeout=120,
    )

    out = public.stdout + public.stderr
    assert public.returncode == 2, out
    assert "no API keys" in out and "refuses to bind 0.0.0.0" in out
