"""Policy bias analysis: flags on rule policies with known biases, outputs, space checks."""

import json

import numpy as np
import pandas as pd
import pytest
from gymnasium import spaces

from backtest.bias import (
    ActionMismatchError,
    BiasThresholds,
    ObservationMismatchError,
    analyze_bias,
    check_action_space,
    check_observation_space,
    sample_states,
)
from backtest.bias_plots import ACTIONS_CSV, CHARTS, REPORT_JSON, SUMMARY_CSV, write_bias_outputs
from envs.config import EnvConfig, ExecutionConfig
from envs.data import MarketArrays
from envs.registry import make_env
from envs.vector import PerpetualVectorEnv
from market.synthetic import SyntheticConfig, generate_market
from rl.algo import module_spec
from rl.config import TrainConfig
from rl.evaluate import module_policy

ENV_CONFIG = {"synthetic_days": 2, "env": {"record_ledger": False}}
"""Two days is the shortest synthetic market with usable bars (the first ~1500 are warm-up)."""
HELD_OUT = (2000, 2800)
N_SAMPLES = 400
ASSETS = ("BTC", "ETH", "SOL")


@pytest.fixture(scope="module")
def env():
    return make_env({**ENV_CONFIG, "num_envs": 1})


@pytest.fixture(scope="module")
def states():
    return sample_states(ENV_CONFIG, N_SAMPLES, seed=0, start_range=HELD_OUT)


def build_module(env):
    spec = module_spec(TrainConfig())
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    return spec.build()


def rule_policy(trades, seed=0):
    """Per asset: 0 short, 2 long, or None for a uniformly random decision; random sizes."""
    rng = np.random.default_rng(seed)

    def act(obs):
        n = len(obs["market"])
        trade = np.stack(
            [np.full(n, t) if t is not None else rng.integers(0, 3, n) for t in trades], axis=1
        )
        return {
            "trade": trade,
            "size": rng.uniform(0, 1, (n, len(trades))).astype(np.float32),
            "risk": rng.uniform(0, 1, (n, 2 * len(trades))).astype(np.float32),
            "execution": np.tile([0, 0], (n, len(trades))),
        }

    return act


def two_asset_env():
    market = generate_market(SyntheticConfig(assets=("BTC", "ETH"), days=2))
    return PerpetualVectorEnv(MarketArrays.from_aligned(market.aligned()), EnvConfig(), 1)


def test_always_long_and_always_short_assets_are_flagged_and_a_random_one_is_balanced(states):
    report = analyze_bias(rule_policy((2, 0, None)), states, ASSETS)

    btc, eth, sol = report.per_asset
    assert (btc.flag, eth.flag, sol.flag) == ("always_long", "always_short", "balanced")
    assert btc.long_fraction == 1.0 and btc.p_value < 1e-10 and btc.exposure_mean > 0
    assert eth.short_fraction == 1.0 and eth.exposure_mean < 0
    assert 0.4 < sol.long_share < 0.6


def test_a_significant_but_not_dominant_lean_is_leans_long(states):
    def mostly_long(obs):
        action = rule_policy((None, None, None))(obs)
        action["trade"][:, 0] = np.where(np.arange(len(obs["market"])) % 4 == 0, 0, 2)
        return action

    report = analyze_bias(mostly_long, states, ASSETS)

    assert report.per_asset[0].flag == "leans_long"
    assert report.per_asset[0].long_share == pytest.approx(0.75)


def test_flat_policy_is_always_flat_with_zero_exposure(states):
    def flat(obs):
        action = rule_policy((1, 1, 1))(obs)
        action["size"][:] = 1.0
        return action

    report = analyze_bias(flat, states, ASSETS)

    for asset in report.per_asset:
        assert asset.flat_fraction == 1.0 and asset.flag == "always_flat"
        assert asset.exposure_max_abs == 0.0 and asset.p_value is None
        assert asset.stop_loss_atr_mean is None and asset.size_at_one == 1.0


def test_too_few_directional_decisions_are_insufficient_not_a_bias(states):
    def rarely_long(obs):
        action = rule_policy((1, 1, 1))(obs)
        action["trade"][:10, 0] = 2
        return action

    report = analyze_bias(rarely_long, states, ASSETS, thresholds=BiasThresholds(dominance=0.99))

    assert report.per_asset[0].flag == "insufficient"


def test_module_counts_sum_to_num_samples_and_its_mode_agrees_with_itself(env, states):
    module = build_module(env)
    mode = module_policy(module, deterministic=True)

    report = analyze_bias(
        module_policy(module, deterministic=False), states, env.assets, deterministic_policy=mode
    )
    itself = analyze_bias(mode, states, env.assets, deterministic_policy=mode)

    assert report.num_samples == N_SAMPLES and len(report.samples) == N_SAMPLES * 3
    for asset in report.per_asset:
        assert asset.short + asset.flat + asset.long == N_SAMPLES
        assert sum(asset.execution_styles.values()) == pytest.approx(1.0)
        assert 0.0 <= asset.deterministic_trade_agreement <= 1.0
    assert all(a.deterministic_trade_agreement == 1.0 for a in itself.per_asset)
    assert all(a.deterministic_size_mae == 0.0 for a in itself.per_asset)


def test_extremes_are_the_largest_absolute_exposures_with_their_state(states):
    report = analyze_bias(rule_policy((None, None, None)), states, ASSETS)

    largest = report.samples["exposure"].abs().nlargest(10).to_numpy()
    assert [abs(s.exposure) for s in report.extremes] == pytest.approx(largest)
    top = report.extremes[0]
    a = ASSETS.index(top.asset)
    assert top.portfolio["exposure"] == pytest.approx(states["portfolio"][top.sample, a, 0])
    assert top.market_last["rsi"] == pytest.approx(states["market"][top.sample, -1, a, 2])


