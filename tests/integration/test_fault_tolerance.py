"""Training survives failures on real local Ray: a killed EnvRunner, a crashed trial."""

import os
import time

import pytest
import ray

from rl.algo import ppo_config
from rl.callbacks import TradingMetricsCallback
from tests.integration.configs import tiny

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_killed_env_runner_is_replaced_and_training_continues(ray_local):
    config = tiny(**{"rollouts.env_runners": 2, "ppo.num_epochs": 1, "tracking.wandb": False})
    algo = ppo_config(config).build_algo()
    try:
        before = algo.train()
        group = algo.env_runner_group
        pids = set(group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False))
        victim = group.healthy_env_runner_ids()[0]
        # no_restart=False: the process dies as in a crash and Ray may start the actor again
        # (RLlib creates EnvRunner actors restartable when restart_failed_env_runners is on)
        ray.kill(group._worker_manager.actors()[victim], no_restart=False)

        # training goes on with the survivor while Ray restarts the dead runner (a new
        # process rebuilds its env and module: seconds), then with both again
        after = [algo.train() for _ in range(2)]  # the first of these meets the dead runner
        deadline = time.monotonic() + 180
        while group.num_healthy_remote_env_runners() < 2 and time.monotonic() < deadline:
            after.append(algo.train())
            time.sleep(0.5)
        after += [algo.train() for _ in range(2)]

        now = set(group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False))
        assert group.num_healthy_remote_env_runners() == 2
        assert len(now) == 2 and len(now - pids) == 1  # one runner replaced by a new process
    finally:
        algo.stop()
    steps = [r["num_env_steps_sampled_lifetime"] for r in (before, *after)]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert after[-1]["env_runners"]["num_env_steps_sampled"] >= 256


def test_a_crashed_trial_is_restored_from_its_last_checkpoint(ray_local, tmp_path):
    from ray import tune
    from ray.rllib.algorithms.ppo import PPO

    marker = tmp_path / "crashed"

    class CrashOnce(TradingMetricsCallback):
        """Raises inside the trial at iteration 3, once (the marker survives the restart)."""

        def on_train_result(self, *, algorithm, result, **kwargs):
            if result["training_iteration"] == 3 and not marker.exists():
                marker.touch()
                raise RuntimeError("injected trial crash")

    class Reported(tune.Callback):
        """The results the driver received, in order (result.json on disk is copied from
        the trial's artifact folder, and a copy racing the restore can drop rows)."""

        def __init__(self) -> None:
            self.rows: list[dict] = []

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.rows.append(result)

    reported = Reported()
    config = tiny(**{"ppo.num_epochs": 1, "tracking.wandb": False})
    tuner = tune.Tuner(
        PPO,
        param_space=ppo_config(config).callbacks(CrashOnce),
        run_config=tune.RunConfig(
            name="crash",
            storage_path=str(tmp_path),
            stop={"training_iteration": 5},
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1),
            failure_config=tune.FailureConfig(max_failures=2),
            callbacks=[reported],
            verbose=0,
        ),
    )

    grid = tuner.fit()

    assert marker.exists()
    result = grid[0]
    assert result.error is None
    assert result.metrics["training_iteration"] == 5
    rows = reported.rows
    iterations = [r["training_iteration"] for r in rows]
    # iteration 3 crashed before it was reported; the restore from iteration 2's checkpoint
    # loses nothing that was checkpointed: every iteration appears once, in order
    assert iterations == [1, 2, 3, 4, 5]
    assert [r["num_env_steps_sampled_lifetime"] for r in rows] == [256 * i for i in iterations]
