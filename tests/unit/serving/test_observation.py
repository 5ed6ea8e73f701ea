"""serving.observation: request bars -> the env's observation, and every refusal it makes."""

import json
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from envs.config import EnvConfig
from envs.data import OBS_FEATURES, MarketArrays
from envs.spaces import observation_space
from envs.vector import PerpetualVectorEnv
from market.features import compute_features
from market.synthetic import SyntheticConfig, generate_market
from serving.observation import (
    InputError,
    ObservationSpec,
    observation_from_arrays,
    observation_from_bars,
    resolve_assets,
)
from serving.schemas import Bar, Observation, PortfolioState

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
EMA_FEATURES = ("macd_diff_z", "atr_pct_z")
"""Z-scores of exponential averages: at min_bars they still remember where the bars start."""
DRIFT_FEATURES = ("bb_wband_z",)
"""pandas' online rolling std depends on where the series starts, in the last bits."""


@pytest.fixture(scope="module")
def aligned():
    return generate_market(SyntheticConfig(days=2, seed=11)).aligned()


@pytest.fixture(scope="module")
def env_data(aligned):
    return MarketArrays.from_aligned(aligned)


@pytest.fixture(scope="module")
def spec():
    config = EnvConfig()
    return ObservationSpec.from_spaces(
        observation_space(config, 3, len(OBS_FEATURES)), SYMBOLS, config
    )


@pytest.fixture(scope="module")
def all_bars(aligned):
    """Every bar of the market as request bars, keyed by short asset name."""
    stamps = aligned.index.as_unit("ms").asi8
    out = {}
    for asset in ("BTC", "ETH", "SOL"):
        f = aligned[asset]
        rows = zip(stamps, *(f[c] for c in ("open", "high", "low", "close", "volume", "mark")),
                   f["funding_rate"], f["funding_event"], strict=True)
        out[asset] = [
            Bar(timestamp=int(t), open=o, high=h, low=lo, close=c, volume=v, mark=m,
                funding_rate=rate if event else None)
            for t, o, h, lo, c, v, m, rate, event in rows
        ]
    return out


def last(bars, count, end=None):
    """The `count` bars ending at bar `end` (inclusive; default the last) of every asset."""
    stop = None if end is None else end + 1
    return {a: b[:stop][-count:] for a, b in bars.items()}


def feature_columns(names):
    return [OBS_FEATURES.index(n) for n in names]


def test_observation_at_min_bars_equals_the_env_observation_at_that_bar(all_bars, env_data, spec):
    b = env_data.n_bars - 2  # the env's last possible start
    env = PerpetualVectorEnv(env_data, EnvConfig(record_ledger=False))
    expected, _ = env.reset(options={"start": b})

    obs, stamp = observation_from_bars(last(all_bars, spec.min_bars, b), spec)

    assert stamp == pd.Timestamp(env_data.timestamps[b], tz="UTC")
    assert {k: v.shape for k, v in obs.items()} == {k: v.shape for k, v in expected.items()}
    assert all(v.dtype == np.float32 for v in obs.values())
    np.testing.assert_array_equal(obs["risk"], expected["risk"])
    np.testing.assert_array_equal(obs["portfolio"], expected["portfolio"])
    exact = [f for f in OBS_FEATURES if f not in EMA_FEATURES + DRIFT_FEATURES]
    ix = feature_columns(exact)
    np.testing.assert_array_equal(obs["market"][..., ix], expected["market"][..., ix])
    ix = feature_columns(EMA_FEATURES)
    np.testing.assert_allclose(obs["market"][..., ix], expected["market"][..., ix], atol=2e-3)
    ix = feature_columns(DRIFT_FEATURES)
    np.testing.assert_allclose(obs["market"][..., ix], expected["market"][..., ix], atol=1e-6)


def test_observation_from_settled_bars_equals_the_env_features_to_float32(all_bars, env_data, spec):
    b = env_data.n_bars - 1
    expected = env_data.feats[b - spec.window + 1 : b + 1]

    obs, _ = observation_from_bars(last(all_bars, spec.settled_bars), spec)

    ix = feature_columns([f for f in OBS_FEATURES if f not in DRIFT_FEATURES])
    np.testing.assert_array_equal(obs["market"][0][..., ix], expected[..., ix])
    np.testing.assert_allclose(obs["market"][0], expected, rtol=0, atol=1e-6)


