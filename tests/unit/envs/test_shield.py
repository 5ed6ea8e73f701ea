"""The risk shield (envs/core/shield.py): each rule worked by hand on the kernel itself,
properties over random books (it only shrinks), and the env with it on (the ledger still
reconciles, the book and info say what it cut).

Unless a test says otherwise: equity 1,000,000 at its peak, every asset at 100 with a
daily volatility of 4%, normal-volatility uptrend regimes (multiplier 1), no correlation,
and every rule but the one under test switched off.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from envs.config import EnvConfig, MarginConfig, ShieldConfig
from envs.core.accounting import bracket_arrays
from envs.core.layout import (
    EQUITY,
    M_COV,
    M_DAILY_VOL,
    M_TREND_CODE,
    M_VOL_CODE,
    N_ACCT,
    N_BOOK,
    PEAK,
    SHIELD_RULES,
    SHIELD_SCALE,
)
from envs.core.observe import N_PORTFOLIO, portfolio_features
from envs.core.params import pack_params
from envs.core.shield import rule_names, shield_notional
from envs.ledger import reconcile
from envs.vector import PerpetualVectorEnv
from risk.regimes import TREND_LABELS, VOL_LABELS
from risk.sizing import (
    CorrelationConfig,
    DrawdownSchedule,
    RegimeSizingConfig,
    SizingConfig,
    VolTargetConfig,
    drawdown_multiplier,
    regime_multiplier,
    vol_target_leverage,
)
from tests.unit.envs.market import flat_market, random_market

EQ = 1_000_000.0
OFF = {"max_var": None, "max_es": None, "max_margin_ratio": None}
NO_SIZING = SizingConfig(
    vol_target=VolTargetConfig(target_vol=1e6, max_leverage=1e6),
    correlation=CorrelationConfig(max_group_exposure=1e9),
    regime=RegimeSizingConfig(multipliers=dict.fromkeys(
        ("low_vol", "normal_vol", "high_vol", "unknown_vol", "uptrend", "downtrend",
         "sideways", "unknown_trend"), 1.0)),
    drawdown=DrawdownSchedule(steps=((1.0, 1.0),)),
    max_gross_leverage=1e9,
)


def only(**settings) -> ShieldConfig:
    """A shield with every rule off but those given."""
    sizing = NO_SIZING.model_copy(update=settings.pop("sizing", {}))
    return ShieldConfig(enabled=True, sizing=sizing, **{**OFF, **settings})


def shield(notional, config, daily_vol=0.04, codes=(2, 3), corr=None, equity=EQ, peak=EQ):
    """Run the kernel on one decision; returns (targets, scales, rule names per asset)."""
    n = len(notional)
    mkt = flat_market(n_bars=8, n_assets=n).mkt
    vols = np.broadcast_to(np.asarray(daily_vol, dtype=float), (n,))
    mkt[:, :, M_DAILY_VOL] = vols
    mkt[:, :, M_VOL_CODE], mkt[:, :, M_TREND_CODE] = codes
    corr = np.eye(n) if corr is None else np.asarray(corr, dtype=float)
    mkt[:, :, M_COV:] = corr * np.outer(vols, vols)
    params = pack_params(EnvConfig(shield=config))
    margin = MarginConfig()
    acct = np.zeros(N_ACCT)
    acct[EQUITY], acct[PEAK] = equity, peak
    book = np.zeros((n, N_BOOK))
    out = np.asarray(notional, dtype=float).copy()
    arrays = bracket_arrays(margin, [f"A{i}" for i in range(n)])
    shield_notional(acct, book, mkt, params, *arrays, 5, out, np.empty((2, n)))
    return out, book[:, SHIELD_SCALE], [rule_names(m) for m in book[:, SHIELD_RULES]]


def test_volatility_targeting_caps_each_asset_at_target_over_its_annual_volatility():
    config = only(sizing={"vol_target": VolTargetConfig(target_vol=0.5, max_leverage=3.0)})
    # annual vol 0.04 * sqrt(365) = 0.76420: cap 0.5 / 0.76420 = 0.65428 x equity = 654,280
    # annual vol 0.01 * sqrt(365) = 0.1911: 2.6166 x equity, above the 2,000,000 asked
    # annual vol 0.001: 26.2 x, capped at max_leverage 3 -> 3,000,000
    out, scale, rules = shield([2e6, -2e6, 4e6], config, daily_vol=[0.04, 0.01, 0.001])

    cap = 0.5 / (0.04 * math.sqrt(365)) * EQ
    assert cap == pytest.approx(654_279.9, abs=0.1)
    assert out == pytest.approx([cap, -2e6, 3e6])
    assert scale == pytest.approx([cap / 2e6, 1.0, 0.75])
    assert rules == [["vol_target"], [], ["vol_target"]]


def test_each_assets_regime_multiplies_its_target():
    config = only(sizing={"regime": RegimeSizingConfig()})  # the default multipliers
    high_sideways, _, rules = shield([1e6], config, codes=(3, 2))  # 0.5 * 0.75
    normal_up, _, _ = shield([1e6], config, codes=(2, 3))  # 1.0 * 1.0
    unknown, _, _ = shield([-1e6], config, codes=(0, 0))  # 0.5 * 0.75 during warm-up

    assert high_sideways == pytest.approx([375_000.0]) and rules == [["regime"]]
    assert normal_up == pytest.approx([1e6])
    assert unknown == pytest.approx([-375_000.0])


@pytest.mark.parametrize(("equity", "expected"), [(0.95e6, 1.0), (0.85e6, 0.75), (0.75e6, 0.5),
                                                  (0.70e6, 0.0)])
def test_the_drawdown_schedule_scales_every_target(equity, expected):
    config = only(sizing={"drawdown": DrawdownSchedule()})  # 10% -> 0.75, 20% -> 0.5, 30% -> 0

    out, scale, rules = shield([1e6, -5e5], config, equity=equity)

    assert out == pytest.approx([1e6 * expected, -5e5 * expected])
    assert scale == pytest.approx([expected, expected])
    assert rules == ([[], []] if expected == 1.0 else [["drawdown"], ["drawdown"]])


def test_correlated_assets_share_one_gross_cap_and_linkage_is_single():
    config = only(sizing={"correlation": CorrelationConfig(threshold=0.7, max_group_exposure=2.0)})
    pair = [[1, 0.9, 0.1], [0.9, 1, 0.2], [0.1, 0.2, 1]]
    chain = [[1, 0.9, 0.3], [0.9, 1, 0.8], [0.3, 0.8, 1]]  # 0-1 and 1-2 linked: one group

    out, _, rules = shield([1.5e6, -1.5e6, 1.5e6], config, corr=pair)
    chained, _, _ = shield([1e6, 1e6, 1e6], config, corr=chain)

    # group {0, 1}: gross 3,000,000 over the cap 2,000,000 -> both x 2/3; asset 2 alone
    assert out == pytest.approx([1e6, -1e6, 1.5e6])
    assert rules == [["correlation"], ["correlation"], []]
    assert chained == pytest.approx([2e6 / 3] * 3)


def test_the_gross_cap_scales_the_book_together():
    out, _, rules = shield([1.5e6, -1.5e6], only(sizing={"max_gross_leverage": 2.0}))
    assert out == pytest.approx([1e6, -1e6])
    assert rules == [["gross"], ["gross"]]


def test_var_and_expected_shortfall_of_the_post_trade_book_are_capped():
    # one asset, daily sigma 4%: 2,000,000 -> sigma 80,000; z(0.99) = 2.3263 -> VaR 186,110
    out, _, rules = shield([2e6], only(max_var=0.10))
    z = 2.3263478740
    assert out == pytest.approx([0.10 * EQ / (z * 0.04)])  # 1,074,644: VaR exactly 100,000
    assert rules == [["var"]]

    # ES at 99%: phi(z) / 0.01 = 2.6652 sigma; cap 8% -> 80,000 / (2.6652 * 0.04)
    out, _, rules = shield([2e6], only(max_var=0.10, max_es=0.08))
    k = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / 0.01
    assert k == pytest.approx(2.66521, abs=1e-5)
    assert out == pytest.approx([0.08 * EQ / (k * 0.04)])
    assert rules == [["var", "es"]]

    # perfectly hedged: the same exposure carries no variance, nothing is cut
    hedged, _, rules = shield([2e6, 2e6], only(max_var=0.10), corr=[[1, -1], [-1, 1]])
    assert hedged == pytest.approx([2e6, 2e6]) and rules == [[], []]


def test_maintenance_margin_of_the_post_trade_book_is_capped():
    # 3,000,000 is in the 1% bracket (500k-8M, allowance 2,550): margin 27,450 > 10,000;
    # 0.01 x - 2,550 = 10,000 -> x = 1,255,000
    out, scale, rules = shield([-3e6], only(max_margin_ratio=0.01))
    assert out == pytest.approx([-1_255_000.0], rel=1e-9)
    assert scale == pytest.approx([1_255_000 / 3e6], rel=1e-9)
    assert rules == [["margin"]]


def test_the_defaults_apply_every_rule_in_order():
    # the default shield on one asset asked for 20x: vol target first (3x cap vs 0.654x)
    out, _, rules = shield([20e6], ShieldConfig(enabled=True), codes=(3, 2))
    cap = 0.5 / (0.04 * math.sqrt(365)) * EQ
    assert out == pytest.approx([cap * 0.375])
    assert rules == [["vol_target", "regime"]]


@st.composite
def books(draw):
    n = draw(st.integers(1, 4))
    notional = draw(st.lists(st.floats(-5e7, 5e7), min_size=n, max_size=n))
    vols = draw(st.lists(st.floats(0.001, 0.2), min_size=n, max_size=n))
    factors = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=n * n, max_size=n * n)))
    corr = factors.reshape(n, n) @ factors.reshape(n, n).T + np.eye(n)
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    codes = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    equity = draw(st.floats(1e4, 1e7))
    peak = equity / draw(st.floats(0.5, 1.0))
    return notional, vols, corr, codes, equity, peak


@given(books())
def test_the_shield_only_shrinks_toward_zero_and_says_so(case):
    notional, vols, corr, codes, equity, peak = case
    out, scale, rules = shield(notional, ShieldConfig(enabled=True), daily_vol=vols, codes=codes,
                               corr=corr, equity=equity, peak=peak)
    asked = np.asarray(notional)

    assert np.all(np.abs(out) <= np.abs(asked) * (1 + 1e-12))
    assert np.all((out == 0) | (np.sign(out) == np.sign(asked)))
    assert np.all((scale >= 0) & (scale <= 1 + 1e-12))
    for a in range(len(asked)):
        if rules[a] == [] and asked[a] != 0:
            assert out[a] == asked[a]
        if not np.isclose(out[a], asked[a]):
            assert rules[a], (a, out, asked)


def test_an_env_with_the_shield_on_reconciles_and_reports_what_it_cut():
    data = random_market(n_bars=4000, n_assets=3, seed=4)
    config = EnvConfig(window=4, risk_window=3, episode_steps=300, record_ledger=True,
                       shield=ShieldConfig(enabled=True))
    env = PerpetualVectorEnv(data, config, num_envs=2)
    env.reset(seed=0, options={"start": 2000})
    space = env.single_action_space
    space.seed(3)
    cut = set()
    for _ in range(150):
        actions = [space.sample() for _ in range(2)]
        batch = {k: np.stack([a[k] for a in actions]) for k in actions[0]}
        batch["size"][:] = 1.0  # ask for the most: the shield must act
        _, _, _, _, info = env.step(batch)
        assert info["shield_scale"].shape == (2, 3)
        assert np.all((info["shield_scale"] >= 0) & (info["shield_scale"] <= 1 + 1e-12))
        cut |= {name for mask in info["shield_rules"].ravel() for name in rule_names(mask)}
    for n in range(2):
        account = env.account(n)
        implied = reconcile(env.ledger(n), config.initial_balance, account["unrealized_pnl"])
        assert implied == pytest.approx(account["equity"], rel=1e-9)
    assert {"vol_target", "regime"} <= cut


def test_the_policy_sees_the_shields_last_scale_and_the_room_its_asset_rules_leave():
    """ShieldConfig.observe: two portfolio features per asset, checked against the book and
    against risk.sizing's own functions (vol target, regime, drawdown schedule)."""
    data = random_market(n_bars=4000, n_assets=3, seed=5)
    config = EnvConfig(window=4, risk_window=3, episode_steps=300,
                       shield=ShieldConfig(enabled=True, observe=True))
    sizing, limits = config.shield.sizing, config.limits
    env = PerpetualVectorEnv(data, config, num_envs=1)
    obs, _ = env.reset(seed=0, options={"start": 2000})
    assert portfolio_features(config)[N_PORTFOLIO:] == ("shield_scale", "shield_room")
    assert obs["portfolio"].shape == (1, 3, N_PORTFOLIO + 2)
    assert env.single_observation_space["portfolio"].shape == (3, N_PORTFOLIO + 2)
    np.testing.assert_array_equal(obs["portfolio"][0, :, N_PORTFOLIO], 1.0)  # nothing cut yet
    space = env.single_action_space
    space.seed(1)
    rooms = []
    for _ in range(60):
        action = {k: v[None] for k, v in space.sample().items()}
        action["size"][:] = 1.0
        obs, _, _, _, _ = env.step(action)
        s = env._state
        b, acct = int(s["t"][0]), s["acct"][0]
        np.testing.assert_array_equal(obs["portfolio"][0, :, N_PORTFOLIO],
                                      s["book"][0][:, SHIELD_SCALE].astype(np.float32))
        for a in range(3):
            label = (f"{VOL_LABELS[int(data.mkt[b, a, M_VOL_CODE])]}/"
                     f"{TREND_LABELS[int(data.mkt[b, a, M_TREND_CODE])]}")
            room = (vol_target_leverage(data.mkt[b, a, M_DAILY_VOL] * math.sqrt(365),
                                        sizing.vol_target)
                    * min(regime_multiplier(label, sizing.regime), 1.0)
                    * drawdown_multiplier(1 - acct[EQUITY] / acct[PEAK], sizing.drawdown))
            room = min(room / (limits.max_leverage * limits.max_concentration), 1.0)
            assert obs["portfolio"][0, a, N_PORTFOLIO + 1] == pytest.approx(room, rel=1e-6)
            rooms.append(room)
    assert min(rooms) < max(rooms) <= 1.0

