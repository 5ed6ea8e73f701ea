"""Env-steps per second per core: Quantum's envs side by side with gym-trading-env and
gym-anytrading, on the same synthetic market, interleaved A/B, median of rounds.

    .venv/bin/pip install -e ".[bench]" && .venv/bin/pip install --no-deps gym-trading-env==0.3.5
    .venv/bin/python benchmarks/env_throughput.py [--rounds 5] [--seconds 2]

(gym-trading-env pins ccxt 3.0.59 and flask 2.2.5 for its downloader and renderer;
its environment needs neither, so it is installed without its dependencies.)

The batched env also runs with the risk shield on (envs/core/shield.py; the issue's
bound: at most 25% slower). Every env gets pre-sampled random actions (sampling is not
timed) and runs on one core (numba is single-threaded here; BLAS threads are pinned to 1). Quantum's
batched env runs N=256 accounts on 3 assets with every mechanic on and full
observations built; the single env is the gymnasium.Env. Peers trade one asset
(that is all they support), which favours them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from envs.config import EnvConfig, ShieldConfig
from envs.data import MarketArrays
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv
from market.schema import perp_symbol
from market.synthetic import SyntheticConfig, generate_market


def build_market(days: float, seed: int) -> tuple[MarketArrays, pd.DataFrame]:
    """The synthetic market as Quantum's arrays, and BTC's bars for the peers."""
    market = generate_market(SyntheticConfig(days=days, seed=seed))
    return MarketArrays.from_aligned(market.aligned()), market.ohlcv[perp_symbol("BTC")]


def runner_batched(data: MarketArrays, n_envs: int, shield: bool = False):
    config = EnvConfig(record_ledger=False, shield=ShieldConfig(enabled=shield))
    env = PerpetualVectorEnv(data, config, num_envs=n_envs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(64)]

    def run(steps: int) -> int:
        for k in range(steps):
            env.step(actions[k % 64])
        return steps * n_envs

    return run


def single_env_loop(env, actions: list):
    """A step function for one gymnasium.Env over pre-sampled actions, resetting at episode end."""
    env.reset(seed=0)

    def run(steps: int) -> int:
        for k in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[k % len(actions)])
            if terminated or truncated:
                env.reset()
        return steps

    return run


def runner_single(data: MarketArrays):
    env = PerpetualEnv(data, EnvConfig(record_ledger=False))
    env.action_space.seed(0)
    return single_env_loop(env, [env.action_space.sample() for _ in range(256)])


def runner_gym_trading_env(bars: pd.DataFrame):
    from gym_trading_env.environments import TradingEnv

    df = bars.tz_localize(None).copy()
    df["feature_return"] = df["close"].pct_change().fillna(0.0)
    df["feature_volume"] = df["volume"] / df["volume"].rolling(60, min_periods=1).mean()
    env = TradingEnv(df=df, positions=[-1, 0, 1], trading_fees=0.0004, verbose=0)
    return single_env_loop(env, [int(a) for a in np.random.default_rng(0).integers(0, 3, 4096)])


def runner_gym_anytrading(bars: pd.DataFrame):
    from gym_anytrading.envs import ForexEnv

    df = bars.rename(columns=str.capitalize).tz_localize(None)
    env = ForexEnv(df=df, window_size=32, frame_bound=(32, len(df)))
    return single_env_loop(env, [int(a) for a in np.random.default_rng(0).integers(0, 2, 4096)])


def measure(run, seconds: float) -> float:
    """Env-steps/s over about `seconds` (the call count adapts after a calibration run)."""
    start = time.perf_counter()
    done = run(10)
    per_call = (time.perf_counter() - start) / 10
    calls = max(10, int(seconds / max(per_call, 1e-9)))
    start = time.perf_counter()
    done = run(calls)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--no-peers", action="store_true",
                        help="Only Quantum's envs (the peers need the [bench] extra).")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    data, btc = build_market(args.days, seed=7)
    runners = {
        "batched_steps_per_s": runner_batched(data, args.envs),
        "batched_shield_steps_per_s": runner_batched(data, args.envs, shield=True),
        "single_steps_per_s": runner_single(data),
    }
    if not args.no_peers:
        runners["gym_trading_env_steps_per_s"] = runner_gym_trading_env(btc)
        runners["gym_anytrading_steps_per_s"] = runner_gym_anytrading(btc)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            samples[name].append(measure(run, args.seconds))
    result = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    cfg = EnvConfig()
    result["shield_vs_no_shield"] = round(
        result["batched_shield_steps_per_s"] / result["batched_steps_per_s"], 3
    )
    if not args.no_peers:
        peer = result["gym_trading_env_steps_per_s"]
        result.update(batched_vs_gym_trading_env=round(result["batched_steps_per_s"] / peer, 1),
                      single_vs_gym_trading_env=round(result["single_steps_per_s"] / peer, 2))
    result.update(
        n_envs=args.envs,
        assets=data.n_assets,
        observation={"window": cfg.window, "features": len(data.features)},
        rounds=args.rounds,
        samples={name: [round(v) for v in values] for name, values in samples.items()},
        machine=platform.machine(),
        cpus=os.cpu_count(),
    )
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