def test_min_bars_is_the_fewest_that_define_every_feature_of_the_window(aligned, spec):
    def window_defined(count):
        feats = compute_features(aligned.iloc[-count:]).iloc[-spec.window :]
        observed = feats.columns.get_level_values("feature").isin(OBS_FEATURES)
        return np.isfinite(feats.loc[:, observed].to_numpy()).all()

    assert window_defined(spec.min_bars)
    assert not window_defined(spec.min_bars - 1)
    assert spec.min_bars == 1499 + spec.window  # 60-bar volatility, then its 1440-bar z-score
    assert spec.settled_bars > spec.min_bars


def test_one_bar_fewer_than_min_bars_is_too_few(all_bars, spec):
    with pytest.raises(InputError) as err:
        observation_from_bars(last(all_bars, spec.min_bars - 1), spec)

    assert err.value.code == "too_few_bars"
    assert err.value.details[0] == {
        "asset": "BTC",
        "bars": spec.min_bars - 1,
        "min_bars": spec.min_bars,
    }


def test_dict_bars_as_the_http_layer_sends_them_give_the_same_observation(all_bars, spec):
    bars = last(all_bars, spec.min_bars)
    dumped = {a: [b.model_dump() for b in rows] for a, rows in bars.items()}

    from_models, stamp = observation_from_bars(bars, spec)
    from_dicts, stamp_dicts = observation_from_bars(dumped, spec)

    assert stamp == stamp_dicts
    for part in from_models:
        np.testing.assert_array_equal(from_models[part], from_dicts[part])


def test_mark_defaults_to_close(all_bars, spec):
    bars = last(all_bars, spec.min_bars)
    no_mark = {a: [b.model_copy(update={"mark": None}) for b in rows] for a, rows in bars.items()}

    obs, _ = observation_from_bars(no_mark, spec)

    assert (obs["market"][..., OBS_FEATURES.index("basis_z")] == 0).all()  # basis 0 throughout


def edit(bars, asset, index, **fields):
    rows = list(bars[asset])
    rows[index] = rows[index].model_copy(update=fields)
    return {**bars, asset: rows}


def swap(bars, asset, i):
    rows = list(bars[asset])
    rows[i], rows[i + 1] = rows[i + 1], rows[i]
    return {**bars, asset: rows}


def without(bars, index):
    return {a: rows[:index] + rows[index + 1 :] for a, rows in bars.items()}


def last_funding_bar(bars):
    return max(i for i, b in enumerate(bars["BTC"]) if b.funding_rate is not None)


BAD_REQUESTS = {
    "unknown_assets": lambda b: {**b, "DOGE": b["BTC"]},
    "missing_assets": lambda b: {a: rows for a, rows in b.items() if a != "SOL"},
    "duplicate_assets": lambda b: {**b, "btc": b["BTC"]},
    "unsorted_timestamps": lambda b: swap(b, "ETH", 700),
    "irregular_bars": lambda b: without(b, 900),
    "misaligned_timestamps": lambda b: {
        **b,
        "SOL": [x.model_copy(update={"timestamp": x.timestamp + 60_000}) for x in b["SOL"]],
    },
    "bad_bar": lambda b: edit(b, "ETH", 5, high=b["ETH"][5].close * 0.99),
    "missing_funding": lambda b: edit(b, "BTC", last_funding_bar(b), funding_rate=None),
}


@pytest.mark.parametrize("code", BAD_REQUESTS)
def test_each_bad_bars_request_is_refused_with_its_code(all_bars, spec, code):
    bars = BAD_REQUESTS[code](last(all_bars, spec.min_bars + 1))

    with pytest.raises(InputError) as err:
        observation_from_bars(bars, spec)

    assert err.value.code == code
    assert err.value.details and err.value.message
    json.dumps(err.value.details)  # the HTTP body carries them as they are


def test_bar_problems_name_the_asset_and_the_first_offending_bar(all_bars, spec):
    bars = last(all_bars, spec.min_bars + 1)

    with pytest.raises(InputError) as gap:
        observation_from_bars(without(bars, 900), spec)
    with pytest.raises(InputError) as unsorted:
        observation_from_bars(swap(bars, "ETH", 700), spec)

    assert gap.value.details[0]["asset"] == "BTC" and gap.value.details[0]["index"] == 900
    assert unsorted.value.details == [
        {"asset": "ETH", "index": 701, "timestamp": bars["ETH"][700].timestamp,
         "field": "timestamp"}
    ]


