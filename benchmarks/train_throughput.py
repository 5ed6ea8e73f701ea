"""End-to-end PPO training throughput: RLlib (ours) vs stable-baselines3, one run, JSON.

Each entry is env steps per second of wall time over whole training iterations
(sampling + GAE + SGD) on the same market: every trainer is built and warmed up
in a fresh process of its own (as a user runs one trainer), timed over a
few iterations, and the entries take turns for several rounds (interleaved A/B, so
machine noise hits them alike); the median of the rounds is reported:

- ``rllib_mlp_seed``   RLlib PPO, MLP module, seed hyperparameters (2048 steps per
                       update, minibatch 64, 10 epochs), 8 envs sampled in the driver,
                       ``rollouts.compile`` on (torch.compile of the sampling forward
                       and the minibatch loss)
- ``rllib_mlp_seed_eager``  the same without torch.compile (the default setting)
- ``rllib_hier_seed``  the seed setting with the hierarchical module (compiled)
- ``sb3_mlp_seed``     SB3 PPO MlpPolicy, DummyVecEnv(8) of the flat-Box variant,
                       n_steps 256 x 8 = 2048, batch 64, 10 epochs
- ``rllib_mlp_fast``   throughput setting: 256 envs in one EnvRunner, 16,384-step
                       batches in 4,096-step minibatches, 2 epochs, compiled
                       (rl/configs/throughput.yaml)
- ``rllib_hier_fast``  the same with the hierarchical module

Every entry steps the same env with the training defaults (a decision every 15
one-minute bars, so an env step simulates 15 bars); the periodic validation is off
(``validation.every: 0``): this measures training, not evaluation.

The warm-up iterations (numba and torch.compile compilation, first episode starts,
the allocator growing to the batch sizes) are not timed; the first one's seconds are
reported under ``first_iteration_s``.

Run: ``python benchmarks/train_throughput.py [--rounds 3] [--iterations 4] [--warmup 2]``
(needs the ``bench`` extra for stable-baselines3). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    "rollouts": {"env_runners": 0, "envs_per_runner": 256, "compile": True},
}


class _RLlib:
    """One RLlib PPO algorithm; ``step`` runs one training iteration, returns env steps."""

    def __init__(self, kind: str, ppo: dict, rollouts: dict) -> None:
        from rl.algo import ppo_config
        from rl.config import TrainConfig

        config = TrainConfig.model_validate(
            {"env_config": ENV, "model": {"kind": kind}, "ppo": ppo, "rollouts": rollouts,
             "tracking": {"wandb": False}, "validation": {"every": 0}}
        )
        self.algo = ppo_config(config).build_algo()

    def step(self) -> int:
        return int(self.algo.train()["env_runners"]["num_env_steps_sampled"])

    def close(self) -> None:
        self.algo.stop()


class _SB3:
    """SB3 PPO MlpPolicy on DummyVecEnv(8) of the flat-Box env; ``step`` = 2048 env steps."""

    def __init__(self) -> None:
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv

        from envs.flat import make_flat_env
        from envs.registry import make_env

        venv = DummyVecEnv([lambda: make_flat_env(make_env(ENV)) for _ in range(8)])
        venv.seed(0)
        self.model = PPO(
            "MlpPolicy", venv, learning_rate=3e-4, n_steps=256, batch_size=64, n_epochs=10,
            gamma=0.99, gae_lambda=0.95, clip_range=0.2, device="cpu", seed=0, verbose=0,
        )
        self.first = True

    def step(self) -> int:
        self.model.learn(2048, reset_num_timesteps=self.first)
        self.first = False
        return 2048

    def close(self) -> None:
        self.model.env.close()


SEED_ROLLOUTS = {"envs_per_runner": 8, "compile": True}

ENTRIES = {
    "sb3_mlp_seed": lambda: _SB3(),
    "rllib_mlp_seed": lambda: _RLlib("mlp", SEED_PPO, SEED_ROLLOUTS),
    "rllib_mlp_seed_eager": lambda: _RLlib("mlp", SEED_PPO, {"envs_per_runner": 8}),
    "rllib_hier_seed": lambda: _RLlib("hierarchical", SEED_PPO, SEED_ROLLOUTS),
    "rllib_mlp_fast": lambda: _RLlib("mlp", FAST["ppo"], FAST["rollouts"]),
    "rllib_hier_fast": lambda: _RLlib("hierarchical", FAST["ppo"], FAST["rollouts"]),
}


def _measure(name: str, iterations: int, warmup: int) -> dict[str, float]:
    """Env steps/s of one entry over ``iterations`` iterations after ``warmup`` untimed
    ones, and the first iteration's seconds."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    trainer = ENTRIES[name]()
    try:
        start = time.perf_counter()
        trainer.step()  # numba and torch.compile compilation, episode starts
        first = time.perf_counter() - start
        for _ in range(warmup - 1):
            trainer.step()
        steps, start = 0, time.perf_counter()
        for _ in range(iterations):
            steps += trainer.step()
        return {"rate": steps / (time.perf_counter() - start), "first_iteration_s": first}
    finally:
        trainer.close()
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (median taken).")
    parser.add_argument("--iterations", type=int, default=4, help="Timed iterations per run.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed iterations first.")
    parser.add_argument(
        "--only", default=",".join(ENTRIES), help="Comma-separated entries to run (default all)."
    )
    parser.add_argument("--entry", choices=sorted(ENTRIES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.entry:  # one measurement, in this (fresh) process
        measured = _measure(args.entry, args.iterations, max(args.warmup, 1))
        sys.stdout.write(json.dumps(measured) + "\n")
        return
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(ENTRIES))
    if unknown:
        parser.error(f"unknown entries {unknown}; choose from {sorted(ENTRIES)}")
    rates: dict[str, list[float]] = {name: [] for name in names}
    firsts: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved A/B: each round runs every entry once
        for name in names:
            out = subprocess.run(
                [sys.executable, __file__, "--entry", name, "--iterations", str(args.iterations),
                 "--warmup", str(args.warmup)],
                capture_output=True, text=True, check=True, timeout=1800,
            )
            measured = json.loads(out.stdout.strip().splitlines()[-1])
            rates[name].append(measured["rate"])
            firsts[name].append(measured["first_iteration_s"])
    results: dict[str, object] = {k: round(float(np.median(v)), 1) for k, v in rates.items()}
    for name in ("rllib_mlp_seed", "rllib_mlp_seed_eager"):
        if name in results and "sb3_mlp_seed" in results:
            results[f"{name}_vs_sb3"] = round(results[name] / results["sb3_mlp_seed"], 3)
    results["rounds"] = args.rounds
    results["runs"] = {k: [round(x) for x in v] for k, v in rates.items()}
    results["first_iteration_s"] = {k: [round(x, 1) for x in v] for k, v in firsts.items()}
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
