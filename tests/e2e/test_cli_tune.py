"""`quantum tune` killed from outside (SIGKILL of the driver and its local Ray) resumes,
applying each phase's recommendations."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rl.recommend import read_recommendations
from tests.e2e.cli import quantum

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BASE_YAML = """
env_config: {synthetic_days: 4, synthetic_seed: 3, env: {record_ledger: false}}
ppo: {train_batch_size: 512, minibatch_size: 256, num_epochs: 1}
rollouts: {envs_per_runner: 8}
checkpoint_every: 1
tracking: {wandb: false}
"""


def test_a_killed_tune_run_resumes_and_finishes_the_same_phase_sequence(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(BASE_YAML)
    out = tmp_path / "run"
    args = ["tune", "--schedule", "ci", "--phases", "1-3", "--config", str(base),
            "--out", str(out), "--use-recommendations"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    first = subprocess.Popen(
        [sys.executable, "-m", "quantum", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: the kill takes its Ray with it
    )
    try:
        deadline = time.monotonic() + 400
        summary = out / "phases.json"
        while time.monotonic() < deadline:
            done = json.loads(summary.read_text()) if summary.exists() else {}
            if "1" in done and list((out / "tune" / "phase2").glob("*/checkpoint_*")):
                break
            assert first.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("phase 2 never checkpointed")
        phase1 = json.loads(summary.read_text())["1"]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

    resumed = quantum(*args, "--resume", timeout=600)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = json.loads((out / "phases.json").read_text())
    assert [done[k]["name"] for k in ("1", "2", "3")] == [
        "foundation-1",
        "foundation-2",
        "mastery-1",
    ]
    assert done["1"] == phase1  # the finished phase was not run again
    assert len(list((out / "tune" / "phase1").glob("PPO_*"))) == 1
    assert "mastery-1" in resumed.stdout
    for phase in ("2", "3"):  # each phase ran with its predecessor's recommendations
        recommended = read_recommendations(out / f"phase{phase}_recommendations.json")
        assert done[phase]["applied_recommendations"] == recommended
