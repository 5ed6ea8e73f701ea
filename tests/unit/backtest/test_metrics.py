"""compute_metrics on a hand-made backtest, checked against arithmetic done in the test."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from backtest.metrics import (
    METRIC_KEYS,
    compute_metrics,
    metrics_table,
    step_returns,
    trades_from_ledger,
)
from backtest.result import BacktestResult
from envs.ledger import LEDGER_COLUMNS

INDEX = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC")
R = [0.1, -0.1, 0.0, 0.1, 0.1, -0.05, 0.1]
"""Step returns of the hand-made run; equity starts at 100."""
EQUITY = [100.0, 110.0, 99.0, 99.0, 108.9, 119.79, 113.8005, 125.18055]
BENCH = [100.0, 105.0, 100.0, 102.0, 104.0, 110.0, 108.0, 112.0]


def row(bar, kind, qty=0.0, price=0.0, asset="BTC", **costs):
    values = dict.fromkeys(LEDGER_COLUMNS[6:], 0.0) | costs
    return {"timestamp": INDEX[0] + pd.Timedelta(days=bar), "bar": bar, "asset": asset,
            "kind": kind, "qty": qty, "price": price, "notional": abs(qty) * price,
            **values}


def ledger(*rows):
    return pd.DataFrame(list(rows), columns=list(LEDGER_COLUMNS))


TWO_ROUND_TRIPS = ledger(
    row(1, "fill", 1.0, 100.0, fee=0.04, spread=0.05, impact=0.01),
    row(2, "funding", 1.0, 99.0, funding=0.02),
    row(3, "fill", -1.0, 110.0, fee=0.044, spread=0.05, impact=0.01, realized_pnl=10.0),
    row(4, "fill", -2.0, 50.0, fee=0.04),
    row(5, "cancel", -1.0),
    row(6, "stop_loss", 2.0, 55.0, fee=0.044, realized_pnl=-10.0),
)


def make_result(equity=EQUITY, ledger_frame=TWO_ROUND_TRIPS, benchmark=None, rf=0.03, **cols):
    n = len(equity)
    steps = pd.DataFrame({"equity": equity, "gross_notional": 0.0, "leverage": 0.0,
                          "traded_notional": 0.0, "fees": 0.0, "funding": 0.0,
                          "impact": 0.0, "spread": 0.0}, index=INDEX[:n])
    for name, values in cols.items():
        steps[name] = values
    positions = pd.DataFrame({"BTC": cols.get("gross_notional", 0.0)}, index=INDEX[:n])
    return BacktestResult(
        name="hand", assets=("BTC",), steps=steps, positions=positions,
        prices=pd.DataFrame({"BTC": 100.0}, index=INDEX[:n]), ledger=ledger_frame,
        initial_capital=equity[0], periods_per_year=365.0, risk_free_rate=rf,
        benchmark=None if benchmark is None else pd.Series(benchmark, index=INDEX[:n]),
    )


@pytest.fixture(scope="module")
def metrics():
    result = make_result(
        benchmark=BENCH,
        gross_notional=[0.0, 110.0, 99.0, 0.0, 100.0, 110.0, 0.0, 0.0],
        leverage=[0.0, 1.0, 1.0, 0.0, 0.9, 0.9, 0.0, 0.0],
        traded_notional=[0.0, 100.0, 0.0, 110.0, 100.0, 0.0, 110.0, 0.0],
        fees=[0.0, 0.04, 0.04, 0.084, 0.124, 0.124, 0.168, 0.168],
        funding=[0.0, 0.0, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02],
        impact=[0.0, 0.01, 0.01, 0.02, 0.02, 0.02, 0.02, 0.02],
        spread=[0.0, 0.05, 0.05, 0.1, 0.1, 0.1, 0.1, 0.1],
    )
    return compute_metrics(result, n_trials=10, var_confidence=None)


def test_returns_and_risk_metrics_match_hand_arithmetic(metrics):
    rf = 1.03 ** (1 / 365) - 1
    mean = 0.25 / 7
    var = sum((x - mean) ** 2 for x in R) / 6
    downside = math.sqrt(sum(min(x - rf, 0.0) ** 2 for x in R) / 7)  # the 0.0 step counts
    growth = 1.1**4 * 0.9 * 0.95

    assert metrics["n_steps"] == 7
    assert metrics["total_return"] == pytest.approx(growth - 1, rel=1e-12)
    assert metrics["annualized_return"] == pytest.approx(growth ** (365 / 7) - 1, rel=1e-9)
    assert metrics["annualized_volatility"] == pytest.approx(math.sqrt(var * 365), rel=1e-12)
    assert metrics["sharpe"] == pytest.approx((mean - rf) / math.sqrt(var) * math.sqrt(365))
    assert metrics["sortino"] == pytest.approx((mean - rf) / downside * math.sqrt(365))
    assert metrics["max_drawdown"] == pytest.approx(0.1, rel=1e-12)  # 110 -> 99
    assert metrics["calmar"] == pytest.approx((growth ** (365 / 7) - 1) / 0.1, rel=1e-9)
    # under water from day 1 (110) until day 5 (119.79): 4 steps, 4 days
    assert metrics["max_drawdown_duration_steps"] == 4
    assert metrics["max_drawdown_duration_days"] == 4.0


def hand_sharpe_stats():
    """Per-step Sharpe of R over the daily rf, its skew, Pearson kurtosis and standard error."""
    rf = 1.03 ** (1 / 365) - 1
    mean = 0.25 / 7
    m2, m3, m4 = (sum((x - mean) ** k for x in R) / 7 for k in (2, 3, 4))
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    sr = (mean - rf) / math.sqrt(m2 * 7 / 6)
    se = math.sqrt((1 - skew * sr + (kurt - 1) / 4 * sr**2) / 6)
    return sr, skew, kurt, se


def test_moments_and_probabilistic_sharpe_match_hand_arithmetic(metrics):
    sr, skew, kurt, se = hand_sharpe_stats()
    g = 0.5772156649015329
    sr0 = math.sqrt(1 / 6) * ((1 - g) * norm.ppf(1 - 1 / 10) + g * norm.ppf(1 - 1 / (10 * math.e)))

    assert metrics["skewness"] == pytest.approx(skew, rel=1e-9)
    assert metrics["excess_kurtosis"] == pytest.approx(kurt - 3, rel=1e-9)
    assert metrics["probabilistic_sharpe"] == pytest.approx(norm.cdf(sr / se), rel=1e-9)
    assert metrics["deflated_sharpe"] == pytest.approx(norm.cdf((sr - sr0) / se), rel=1e-9)
    assert metrics["n_trials"] == 10


def test_trade_metrics_count_round_trips_net_of_their_costs(metrics):
    long_net = 10.0 - 0.04 - 0.044 - 0.05 - 0.05 - 0.01 - 0.01 - 0.02  # 9.776
    short_net = -10.0 - 0.04 - 0.044  # -10.084

    assert metrics["n_trades"] == 2
    assert metrics["open_trades"] == 0
    assert metrics["win_rate"] == 0.5
    assert metrics["profit_factor"] == pytest.approx(long_net / -short_net, rel=1e-12)
    assert metrics["avg_trade_pnl"] == pytest.approx((long_net + short_net) / 2, rel=1e-12)
    assert metrics["step_win_rate"] == pytest.approx(4 / 6)  # the 0.0 step is neither


def test_exposure_turnover_and_costs_match_hand_arithmetic(metrics):
    assert metrics["exposure"] == pytest.approx(4 / 7)
    assert metrics["mean_leverage"] == pytest.approx(3.8 / 7)
    assert metrics["turnover"] == pytest.approx(420.0 / (sum(EQUITY) / 8) * 365 / 7)
    assert metrics["fees"] == pytest.approx(0.168)
    assert metrics["funding"] == pytest.approx(0.02)
    assert metrics["impact"] == pytest.approx(0.02)
    assert metrics["spread"] == pytest.approx(0.1)
    assert metrics["liquidations"] == 0
    assert metrics["bad_debt"] == 0.0


def test_benchmark_comparison_matches_hand_arithmetic(metrics):
    b = [BENCH[i + 1] / BENCH[i] - 1 for i in range(7)]
    mr, mb = sum(R) / 7, sum(b) / 7
    cov = sum((x - mr) * (y - mb) for x, y in zip(R, b, strict=True)) / 6
    var_r = sum((x - mr) ** 2 for x in R) / 6
    var_b = sum((y - mb) ** 2 for y in b) / 6
    active = [x - y for x, y in zip(R, b, strict=True)]
    ma = sum(active) / 7
    sd_active = math.sqrt(sum((a - ma) ** 2 for a in active) / 6)

    assert metrics["benchmark_total_return"] == pytest.approx(0.12)
    assert metrics["excess_return"] == pytest.approx(1.1**4 * 0.9 * 0.95 - 1 - 0.12)
    assert metrics["beta"] == pytest.approx(cov / var_b)
    assert metrics["correlation"] == pytest.approx(cov / math.sqrt(var_r * var_b))
    assert metrics["information_ratio"] == pytest.approx(ma / sd_active * math.sqrt(365))


def test_metrics_are_plain_json_numbers(metrics):
    assert all(type(v) in (int, float) for v in metrics.values())
    assert json.loads(json.dumps(metrics)).keys() == metrics.keys()


def test_compute_metrics_writes_exactly_the_schema_in_its_order():
    """backtest.metrics.Metrics is what readers of metrics.json (llm.facts) name keys from."""
    full = compute_metrics(make_result(benchmark=BENCH), var_confidence=0.5)
    assert tuple(full) == METRIC_KEYS
    bare = compute_metrics(make_result(), var_confidence=None)
    assert tuple(bare) == tuple(k for k in METRIC_KEYS if k in bare)
    assert set(METRIC_KEYS) - set(bare) == {"benchmark_total_return", "excess_return", "beta",
                                            "correlation", "information_ratio", "var_historical",
                                            "es_historical", "var_cornish_fisher",
                                            "es_cornish_fisher"}


def test_flat_policy_has_undefined_ratios_and_no_trades_without_warnings():
    result = make_result(equity=[1000.0] * 8, ledger_frame=ledger(), benchmark=[1000.0] * 8)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(result, n_trials=5, var_confidence=None)

    assert (m["total_return"], m["max_drawdown"], m["max_drawdown_duration_steps"]) == (0, 0, 0)
    assert (m["n_trades"], m["exposure"], m["turnover"], m["fees"]) == (0, 0, 0, 0)
    undefined = ["sharpe", "sortino", "calmar", "win_rate", "profit_factor", "avg_trade_pnl",
                 "skewness", "probabilistic_sharpe", "deflated_sharpe", "beta", "correlation",
                 "step_win_rate"]
    assert all(math.isnan(m[k]) for k in undefined)


def test_run_ending_at_zero_equity_loses_everything():
    liquidation = ledger(
        row(1, "fill", 1.0, 100.0),
        row(2, "liquidation", -1.0, 60.0, liquidation_fee=0.5, realized_pnl=-40.0),
        row(2, "liquidation", asset="", bad_debt=3.0),
    )

    m = compute_metrics(make_result([100.0, 80.0, 0.0], liquidation), var_confidence=None)

    assert (m["annualized_return"], m["max_drawdown"]) == (-1.0, 1.0)
    assert (m["liquidations"], m["bad_debt"], m["n_trades"]) == (1, 3.0, 1)
    assert m["avg_trade_pnl"] == pytest.approx(-40.5)


def test_trial_sharpes_set_the_variance_and_the_number_of_trials():
    trials = [0.5, 1.5, 2.5]  # annualised; sample variance 1.0, per period 1 / 365
    base = make_result()

    m = compute_metrics(base, var_confidence=None, trial_sharpes=trials)
    sr, _, _, se = hand_sharpe_stats()
    g = 0.5772156649015329
    sr0 = math.sqrt(1 / 365) * ((1 - g) * norm.ppf(2 / 3) + g * norm.ppf(1 - 1 / (3 * math.e)))

    assert m["n_trials"] == 3
    assert m["deflated_sharpe"] == pytest.approx(norm.cdf((sr - sr0) / se), rel=1e-9)


def test_benchmark_on_other_timestamps_is_rejected():
    result = make_result(benchmark=BENCH)
    shifted = BacktestResult(**{**result.__dict__, "benchmark": result.benchmark.shift(1, "D")})

    with pytest.raises(ValueError, match="share the steps index"):
        compute_metrics(shifted, var_confidence=None)


def test_var_and_expected_shortfall_come_from_the_risk_engine():
    from risk import var as var_module
    r = np.array(R * 6)  # 42 steps
    equity = 100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + r)))
    index = pd.date_range("2024-01-01", periods=len(equity), freq="D", tz="UTC")
    base = make_result(ledger_frame=ledger())
    frames = {"steps": base.steps.reindex(index, method="ffill").assign(equity=equity),
              "positions": pd.DataFrame({"BTC": 0.0}, index=index),
              "prices": pd.DataFrame({"BTC": 100.0}, index=index)}
    long_run = BacktestResult(**{**base.__dict__, **frames})

    m = compute_metrics(long_run, var_confidence=0.9)
    short = compute_metrics(make_result(), var_confidence=0.9)

    for method in ("historical", "cornish_fisher"):
        for key, fn in (("var", var_module.value_at_risk), ("es", var_module.expected_shortfall)):
            expected = fn(step_returns(equity), confidence=0.9, method=method)
            assert m[f"{key}_{method}"] == pytest.approx(expected, rel=1e-12)
        assert m[f"es_{method}"] >= m[f"var_{method}"] > 0
        assert math.isnan(short[f"var_{method}"])  # 7 steps: too few for risk.var


def test_flip_closes_one_trade_and_opens_the_other_with_costs_split_by_quantity():
    frame = ledger(
        row(1, "fill", 2.0, 100.0, fee=0.2),
        row(2, "fill", -1.0, 105.0, fee=0.1, realized_pnl=5.0),  # partial close stays in
        row(3, "fill", -4.0, 110.0, fee=0.4, spread=0.8, realized_pnl=10.0),  # 1 closes, 3 open
        row(4, "funding", -3.0, 110.0, funding=-0.3),  # the short receives funding
    )

    trades = trades_from_ledger(frame)

    first, second = trades.to_dict("records")
    assert (first["side"], first["closed"], first["exit_kind"], first["close_bar"]) == (
        1, True, "fill", 3)
    assert first["gross_pnl"] == 15.0
    assert first["fees"] == pytest.approx(0.2 + 0.1 + 0.4 / 4)
    assert first["net_pnl"] == pytest.approx(15.0 - 0.4 - 0.8 / 4)
    assert (second["side"], second["closed"], second["close_bar"]) == (-1, False, -1)
    assert second["entry_notional"] == pytest.approx(3 * 110.0)
    assert second["net_pnl"] == pytest.approx(-0.4 * 3 / 4 - 0.8 * 3 / 4 + 0.3)
    assert pd.isna(second["close_time"])


def test_empty_ledger_gives_an_empty_typed_trade_frame():
    trades = trades_from_ledger(ledger())

    assert list(trades.columns) == [
        "asset", "side", "open_time", "close_time", "open_bar", "close_bar", "entry_notional",
        "gross_pnl", "fees", "spread", "impact", "funding", "net_pnl", "exit_kind", "closed",
    ]
    assert len(trades) == 0 and trades["closed"].dtype == bool


def test_funding_on_float_dust_a_closing_twap_left_belongs_to_the_closed_trade():
    dust = 1.07e-14  # what TWAP clips summing to the position give or take an ulp leave
    frame = ledger(
        row(1, "fill", 2.0, 100.0, fee=0.2),
        row(2, "fill", -2.0 - dust, 101.0, fee=0.2, realized_pnl=2.0),
        row(3, "funding", -dust, 101.0, funding=-1e-15),
    )

    (trade,) = trades_from_ledger(frame).to_dict("records")

    assert trade["closed"] and trade["funding"] == pytest.approx(-1e-15)


def test_funding_without_a_position_and_missing_columns_are_errors():
    with pytest.raises(ValueError, match="must start flat"):
        trades_from_ledger(ledger(row(1, "funding", 1.0, 100.0, funding=0.1)))
    with pytest.raises(ValueError, match="lacks columns"):
        trades_from_ledger(ledger().drop(columns="realized_pnl"))


fills = st.lists(
    st.tuples(st.integers(-3, 3).filter(bool), st.floats(-50, 50), st.floats(0, 1)),
    min_size=1, max_size=30,
)


@given(fills)
def test_trades_account_for_every_realised_pnl_and_cost_in_the_ledger(events):
    frame = ledger(*(row(i, "fill", float(q), 100.0, fee=f, realized_pnl=p)
                     for i, (q, p, f) in enumerate(events)))
    positions = np.cumsum([q for q, _, _ in events])
    prior = np.concatenate(([0], positions[:-1]))

    trades = trades_from_ledger(frame)

    assert trades["net_pnl"].sum() == pytest.approx(sum(p - f for _, p, f in events), abs=1e-9)
    closes = (prior != 0) & (np.sign(positions) != np.sign(prior))  # back to flat, or flipped
    assert trades["closed"].sum() == closes.sum()
    assert (~trades["closed"]).sum() == int(positions[-1] != 0)


def test_metrics_table_puts_runs_side_by_side():
    table = metrics_table(
        {"policy": {"sharpe": 1.2, "n_trades": 4}, "buy_and_hold": {"sharpe": 0.7}}
    )

    assert list(table.columns) == ["policy", "buy_and_hold"]
    assert list(table.index) == ["sharpe", "n_trades"]
    assert table.loc["sharpe", "buy_and_hold"] == 0.7
    assert math.isnan(table.loc["n_trades", "buy_and_hold"])
    with pytest.raises(ValueError, match="at least one"):
        metrics_table({})
