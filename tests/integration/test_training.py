"""quantum train's machinery on real local Ray: results, W&B offline, manifest rerun,
resume, two EnvRunners and checkpoint restore in a fresh process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.core.observe import N_PORTFOLIO
from envs.registry import market_for
from rl.checkpoint import RunPaths, load_module
from rl.config import TrainConfig
from rl.manifest import config_from_manifest, data_digest
from rl.rllib_compat import algorithm_module_dir
from rl.train import train
from tests.integration.configs import TINY
from tests.integration.wandb_offline import config as wandb_config
from tests.integration.wandb_offline import history

pytestmark = [pytest.mark.integration, pytest.mark.slow]


SECRET = "sk-live-0123456789abcdef"
TRADING = ("return", "sharpe", "max_drawdown", "fees", "funding", "turnover", "liquidated")
REPRODUCED = (
    "env_runners/episode_return_mean",
    "env_runners/trading/return",
    "env_runners/trading/fees",
    "learners/default_policy/policy_loss",
    "learners/default_policy/vf_loss",
    "learners/default_policy/entropy",
)


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in RunPaths(run_dir).results.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_run(ray_local, tmp_path_factory):
    os.environ["BINANCEUSDM_SECRET"] = SECRET  # must never reach any file of the run
    try:
        out = tmp_path_factory.mktemp("runs") / "tiny"
        result = train(TrainConfig.model_validate(TINY), out)
    finally:
        del os.environ["BINANCEUSDM_SECRET"]
    return result


def test_every_iteration_records_rllib_and_trading_metrics(tiny_run):
    rows = _rows(tiny_run.run_dir)

    assert [r["training_iteration"] for r in rows] == [1, 2]
    assert tiny_run.env_steps == 512
    for row in rows:
        assert "learners/default_policy/vf_loss" in row
        for name in TRADING:
            assert f"env_runners/trading/{name}" in row
        for term in ("log_return", "drawdown", "turnover", "leverage"):
            assert f"env_runners/trading/reward_{term}" in row
    # 8 envs x 32-step episodes: every iteration of 256 steps finishes 8 of them
    assert rows[-1]["env_runners/trading/length"] == 32


def test_offline_wandb_run_holds_the_trading_metrics_and_no_secret(tiny_run):
    run_files = list((tiny_run.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1

    steps = history(run_files[0])
    logged = wandb_config(run_files[0])

    assert len(steps) == 2
    for name in TRADING:
        assert f"env_runners/trading/{name}" in steps[-1]
    assert steps[-1]["env_runners/trading/return"] == pytest.approx(
        _rows(tiny_run.run_dir)[-1]["env_runners/trading/return"]
    )
    assert logged["ppo"]["lr"] == 3e-4
    for path in tiny_run.run_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_manifest_records_data_config_code_and_versions(tiny_run):
    manifest = json.loads(RunPaths(tiny_run.run_dir).manifest.read_text())
    config = TrainConfig.model_validate(TINY)

    assert manifest["data_sha256"] == data_digest(market_for(config.env_config))
    assert manifest["config_sha256"] == config.digest()
    assert manifest["seed"] == 11
    assert len(manifest["code_commit"] or "") == 40
    assert manifest["packages"]["ray"] and manifest["packages"]["torch"]


def test_rerun_from_the_manifest_reproduces_the_first_iterations_exactly(tiny_run, tmp_path):
    manifest = RunPaths(tiny_run.run_dir).manifest
    config = config_from_manifest(manifest)
    config_from_manifest(manifest, market_for(config.env_config))  # same data, or it raises

    rerun = train(config.with_overrides(**{"tracking.wandb": False}), tmp_path / "rerun",
                  max_iterations=2)

    first, second = _rows(tiny_run.run_dir), _rows(rerun.run_dir)
    for a, b in zip(first, second, strict=True):
        for key in REPRODUCED:
            assert a[key] == b[key], key


def test_resume_continues_the_step_counter_from_the_latest_checkpoint(tiny_run, tmp_path):
    run_dir = tmp_path / "resumed"
    shutil.copytree(tiny_run.run_dir, run_dir, symlinks=True)
    config = TrainConfig.model_validate(TINY).with_overrides(steps=768, **{"tracking.wandb": False})

    resumed = train(config, run_dir, resume=True)

    rows = _rows(run_dir)
    assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    assert [r["num_env_steps_sampled_lifetime"] for r in rows] == [256, 512, 768]
    assert resumed.checkpoint.name == "iter_000003"
    assert (run_dir / "checkpoints" / "final").resolve() == resumed.checkpoint.resolve()


def test_a_run_refuses_to_overwrite_an_existing_run(tiny_run):
    with pytest.raises(FileExistsError, match="--resume"):
        train(TrainConfig.model_validate(TINY), tiny_run.run_dir)


RESTORE = """
import sys, numpy as np, torch
from ray.rllib.core.columns import Columns
from rl.checkpoint import load_module
module = load_module(sys.argv[1])
obs = dict(np.load(sys.argv[2]))
with torch.no_grad():
    out = module.forward_inference({Columns.OBS: {k: torch.from_numpy(v) for k, v in obs.items()}})
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out[Columns.ACTIONS].items()})
"""


def test_two_env_runners_train_and_a_restored_checkpoint_acts_identically(ray_local, tmp_path):
    from ray.rllib.core.columns import Columns

    from envs.registry import make_env
    from rl.algo import ppo_config

    config = TrainConfig.model_validate(TINY).with_overrides(**{"rollouts.env_runners": 2})
    algo = ppo_config(config).build_algo()
    try:
        result = algo.train()
        pids = algo.env_runner_group.foreach_env_runner(
            lambda runner: os.getpid(), local_env_runner=False
        )
        env = make_env({**TINY["env_config"], "num_envs": 6})
        obs, _ = env.reset(seed=5)
        module = algo.get_module()
        with torch.no_grad():
            batch = {Columns.OBS: {k: torch.from_numpy(v) for k, v in obs.items()}}
            expected = module.forward_inference(batch)[Columns.ACTIONS]
        checkpoint = tmp_path / "ckpt"
        algo.save_to_path(str(checkpoint))
    finally:
        algo.stop()

    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert result["env_runners"]["num_env_steps_sampled"] >= 256
    assert algorithm_module_dir(checkpoint).is_dir()
    np.savez(tmp_path / "obs.npz", **obs)
    subprocess.run(
        [sys.executable, "-c", RESTORE, str(checkpoint), str(tmp_path / "obs.npz"),
         str(tmp_path / "actions.npz")],
        check=True, cwd=Path(__file__).resolve().parents[2], timeout=300,
    )
    restored = np.load(tmp_path / "actions.npz")
    for key, value in expected.items():
        np.testing.assert_array_equal(restored[key], value.numpy(), err_msg=key)


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_continue_from_starts_with_the_trained_policy_and_new_hyperparameters(tiny_run):
    from rl.algo import ppo_config

    trained = _state(load_module(tiny_run.checkpoint))
    config = TrainConfig.model_validate(TINY).with_overrides(**{"ppo.lr": 1e-4})
    algo = ppo_config(config, algorithm_module_dir(tiny_run.checkpoint)).build_algo()
    try:
        started = _state(algo.get_module())
        lr = algo.config.lr
    finally:
        algo.stop()

    assert lr == 1e-4
    for key, value in trained.items():
        torch.testing.assert_close(started[key], value, msg=key)


def test_value_recalibration_trains_the_value_head_alone(tiny_run, tmp_path):
    config = TrainConfig.model_validate(TINY).with_overrides(
        **{"model.value_only": True, "tracking.wandb": False}
    )
    before = _state(load_module(tiny_run.checkpoint))

    result = train(config, tmp_path / "recal", max_iterations=2, init_module=tiny_run.checkpoint)

    after = _state(load_module(result.checkpoint))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # the return statistics (rl.returns) are the value head's units: they keep learning
    assert changed and all(k.startswith("value_head.") for k in changed - {"return_stats"})
    assert any(k.startswith("value_head.") for k in changed), changed


def test_a_run_trains_with_the_risk_shield_on_and_its_backtest_reports_what_it_cut(
        ray_local, tmp_path):
    """The shield is part of the run's config: training steps through it, the trained run
    keeps it (and shows it to the policy: shield.observe), and a backtest of that run
    applies it and says what it cut. (A policy this briefly trained stays flat in its mode,
    so the backtests sample its actions.)"""
    from backtest.run import BacktestOptions, backtest_trained
    from rl.checkpoint import TrainedRun

    config = TrainConfig.model_validate(TINY).with_overrides(**{
        "env_config.env.shield": {"enabled": True, "max_var": 0.02, "observe": True},
        "steps": 256})
    result = train(config, tmp_path / "shielded")
    trained = TrainedRun.open(result.run_dir)
    market = trained.market.elsewhere(None, 5, 3, model_symbols=trained.recorded_assets)
    runs = {
        shield: backtest_trained(trained, market, BacktestOptions(
            last_days=0.5, baselines=(), deterministic=False, fast_path=False, shield=shield),
            tmp_path / f"bt-{shield}")
        for shield in (True, False)
    }

    assert trained.env.shield.enabled and trained.env.shield.max_var == 0.02
    assert trained.module.observation_space["portfolio"].shape == (3, N_PORTFOLIO + 2)
    summary = runs[True].result.meta["shield"]
    assert summary["decisions"] == runs[True].metrics["n_steps"]
    assert summary["asset_targets_cut"] > 0 and 0 <= summary["mean_scale_when_cut"] < 1
    assert "var" in summary["by_rule"]
    assert "shield" not in runs[False].result.meta
    gross = {k: r.result.steps["gross_notional"].mean() for k, r in runs.items()}
    assert gross[True] < gross[False]
