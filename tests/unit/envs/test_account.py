"""The Account: every kernel field named once, exact JSON round trips, clear refusals."""

import json

import numpy as np
import pytest

from envs.account import ACCOUNT_FIELDS, BOOK_FIELDS, Account, AccountError
from envs.config import EnvConfig
from envs.core import layout as L
from envs.core.shield import rule_names
from envs.data import MarketArrays
from envs.vector import PerpetualVectorEnv
from market.features import make_aligned_frame


@pytest.fixture(scope="module")
def data():
    return MarketArrays.from_aligned(make_aligned_frame(3000, ("BTC", "ETH")))


def test_every_kernel_offset_has_one_name():
    assert sorted(ACCOUNT_FIELDS.values()) == [i for i in range(L.N_ACCT) if i != L.HIST_HEAD]
    assert sorted(BOOK_FIELDS.values()) == [i for i in range(L.N_BOOK) if i != L.OPENED_AT]


def _traded_env(data, steps=40):
    env = PerpetualVectorEnv(data, EnvConfig(risk_window=5, episode_steps=100), num_envs=1)
    env.reset(seed=1, options={"start": 2000})
    env.action_space.seed(2)
    for k in range(steps):
        action = env.action_space.sample()
        action["trade"][:] = 2 if k % 9 else 0  # long, with a flip now and then
        action["size"][:] = 0.3
        action["risk"][:] = 1.0  # the widest stops
        obs, _, terminated, truncated, _ = env.step(action)
        assert not (terminated | truncated).any()
    return env, obs


def test_an_env_account_round_trips_through_json_and_observes_as_the_env(data):
    env, obs = _traded_env(data)
    s = env._state
    b = int(s["t"][0])
    account = Account.from_state(s["acct"][0], s["book"][0], s["hist"][0], data, b)
    assert any(row["quantity"] != 0 for row in account.book.values())
    back = Account.from_json(account.to_json())
    assert back == account
    seen = back.observe(data, env.config)
    for part in ("market", "risk", "portfolio"):
        np.testing.assert_array_equal(seen[part], obs[part])
    acct, book, hist, bar = back.to_state(data)
    assert bar == b
    keep = [i for i in range(L.N_ACCT) if i != L.HIST_HEAD]
    np.testing.assert_array_equal(acct[keep], s["acct"][0][keep])
    held = book[:, L.QTY] != 0
    np.testing.assert_array_equal(book[held], s["book"][0][held])
    head = int(s["acct"][0][L.HIST_HEAD])  # the env's ring, oldest first
    np.testing.assert_array_equal(hist, np.roll(s["hist"][0], -head, axis=0))


def test_an_account_on_data_without_its_bar_or_assets_is_refused(data):
    account = Account.fresh(data, 1000.0, 4, 2000)
    short = MarketArrays.from_aligned(make_aligned_frame(1500, ("BTC", "ETH")))
    with pytest.raises(AccountError, match="does not hold the account's bar"):
        account.to_state(short)
    other = MarketArrays.from_aligned(make_aligned_frame(3000, ("BTC", "SOL")))
    with pytest.raises(AccountError, match="trades"):
        account.to_state(other)
    with pytest.raises(AccountError, match="risk vectors"):
        account.observe(data, EnvConfig(risk_window=8))


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format=9), "format"),
    (lambda d: d["values"].pop("wallet"), "unreadable"),
    (lambda d: d["book"]["BTC"].update(quantity="x"), "unreadable"),
    (lambda d: d.update(risk_history=[[0.0, 1.0]]), "risk_history"),
])
def test_a_damaged_account_is_refused_naming_the_problem(data, edit, match):
    raw = Account.fresh(data, 1000.0, 4, 2000).to_dict()
    edit(raw)
    with pytest.raises(AccountError, match=match):
        Account.from_json(json.dumps(raw))
    with pytest.raises(AccountError, match="not JSON"):
        Account.from_json("{")


@pytest.mark.parametrize("shield", [False, True])
def test_an_accounts_targets_are_what_the_env_trades_to_and_what_its_shield_cut(data, shield):
    """Account.targets runs the decide kernel: from a flat book, a market order with a
    one-bar horizon lands exactly on the target, and the book records what the shield
    did to the same decision."""
    config = EnvConfig(risk_window=5, episode_steps=100,
                       shield={"enabled": shield, "max_var": 0.01})
    env = PerpetualVectorEnv(data, config, num_envs=1)
    env.reset(seed=1, options={"start": 2000})
    s = env._state
    b = int(s["t"][0])
    account = Account.from_state(s["acct"][0], s["book"][0], s["hist"][0], data, b)
    action = env.action_space.sample()
    action["trade"][:] = [[2, 0]]
    action["size"][:] = 1.0
    action["risk"][:] = 1.0
    action["execution"][:] = 0  # market, over one bar

    notional, report = account.targets(data, config, action["trade"][0], action["size"][0])
    env.step(action)

    filled = env._state["book"][0][:, L.QTY] * data.mkt[b, :, L.M_CLOSE]
    np.testing.assert_allclose(filled, notional, rtol=1e-12)
    assert notional[0] > 0 > notional[1]
    scales = [report[a]["scale"] for a in data.assets]
    cut = [report[a]["rules"] for a in data.assets]
    if shield:
        book = env._state["book"][0]
        assert scales == book[:, L.SHIELD_SCALE].tolist()
        assert cut == [rule_names(mask) for mask in book[:, L.SHIELD_RULES]]
        assert all("var" in rules for rules in cut) and max(scales) < 1.0
    else:
        assert cut == [[], []] and scales == [1.0, 1.0]
