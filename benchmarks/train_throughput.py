"""End-to-end PPO training throughput: RLlib (ours) vs stable-baselines3, one run, JSON.

Each entry is env steps per second of wall time over whole training iterations
(sampling + GAE + SGD), after a warm-up iteration, on the same market:

- ``rllib_mlp_seed``   RLlib PPO, MLP module, seed hyperparameters (2048 steps per
                       update, minibatch 64, 10 epochs), 8 envs sampled in the driver
- ``rllib_hier_seed``  the same with the hierarchical module
- ``sb3_mlp_seed``     SB3 PPO MlpPolicy, DummyVecEnv(8) of the flat-Box variant,
                       n_steps 256 x 8 = 2048, batch 64, 10 epochs
- ``rllib_mlp_fast``   throughput setting: many envs per runner, large minibatch
- ``rllib_hier_fast``  the same with the hierarchical module

Run: ``python benchmarks/train_throughput.py [--iterations 3]`` (needs the ``bench``
extra for stable-baselines3). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ENV = {
    "synthetic_days": 10,
    "synthetic_seed": 5,
    "env": {"record_ledger": False, "episode_steps": 256},
}
SEED_PPO = {"train_batch_size": 2048, "minibatch_size": 64, "num_epochs": 10}
FAST = {
    "ppo": {"train_batch_size": 16384, "minibatch_size": 4096, "num_epochs": 2},
    "rollouts": {"env_runners": 0, "envs_per_runner": 256},
}


def _rllib(kind: str, ppo: dict, rollouts: dict, iterations: int) -> float:
    from rl.algo import ppo_config
    from rl.config import TrainConfig

    config = TrainConfig.model_validate(
        {"env_config": ENV, "model": {"kind": kind}, "ppo": ppo, "rollouts": rollouts,
         "tracking": {"wandb": False}}
    )  # fmt: skip
    algo = ppo_config(config).build_algo()
    try:
        algo.train()  # warm-up: numba compile, torch first calls, episode starts
        steps, start = 0, time.perf_counter()
        for _ in range(iterations):
            steps += int(algo.train()["env_runners"]["num_env_steps_sampled"])
        return steps / (time.perf_counter() - start)
    finally:
        algo.stop()


def _sb3(iterations: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from envs.flat import make_flat_env
    from envs.registry import make_env

    def factory(i: int):
        return lambda: make_flat_env(make_env(ENV))

    venv = DummyVecEnv([factory(i) for i in range(8)])
    venv.seed(0)
    model = PPO(
        "MlpPolicy", venv, learning_rate=3e-4, n_steps=256, batch_size=64, n_epochs=10,
        gamma=0.99, gae_lambda=0.95, clip_range=0.2, device="cpu", seed=0, verbose=0,
    )  # fmt: skip
    model.learn(2048)  # warm-up
    start = time.perf_counter()
    model.learn(2048 * iterations, reset_num_timesteps=False)
    return 2048 * iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3, help="Timed iterations per entry.")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    import ray
    import torch

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = {
            "sb3_mlp_seed": _sb3(args.iterations),
            "rllib_mlp_seed": _rllib("mlp", SEED_PPO, {"envs_per_runner": 8}, args.iterations),
            "rllib_hier_seed": _rllib(
                "hierarchical", SEED_PPO, {"envs_per_runner": 8}, args.iterations
            ),
            "rllib_mlp_fast": _rllib("mlp", FAST["ppo"], FAST["rollouts"], args.iterations),
            "rllib_hier_fast": _rllib(
                "hierarchical", FAST["ppo"], FAST["rollouts"], args.iterations
            ),
        }
    finally:
        ray.shutdown()
    results = {k: round(float(v), 1) for k, v in results.items()}
    results["rllib_mlp_seed_vs_sb3"] = round(results["rllib_mlp_seed"] / results["sb3_mlp_seed"], 3)
    results["torch_threads"] = torch.get_num_threads()
    results["numpy"] = np.__version__
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
