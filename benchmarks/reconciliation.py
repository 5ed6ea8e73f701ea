"""How exactly the books balance over thousands of random episodes: one JSON object.

    .venv/bin/python benchmarks/reconciliation.py [--envs 256] [--steps 400] [--seed 11]

Random actions (every head, every execution style) drive the batched env on the
synthetic market with up to 20x leverage on one asset and a 50% drawdown limit, so
liquidations occur. At each episode's end the equity implied by the ledger
(initial + realised + unrealised - fees - funding - spread - impact - liquidation
fees + bad debt) is compared with the account's equity.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from env_throughput import build_market

from envs.config import EnvConfig
from envs.ledger import reconcile
from envs.vector import PerpetualVectorEnv
from risk.limits import RiskLimits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    data, _ = build_market(days=30, seed=args.seed)
    limits = RiskLimits(max_drawdown=0.5, max_concentration=1.0)
    config = EnvConfig(episode_steps=40, limits=limits)
    env = PerpetualVectorEnv(data, config, num_envs=args.envs)
    env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    episodes = rows = liquidations = bad_debt = 0
    worst = 0.0
    for _ in range(args.steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        for n in np.flatnonzero(terminated | truncated):
            account, ledger = env.account(n), env.ledger(n)
            implied = reconcile(ledger, config.initial_balance, account["unrealized_pnl"])
            worst = max(worst, abs(implied - account["equity"]) / config.initial_balance)
            episodes += 1
            rows += len(ledger)
            liquidations += int(info["liquidated"][n])
            bad_debt += int(account["bad_debt"] > 0)
    result = {
        "episodes": episodes,
        "ledger_rows": rows,
        "liquidations": liquidations,
        "bad_debt_episodes": bad_debt,
        "worst_relative_error": worst,
    }
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