def test_an_out_of_range_action_is_rejected(states):
    def broken(obs):
        action = rule_policy((1, 1, 1))(obs)
        action["size"][0, 0] = 1.5
        return action

    with pytest.raises(ValueError, match="size"):
        analyze_bias(broken, states, ASSETS)


def test_outputs_are_written_and_csvs_and_json_round_trip(states, tmp_path):
    report = analyze_bias(
        rule_policy((2, 0, None)), states, ASSETS, deterministic_policy=rule_policy((2, 0, 1))
    )

    paths = write_bias_outputs(report, tmp_path / "bias")

    names = {p.name for p in paths}
    assert {SUMMARY_CSV, ACTIONS_CSV, REPORT_JSON, *CHARTS} <= names
    assert all(p.stat().st_size > 0 for p in paths)
    assert sorted(p.name for p in (tmp_path / "bias").iterdir()) == sorted(names)
    actions = pd.read_csv(tmp_path / "bias" / ACTIONS_CSV)
    pd.testing.assert_frame_equal(actions, report.samples, check_dtype=False)
    summary = pd.read_csv(tmp_path / "bias" / SUMMARY_CSV)
    assert list(summary["flag"]) == ["always_long", "always_short", "balanced"]
    assert list(summary["long"]) == [a.long for a in report.per_asset]
    assert json.loads((tmp_path / "bias" / REPORT_JSON).read_text()) == report.to_dict()
    assert all((tmp_path / "bias" / c).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for c in CHARTS)


def test_sample_states_is_deterministic_for_a_seed(states):
    again = sample_states(ENV_CONFIG, N_SAMPLES, seed=0, start_range=HELD_OUT)
    other = sample_states(ENV_CONFIG, N_SAMPLES, seed=1, start_range=HELD_OUT)

    for key in states:
        np.testing.assert_array_equal(again[key], states[key])
    assert not np.array_equal(other["market"], states["market"])


def test_sampled_states_lie_in_the_held_out_span_and_hold_positions(env, states):
    feats = env.data.feats[HELD_OUT[0] : HELD_OUT[1] + 1]

    last_rows = states["market"][:, -1]
    matches = (last_rows[:, None] == feats[None]).all(axis=(2, 3))

    assert matches.any(axis=1).all()
    assert (states["portfolio"][:, :, 0] != 0).any(axis=1).mean() > 0.8
    assert all(v.shape[0] == N_SAMPLES and np.isfinite(v).all() for v in states.values())


def test_a_span_shorter_than_the_warmup_still_samples_inside_it(env):
    states = sample_states(ENV_CONFIG, 8, seed=0, start_range=(2000, 2003), warmup_steps=32)

    feats = env.data.feats[2000:2004]
    assert ((states["market"][:, -1][:, None] == feats[None]).all(axis=(2, 3))).any(axis=1).all()


def test_a_three_asset_model_on_a_two_asset_env_names_both_shapes_and_the_assets(env):
    model_space = build_module(env).observation_space
    small = two_asset_env()

    with pytest.raises(ObservationMismatchError) as error:
        check_observation_space(model_space, small.single_observation_space, assets=small.assets)

    message = str(error.value)
    assert "model expects market (24, 3, 12) but the env produces market (24, 2, 12)" in message
    assert "portfolio (3, 6)" in message and "portfolio (2, 6)" in message
    assert "the data has 2 assets (BTC, ETH), the model was trained on 3" in message
    assert "expects risk" not in message


def test_missing_extra_and_dtype_differences_are_each_named(env):
    actual = env.single_observation_space
    box = lambda shape, dtype=np.float32: spaces.Box(-np.inf, np.inf, shape, dtype)  # noqa: E731
    expected = spaces.Dict(
        {"market": box((24, 3, 12), np.float64), "text": box((8,)), "risk": box((16, 6))}
    )

    with pytest.raises(ObservationMismatchError) as error:
        check_observation_space(expected, actual, what="checkpoint")

    message = str(error.value)
    assert "checkpoint expects text (8,) but the env produces no 'text'" in message
    assert "the env produces portfolio (3, 6) that the checkpoint was not built for" in message
    assert "market (24, 3, 12) float64 but the env produces market (24, 3, 12) float32" in message
    assert "3 differences" in message


def test_action_spaces_name_the_asset_count_and_the_horizon():
    model = make_env({**ENV_CONFIG, "num_envs": 1}).single_action_space
    small = two_asset_env()
    longer = PerpetualVectorEnv(
        small.data, EnvConfig(execution=ExecutionConfig(max_horizon=4)), 1
    ).single_action_space

    with pytest.raises(ActionMismatchError) as error:
        check_action_space(model, small.single_action_space, assets=small.assets)
    with pytest.raises(ActionMismatchError, match="horizons up to 4 bars, the model 5 and 8"):
        check_action_space(small.single_action_space, longer)

    assert "model expects trade MultiDiscrete([3, 3, 3])" in str(error.value)
    assert "the data has 2 assets (BTC, ETH), the model was trained on 3" in str(error.value)


def test_matching_spaces_pass(env):
    module = build_module(env)

    check_observation_space(module.observation_space, env.single_observation_space)
    check_action_space(module.action_space, env.single_action_space)


def test_bounds_that_differ_are_shown():
    expected = spaces.Dict({"risk": spaces.Box(-1.0, 1.0, (16, 6), np.float32)})
    actual = spaces.Dict({"risk": spaces.Box(-np.inf, np.inf, (16, 6), np.float32)})

    with pytest.raises(ObservationMismatchError, match=r"risk \(16, 6\) in \[-1.0, 1.0\] but"):
        check_observation_space(expected, actual)