def test_off_grid_timestamps_are_irregular(all_bars, spec):
    bars = last(all_bars, spec.min_bars)
    shifted = {a: [b.model_copy(update={"timestamp": b.timestamp + 1}) for b in rows]
               for a, rows in bars.items()}

    with pytest.raises(InputError) as err:
        observation_from_bars(shifted, spec)

    assert err.value.code == "irregular_bars" and err.value.details[0]["index"] == 0


def test_non_finite_bar_values_are_refused_even_past_the_schema(all_bars, spec):
    dumped = {
        a: [b.model_dump() for b in rows] for a, rows in last(all_bars, spec.min_bars).items()
    }
    dumped["SOL"][10]["close"] = float("nan")

    with pytest.raises(InputError) as err:
        observation_from_bars(dumped, spec)

    assert err.value.code == "non_finite"
    assert err.value.details[0]["asset"] == "SOL" and err.value.details[0]["index"] == 10


def test_flat_prices_leave_features_undefined(all_bars, spec):
    bars = {
        a: [Bar(timestamp=b.timestamp, open=100.0, high=100.0, low=100.0, close=100.0,
                volume=1.0, funding_rate=0.0 if b.funding_rate is not None else None)
            for b in rows]
        for a, rows in last(all_bars, spec.min_bars).items()
    }

    with pytest.raises(InputError) as err:
        observation_from_bars(bars, spec)

    assert err.value.code == "undefined_features"
    assert {"asset": "BTC", "feature": "atr", "index": spec.min_bars - spec.window} in (
        err.value.details
    )


def test_a_model_observing_other_features_cannot_take_bars(all_bars, spec):
    with pytest.raises(InputError) as err:
        observation_from_bars(last(all_bars, spec.min_bars), replace(spec, n_features=13))

    assert err.value.code == "bars_unsupported"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["btc", "Eth", "SOL"], ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]),
        (
            ["BTC/USDT:USDT", "eth/usdt:usdt", "sol"],
            ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"],
        ),
    ],
)
def test_request_names_resolve_by_full_name_or_base_in_any_case(spec, requested, expected):
    assert resolve_assets(requested, spec) == dict(zip(requested, expected, strict=True))


def test_full_symbols_resolve_against_a_model_with_short_names(spec):
    short = replace(spec, assets=("BTC", "ETH", "SOL"))

    assert resolve_assets(["BTC/USDT:USDT", "eth", "SOL"], short)["BTC/USDT:USDT"] == "BTC"


def test_a_symbol_of_another_quote_is_unknown_and_a_shared_base_is_ambiguous(spec):
    two_btc = replace(spec, assets=("BTC/USDT:USDT", "BTC/USDC:USDC", "ETH/USDT:USDT"))

    with pytest.raises(InputError) as other_quote:
        resolve_assets(["BTC/USDC:USDC", "ETH", "SOL"], spec)
    with pytest.raises(InputError) as shared:
        resolve_assets(["BTC", "ETH"], two_btc)

    assert other_quote.value.code == "unknown_assets"
    assert other_quote.value.details == [{"asset": "BTC/USDC:USDC", "matches": []}]
    assert shared.value.code == "ambiguous_assets"


def test_portfolio_part_shows_exposure_leverage_and_margin_of_the_book(all_bars, spec):
    book = PortfolioState(positions={"BTC": 500_000.0, "eth": -250_000.0}, equity=250_000.0)

    obs, _ = observation_from_bars(last(all_bars, spec.min_bars), spec, book)

    expected_portfolio = np.zeros((1, 3, spec.n_portfolio), np.float32)
    expected_portfolio[0, :, 0] = [2.0, -1.0, 0.0]
    np.testing.assert_array_equal(obs["portfolio"], expected_portfolio)
    # Binance brackets: 500k is in the 1% bracket (allowance 2550), 250k in 0.5% (allowance 50)
    margin = (500_000 * 0.01 - 2_550 + 250_000 * 0.005 - 50) / 250_000
    expected_risk = np.zeros((1, spec.risk_window, spec.n_risk), np.float32)
    expected_risk[0, -1, 2:4] = [750_000 / 250_000 / 20.0, margin]
    np.testing.assert_allclose(obs["risk"], expected_risk, rtol=1e-6, atol=0)


