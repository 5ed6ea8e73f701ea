"""Seconds to backtest one year of 1-minute bars for 3 assets with the hierarchical policy.

    .venv/bin/python benchmarks/backtest_speed.py [--model-path runs/NAME] [--days 365]

One decision per bar: 525,600 sequential decisions for a year. Measured on the fast
path (``backtest.fast``: market encoding batched over time in torch, then one numba
loop for the per-step policy and the simulator) after a short warm-up run that loads
or compiles the numba kernels (reported separately as ``compile_s``). Side by side:
the general loop (``engine.run_policy`` with the torch module's forward_inference,
what any RLModule gets) timed on ``--torch-steps`` decisions and scaled to the year's
step count (a full year of it would take minutes; the scaling is labelled).

Without ``--model-path`` the policy is a freshly initialised hierarchical module (the
cost per step does not depend on the weights). An untrained policy flips positions
often enough that fees would end its year early at the drawdown limit, so that run
trades at most 1x gross with fees, spread and impact set to zero: the same code path
and the same work per step, only the cost amounts are 0. With ``--model-path`` the
run's own env settings are used. The JSON reports the steps actually run. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from backtest.engine import run_policy
from backtest.fast import encode_market, run_hierarchical
from envs.config import EnvConfig
from envs.registry import market_for
from envs.vector import PerpetualVectorEnv
from rl.evaluate import module_policy

YEAR_MINUTES = 525_600


def _module(model_path: str | None, env: PerpetualVectorEnv):
    if model_path:
        from rl.checkpoint import TrainedRun

        return TrainedRun.open(model_path).module
    from rl.algo import module_spec
    from rl.config import TrainConfig

    torch.manual_seed(0)
    spec = module_spec(TrainConfig())
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    module = spec.build()
    module.eval()
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--torch-steps", type=int, default=5_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    # warm-up bars for the indicators come on top of the measured span
    data = market_for({"synthetic_days": args.days + 2.0, "synthetic_seed": 7})
    data_s = time.perf_counter() - t0
    config = EnvConfig(
        limits={"max_leverage": 1.0, "max_drawdown": 0.99},
        costs={"taker_fee": 0.0, "maker_fee": 0.0, "min_half_spread": 0.0,
               "max_half_spread": 1e-12, "impact_k": 0.0},
    )
    if args.model_path:
        from rl.checkpoint import TrainedRun

        trained = TrainedRun.open(args.model_path)
        config = trained.env
    module = _module(args.model_path, PerpetualVectorEnv(data, config, 1))
    start = max(data.first_valid, config.window - 1)
    steps = min(int(args.days * 1440), data.n_bars - 1 - start)
    end = start + steps

    t = time.perf_counter()
    run_hierarchical(module, data, config, start, start + 200, "warm-up")  # numba load/compile
    compile_s = time.perf_counter() - t

    t = time.perf_counter()
    encode_market(module, data, config.window, start + np.arange(steps, dtype=np.int64))
    encode_s = time.perf_counter() - t

    t = time.perf_counter()
    result = run_hierarchical(module, data, config, start, end, "fast")
    fast_s = time.perf_counter() - t
    ran = len(result.steps) - 1

    t = time.perf_counter()
    slow = run_policy(module_policy(module), data, config, start, start + args.torch_steps, "torch")
    torch_s = time.perf_counter() - t
    torch_ran = len(slow.steps) - 1

    out = {
        "backtest_year_1m_3assets_s": round(fast_s, 2),
        "steps": ran,
        "steps_requested": steps,
        "ended_early": result.ended_early,
        "us_per_step": round(fast_s / ran * 1e6, 1),
        "market_encoding_s": round(encode_s, 2),
        "compile_s": round(compile_s, 2),
        "torch_loop_us_per_step": round(torch_s / torch_ran * 1e6, 1),
        "torch_loop_year_s_scaled": round(torch_s / torch_ran * steps, 1),
        "speedup_vs_torch_loop": round((torch_s / torch_ran * steps) / fast_s, 1),
        "data_build_s": round(data_s, 2),
        "assets": list(data.assets),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "model": args.model_path or "untrained hierarchical (default ModelConfig)",
    }
    print(json.dumps(out))  # noqa: T201


if __name__ == "__main__":
    main()
