"""`quantum train` as a user runs it: a subprocess on stored data, a YAML config, resume."""

import json

import pytest

from tests.e2e.cli import quantum

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY_YAML = """
env_config:
  env: {record_ledger: false, episode_steps: 32}
ppo: {train_batch_size: 256, minibatch_size: 128, num_epochs: 1}
rollouts: {envs_per_runner: 8}
checkpoint_every: 1
"""


def test_train_on_stored_data_prints_a_summary_and_resumes(tmp_path):
    data = tmp_path / "data"
    synth = quantum("data", "synth", "--days", "4", "--seed", "2", "--out", str(data))
    assert synth.returncode == 0, synth.stderr
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    run = tmp_path / "runs" / "cli"

    args = ("train", "--config", str(config), "--data", str(data), "--out", str(run), "--no-wandb")
    first = quantum(*args, "--steps", "256", timeout=600)
    resumed = quantum(*args, "--steps", "512", "--resume", timeout=600)

    assert first.returncode == 0, first.stdout + first.stderr
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "256 env steps" in first.stdout and "512 env steps" in resumed.stdout
    assert "trading/return" in first.stdout and "checkpoint" in first.stdout
    assert "diagnosis" in first.stdout  # rl.diagnose's verdict under the summary
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