def test_portfolio_positions_of_unknown_assets_are_refused(all_bars, spec):
    with pytest.raises(InputError) as err:
        observation_from_bars(
            last(all_bars, spec.min_bars), spec, PortfolioState(positions={"DOGE": 1.0})
        )

    assert err.value.code == "unknown_assets"


def ready_observation(spec, **parts):
    shapes = spec.shapes
    full = {k: np.arange(np.prod(s), dtype=float).reshape(s).tolist() for k, s in shapes.items()}
    return Observation.model_construct(**{**full, **parts})


def test_a_ready_observation_becomes_float32_arrays_with_a_batch_axis(spec):
    obs = observation_from_arrays(ready_observation(spec), spec)

    assert {k: v.shape for k, v in obs.items()} == {k: (1, *s) for k, s in spec.shapes.items()}
    assert all(v.dtype == np.float32 for v in obs.values())
    assert obs["risk"][0, 1, 0] == spec.n_risk


@pytest.mark.parametrize(
    ("part", "value", "code"),
    [
        ("market", [[[0.0]]], "bad_shape"),
        ("risk", [[0.0] * 6] * 15, "bad_shape"),
        ("portfolio", [[0.0] * 6, [0.0] * 5, [0.0] * 6], "bad_shape"),
        ("risk", [[1e39] + [0.0] * 5] + [[0.0] * 6] * 15, "non_finite"),
        ("portfolio", [[float("nan")] * 6] * 3, "non_finite"),
    ],
)
def test_a_ready_observation_with_a_bad_part_is_refused_naming_it(spec, part, value, code):
    with pytest.raises(InputError) as err:
        observation_from_arrays(ready_observation(spec, **{part: value}), spec)

    assert err.value.code == code and err.value.details[0]["part"] == part
    assert code != "bad_shape" or err.value.details[0]["expected"] == list(spec.shapes[part])


def test_input_errors_survive_pickling_as_ray_ships_them():
    err = InputError("bad_bar", "high below close", [{"asset": "BTC", "index": 3}])

    back = pickle.loads(pickle.dumps(err))

    assert (back.code, back.message, back.details) == (err.code, err.message, err.details)


def test_a_space_that_the_env_config_would_not_make_is_refused():
    config = EnvConfig()
    space = observation_space(config.model_copy(update={"window": 8}), 3, len(OBS_FEATURES))

    with pytest.raises(ValueError, match="does not match"):
        ObservationSpec.from_spaces(space, SYMBOLS, config)


