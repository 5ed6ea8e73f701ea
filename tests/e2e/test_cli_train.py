"""`quantum train` as a user runs it: a subprocess on stored data, a YAML config, resume."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY_YAML = """
env_config:
  env: {record_ledger: false, episode_steps: 32}
ppo: {train_batch_size: 256, minibatch_size: 128, num_epochs: 1}
rollouts: {envs_per_runner: 8}
checkpoint_every: 1
"""


def quantum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantum", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
            "COLUMNS": "250", "NO_COLOR": "1", "WANDB_MODE": "offline",
        },
    )  # fmt: skip


def test_train_on_stored_data_prints_a_summary_and_resumes(tmp_path):
    data = tmp_path / "data"
    synth = quantum("data", "synth", "--days", "4", "--seed", "2", "--out", str(data))
    assert synth.returncode == 0, synth.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    run = tmp_path / "runs" / "cli"

    first = quantum("train", "--config", str(config), "--data", str(data), "--steps", "256",
                    "--out", str(run), "--no-wandb")  # fmt: skip
    resumed = quantum("train", "--config", str(config), "--data", str(data), "--steps", "512",
                      "--out", str(run), "--no-wandb", "--resume")  # fmt: skip

    assert first.returncode == 0, first.stdout + first.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "256 env steps" in first.stdout and "512 env steps" in resumed.stdout
    assert "trading/return" in first.stdout and "checkpoint" in first.stdout
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert [r["num_env_steps_sampled_lifetime"] for r in rows] == [256, 512]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["env_config"]["data_dir"] == str(data)


def test_train_rejects_an_unknown_config_key_before_starting_ray(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("ppo: {learning_rate: 0.1}\n")

    result = quantum("train", "--config", str(config), "--out", str(tmp_path / "x"))

    assert result.returncode != 0
    assert "learning_rate" in result.stdout + result.stderr
    assert not (tmp_path / "x").exists()
