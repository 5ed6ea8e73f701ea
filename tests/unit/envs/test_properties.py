"""Properties over thousands of random action sequences: the books always balance."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.config import EnvConfig
from envs.core.layout import M_CLOSE, M_MARK
from envs.ledger import reconcile
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv
from risk.limits import RiskLimits
from tests.unit.envs.market import random_market

MARKETS = {seed: random_market(n_bars=700, n_assets=3, seed=seed, vol=0.004) for seed in range(4)}


def action_batches(n_assets):
    """A strategy of per-step actions covering every head's range, including extremes."""
    unit = st.floats(0.0, 1.0, width=32)
    return st.fixed_dictionaries(
        {
            "trade": st.lists(st.integers(0, 2), min_size=n_assets, max_size=n_assets),
            "size": st.lists(st.one_of(unit, st.just(1.0)), min_size=n_assets, max_size=n_assets),
            "risk": st.lists(st.tuples(unit, unit), min_size=n_assets, max_size=n_assets),
            "execution": st.lists(
                st.tuples(st.integers(0, 4), st.integers(0, 7)),
                min_size=n_assets,
                max_size=n_assets,
            ),
        }
    )


def as_action(raw):
    return {
        "trade": np.array(raw["trade"]),
        "size": np.array(raw["size"], dtype=np.float32),
        "risk": np.array(raw["risk"], dtype=np.float32).reshape(-1),
        "execution": np.array(raw["execution"]).reshape(-1),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    market=st.sampled_from(sorted(MARKETS)),
    bars_per_step=st.integers(1, 4),
    max_leverage=st.sampled_from([2.0, 20.0, 50.0]),
    actions=st.lists(action_batches(3), min_size=5, max_size=60),
)
def test_random_action_sequences_keep_the_books_exact(market, bars_per_step, max_leverage, actions):
    limits = RiskLimits(max_leverage=max_leverage, max_concentration=1.0, max_drawdown=1.0)
    config = EnvConfig(window=4, risk_window=2, bars_per_step=bars_per_step, limits=limits)
    env = PerpetualEnv(MARKETS[market], config)
    env.reset(seed=market)
    equity = config.initial_balance
    for raw in actions:
        act = as_action(raw)
        bar = env.account()["bar"]
        close = MARKETS[market].mkt[bar, :, M_CLOSE]
        _, _, terminated, truncated, info = env.step(act)
        account = env.account()
        ledger = env.ledger()
        # equity reconciles with the ledger to 1e-9 relative
        implied = reconcile(ledger, config.initial_balance, account["unrealized_pnl"])
        assert implied == pytest.approx(account["equity"], rel=1e-9, abs=1e-6)
        # costs are never negative; nothing pays the agent to trade
        for column in ("fee", "spread", "impact", "liquidation_fee", "bad_debt"):
            assert (ledger[column] >= 0.0).all()
        # equity never goes negative: a shortfall is reported as bad debt; a flat account's
        # wallet is its equity (while positions are open, realised losses may be carried
        # by unrealised gains, as in any cross-margin account)
        assert account["equity"] >= 0.0
        if not env.positions().any():
            assert account["wallet"] >= 0.0
        if account["bad_debt"] > 0.0:
            assert info["liquidated"]
        # market-order targets respect the leverage cap at decision prices
        if all(style == 0 for style, _ in raw["execution"]) and not info["liquidated"]:
            gross = np.abs(env.positions()) @ close
            assert gross <= max_leverage * equity * (1 + 1e-9) + 1e-6
        equity = info["equity"]
        if terminated or truncated:
            break


def test_thousands_of_random_episodes_in_the_vector_env_all_reconcile():
    data = MARKETS[0]
    limits = RiskLimits(max_drawdown=0.5, max_concentration=1.0)
    config = EnvConfig(window=4, risk_window=2, episode_steps=40, limits=limits)
    env = PerpetualVectorEnv(data, config, num_envs=256)
    env.reset(seed=11)
    env.action_space.seed(11)
    episodes, worst = 0, 0.0
    for _ in range(400):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        for n in np.flatnonzero(terminated | truncated):
            account = env.account(n)
            implied = reconcile(env.ledger(n), config.initial_balance, account["unrealized_pnl"])
            worst = max(worst, abs(implied - account["equity"]) / config.initial_balance)
            episodes += 1
    assert episodes > 2000
    assert worst < 1e-9


def test_equity_marks_positions_on_the_mark_price_not_the_last_price():
    data = MARKETS[1]
    env = PerpetualEnv(data, EnvConfig(window=4, risk_window=2))
    env.reset(options={"start": 100})
    act = as_action(
        {"trade": [2, 0, 1], "size": [0.5, 0.5, 0.0], "risk": [(1.0, 1.0)] * 3,
         "execution": [(0, 0)] * 3}
    )

    env.step(act)

    account = env.account()
    bar = account["bar"]
    entries = env.ledger().groupby("asset")["price"].first().to_numpy()
    marks = data.mkt[bar, :2, M_MARK]
    expected = float(np.sum(env.positions()[:2] * (marks - entries)))
    assert account["unrealized_pnl"] == pytest.approx(expected, rel=1e-12)