def test_a_served_account_observes_as_the_backtest_bit_for_bit_over_a_whole_backtest(
    aligned, all_bars, env_data
):
    """Every decision of a backtest: the bars up to it and the account a paper book kept
    (as `quantum live` serialises it) give the backtest's observation exactly."""
    from backtest.engine import backtest_config, run_policy, span_steps
    from envs.account import Account
    from envs.spaces import action_space
    from live.book import PaperBook

    config = EnvConfig(bars_per_step=15)
    spec = ObservationSpec.from_spaces(
        observation_space(config, 3, len(OBS_FEATURES)), SYMBOLS, config
    )
    start, end = 1600, 2800
    n_steps = span_steps(env_data, config, start, end)

    def policy(seen, accounts=None):
        space = action_space(config, 3)
        space.seed(4)

        def act(obs):
            seen.append({k: v.copy() for k, v in obs.items()})  # the backtest reuses buffers
            if accounts is not None:
                accounts.append(json.loads(book.account.to_json()))
            action = {k: np.asarray(v)[None] for k, v in space.sample().items()}
            action["trade"][:] = (len(seen) // 7) % 3  # hold for a while, then turn
            action["size"][:] = 0.1  # 2x per asset: losses stay under the daily limit
            action["risk"][:] = 1.0  # wide stops: positions are held
            return action

        return act

    expected, seen, accounts = [], [], []
    run_policy(policy(expected), env_data, config, start, end, "p")
    book = PaperBook(backtest_config(config, n_steps),
                     Account.fresh(env_data, config.initial_balance, config.risk_window, start))
    act = policy(seen, accounts)
    book.decide(env_data, act)
    for b in range(start + 1, start + n_steps * config.bars_per_step + 1):
        more = book.steps_done + 1 < n_steps
        book.on_bar(env_data, int(env_data.timestamps[b]), act if more else None)
    assert len(accounts) == len(expected) == n_steps
    assert sum(any(r["quantity"] for r in a["book"].values()) for a in accounts) > n_steps // 2
    for account, want in zip(accounts, expected, strict=True):
        b = int(np.searchsorted(env_data.timestamps, account["bar_time"]))
        served, _ = observation_from_bars({a: bars[: b + 1] for a, bars in all_bars.items()},
                                          spec, account=account)
        for part in ("market", "risk", "portfolio"):
            np.testing.assert_array_equal(served[part], want[part], err_msg=f"{part} at {b}")


def test_a_bad_account_is_refused_with_its_code(all_bars, env_data, spec):
    from envs.account import Account

    account = Account.fresh(env_data, 1e6, spec.risk_window, 2000).to_dict()
    bars = {a: b[:2001] for a, b in all_bars.items()}
    with pytest.raises(InputError, match="bad_account") as err:
        observation_from_bars({a: b[:2002] for a, b in all_bars.items()}, spec, account=account)
    assert "send bars up to the account's bar" in err.value.message
    with pytest.raises(InputError, match="not both"):
        observation_from_bars(bars, spec, PortfolioState(), account)
    with pytest.raises(InputError, match="bad_account"):
        observation_from_bars(bars, spec, account={**account, "format": 0})


def test_headlines_in_a_bars_request_are_observed_as_the_env_observes_its_news(aligned, all_bars):
    """A model trained with news (features and text): the request's headlines become the
    same news features and text slots the env shows at that bar; headlines first seen
    after the last bar change nothing; a model without news refuses headlines."""
    from envs.core.layout import M_CLOSE
    from envs.news_features import with_news
    from envs.spaces import text_shape
    from news.source import NewsConfig, headlines_for

    news = {"text": True, "synthetic": {"seed": 4, "move_quantile": 0.9, "min_gap_bars": 60}}
    config = EnvConfig(record_ledger=False)
    plain = MarketArrays.from_aligned(aligned)
    data = with_news(plain, news)
    space = observation_space(config, 3, len(data.features), text_shape(data))
    spec = ObservationSpec.from_spaces(space, SYMBOLS, config, news=news)
    b = data.n_bars - 2
    env = PerpetualVectorEnv(data, config)
    expected, _ = env.reset(options={"start": b})

    headlines = headlines_for(NewsConfig.model_validate(news), plain.timestamps,
                              plain.mkt[:, :, M_CLOSE], plain.assets)
    sent = [{"title": r.title, "summary": r.summary, "first_seen": r.first_seen.isoformat(),
             "assets": [f"{a}/USDT:USDT" for a in r.assets]} for r in headlines.itertuples()]
    assert len(sent) > 20

    obs, _ = observation_from_bars(last(all_bars, b + 1, b), spec, news=sent)

    assert obs.keys() == expected.keys()
    np.testing.assert_array_equal(obs["text"], expected["text"])
    assert (obs["text"][0, :, 384 + 1] > 0).any()  # headlines in the slots
    np.testing.assert_array_equal(obs["market"][..., len(OBS_FEATURES):],
                                  expected["market"][..., len(OBS_FEATURES):])
    later = observation_from_bars(
        last(all_bars, b + 1, b), spec,
        news=[*sent, {"title": "Bitcoin crashes", "assets": ["BTC"],
                      "first_seen": (pd.Timestamp(data.timestamps[b], tz="UTC")
                                     + pd.Timedelta("61s")).isoformat()}])[0]
    np.testing.assert_array_equal(later["text"], obs["text"])
    np.testing.assert_array_equal(later["market"], obs["market"])
    plain_spec = ObservationSpec.from_spaces(
        observation_space(config, 3, len(OBS_FEATURES)), SYMBOLS, config)
    with pytest.raises(InputError, match="news_unsupported"):
        observation_from_bars(last(all_bars, plain_spec.min_bars), plain_spec, news=sent[:1])
