"""Facts: values and timestamps against hand-computed ones, and no fact from after a cut-off."""

import json

import numpy as np
import pandas as pd
import pytest
import ta

from llm.facts import (
    Fact,
    Facts,
    MarketView,
    backtest_facts,
    format_value,
    read_backtest,
    risk_facts,
    signal_facts,
    to_aligned,
)

START = pd.Timestamp("2024-03-01", tz="UTC")


def hourly_bars(n: int = 72) -> pd.DataFrame:
    """One asset's hourly bars: close 100, 101, ...; high/low 1 around; volume 10 + i."""
    i = np.arange(n, dtype=float)
    close = 100.0 + i
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1.0, "low": close - 1.0, "close": close,
         "volume": 10.0 + i},
        index=pd.date_range(START, periods=n, freq="1h"),
    )


@pytest.fixture(scope="module")
def facts() -> Facts:
    return MarketView.build(hourly_bars(), asset="BTC").facts()


def test_market_facts_match_hand_computed_values(facts):
    last = START + pd.Timedelta(hours=71)
    assert facts["BTC.close"].value == 171.0
    assert facts["BTC.change_1h"].value == pytest.approx(100 * (171 / 170 - 1))
    assert facts["BTC.change_24h"].value == pytest.approx(100 * (171 / 147 - 1))
    assert facts["BTC.direction_24h"].value == "up"
    # the last 24 hours are bars 48..71 (opening after 71 - 24 = 47)
    assert facts["BTC.high_24h"].value == 172.0
    assert facts["BTC.low_24h"].value == 147.0
    day = sum((100 + i) * (10 + i) for i in range(48, 72))
    before = sum((100 + i) * (10 + i) for i in range(24, 48))
    assert facts["BTC.volume_24h"].value == pytest.approx(day)
    assert facts["BTC.volume_change"].value == pytest.approx(100 * (day / before - 1))
    assert {f.timestamp for f in facts} == {last}


def test_indicators_agree_with_the_ta_library(facts):
    close = hourly_bars()["close"]
    rsi = ta.momentum.RSIIndicator(close, window=14).rsi().iloc[-1]
    macd = ta.trend.MACD(close, window_slow=26, window_fast=12, window_sign=9)
    assert facts["BTC.rsi"].value == pytest.approx(rsi)
    assert facts["BTC.macd"].value == pytest.approx(macd.macd().iloc[-1])
    assert facts["BTC.macd_hist"].value == pytest.approx(macd.macd_diff().iloc[-1])
    assert facts["BTC.rsi_state"].value == "overbought"  # a straight climb


def test_regimes_without_enough_history_are_left_out(facts):
    assert "BTC.trend" not in facts and "BTC.vol_regime" not in facts
    assert "BTC.funding_rate" not in facts  # no funding events in plain OHLCV


def test_changes_need_history_that_reaches_back():
    short = MarketView.build(hourly_bars(10), asset="ETH").facts()
    assert "ETH.change_1h" in short
    assert "ETH.change_24h" not in short and "ETH.high_24h" not in short


def test_as_of_facts_ignore_everything_after_the_cutoff():
    bars = hourly_bars()
    cut = START + pd.Timedelta(hours=50)
    changed = bars.copy()
    changed.loc[changed.index > cut, ["high", "close"]] *= 3.0
    first = MarketView.build(bars, as_of=cut).facts()
    second = MarketView.build(changed, as_of=cut).facts()
    assert first.render() == second.render()
    assert max(f.timestamp for f in first) == cut
    assert first["BTC.close"].value == 150.0


def test_view_over_a_longer_frame_equals_view_cut_at_the_bar():
    bars = hourly_bars()
    full = MarketView.build(bars)
    assert full.facts(50).render() == MarketView.build(bars, as_of=bars.index[50]).facts().render()


def test_ohlcv_with_epoch_millisecond_timestamps_is_accepted():
    bars = hourly_bars().reset_index(names="timestamp")
    bars["timestamp"] = (bars["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")
    aligned = to_aligned(bars, "SOL")
    assert aligned.index[0] == START and ("SOL", "mark") in aligned.columns


def test_bad_market_data_fails_with_a_clear_message():
    with pytest.raises(ValueError, match="lacks columns"):
        to_aligned(hourly_bars().drop(columns="volume"))


SIGNALS = {
    "model_id": "run@1",
    "data_timestamp": "2024-03-03T23:00:00+00:00",
    "value": 0.25,
    "signals": [{
        "asset": "BTC", "decision": "long", "size": 0.4, "target_exposure": 0.8,
        "stop_loss_atr": 2.5, "take_profit_atr": 6.0, "execution_style": "twap",
        "execution_horizon_bars": 5,
        "probabilities": {"trade": {"short": 0.1, "flat": 0.2, "long": 0.7}, "style": {}},
    }],
}


def test_signal_facts_from_the_serve_response():
    facts = signal_facts(json.dumps(SIGNALS))
    assert facts["signal.BTC.decision"].value == "long"
    assert facts["signal.BTC.p_long"].value == pytest.approx(70.0)
    assert facts["signal.BTC.confidence"].text == "70.00%"
    assert facts["signal.BTC.size"].text == "40.00%"
    assert facts["signal.BTC.stop_loss"].text == "2.50 ATR"
    assert facts["signal.model_id"].value == "run@1"
    assert {f.timestamp for f in facts} == {pd.Timestamp("2024-03-03 23:00", tz="UTC")}
    assert (
        signal_facts(SIGNALS["signals"], timestamp=START)["signal.BTC.decision"].timestamp == START
    )


def test_risk_facts_take_the_historical_var_and_count_alerts():
    report = {
        "timestamp": "2024-03-02T00:00:00+00:00", "equity": 1e6, "gross_exposure": 2e6,
        "net_exposure": 5e5, "leverage": 2.0, "maintenance_margin": 1e4, "margin_ratio": 0.01,
        "var": [
            {"method": "parametric", "confidence": 0.95, "horizon": 1, "var": 0.05, "es": 0.06},
            {"method": "historical", "confidence": 0.95, "horizon": 1, "var": 0.02, "es": 0.03},
        ],
        "alerts": [{"kind": "leverage", "message": "leverage near its limit"}],
        "regime": "high_vol/downtrend", "stress": [{"scenario": "ftx", "pnl": -5e4}],
    }
    facts = risk_facts(report)
    assert facts["risk.var_95"].value == pytest.approx(2.0)
    assert facts["risk.es_95"].value == pytest.approx(3.0)
    assert "risk.var_99" not in facts
    assert (
        facts["risk.alerts"].value == 1 and facts["risk.alert"].value == "leverage near its limit"
    )
    assert facts["risk.regime"].value == "high volatility, downtrend"
    assert facts["risk.leverage"].text == "2.00x"


def test_backtest_facts_are_stamped_at_the_end_of_the_report(tmp_path):
    index = pd.date_range("2024-02-01", periods=5, freq="1D", tz="UTC")
    pd.DataFrame({"equity": np.linspace(1e6, 1.1e6, 5)}, index=index).to_parquet(
        tmp_path / "steps.parquet"
    )
    metrics = {"total_return": 0.1, "sharpe": 1.5, "max_drawdown": 0.05,
               "baselines": {"buy_and_hold": {"total_return": -0.02}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    loaded, start, end = read_backtest(tmp_path)
    facts = backtest_facts(loaded, end, start)
    assert end == index[-1] and {f.timestamp for f in facts} == {index[-1]}
    assert facts["backtest.total_return"].text == "+10.00%"
    assert facts["backtest.outcome"].value == "gain"
    assert facts["backtest.buy_and_hold.total_return"].value == pytest.approx(-2.0)
    assert facts["backtest.start"].value == "2024-02-01 00:00"


def test_facts_read_every_metric_the_report_writer_writes(tmp_path):
    """The real writer (compute_metrics, write_report) and the reader agree on metrics.json:
    every backtest fact comes from a key the report holds, with the written value."""
    from backtest.metrics import METRIC_KEYS, compute_metrics
    from backtest.report import write_report
    from llm.facts import _BACKTEST_METRICS
    from tests.unit.backtest.test_report import make_result

    result = make_result()
    baseline = make_result("buy_and_hold", seed=1, benchmark=False)
    metrics = compute_metrics(result)
    write_report(tmp_path, result, metrics,
                 baseline_metrics={"buy_and_hold": compute_metrics(baseline)})

    loaded, start, end = read_backtest(tmp_path)
    facts = backtest_facts(loaded, end, start, "policy")

    assert (start, end) == (result.steps.index[0], result.steps.index[-1])
    for name, key, _, scale in _BACKTEST_METRICS:
        assert key in METRIC_KEYS and key in loaded, key
        assert facts[f"backtest.{name}"].value == pytest.approx(scale * metrics[key]), key
    for name, key, _, scale in _BACKTEST_METRICS[:6]:
        value = loaded["baselines"]["buy_and_hold"][key]
        assert facts[f"backtest.buy_and_hold.{name}"].value == pytest.approx(scale * value)


def test_a_metric_the_schema_lacks_fails_loudly(monkeypatch):
    import llm.facts as module

    table = (*module._BACKTEST_METRICS, ("gain", "renamed_total_return", "pct", 100.0))
    monkeypatch.setattr(module, "_BACKTEST_METRICS", table)
    module._report_schema.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="renamed_total_return"):
            backtest_facts({"total_return": 0.1}, START)
    finally:
        module._report_schema.cache_clear()


def test_to_aligned_builds_with_the_loaders_rules():
    """A file's mark falls back as the loader's (the previous known one, else close) and a
    non-zero funding rate marks its bar's event (a file has no events)."""
    from market.loader import aligned_frame, asset_fields

    bars = hourly_bars(6)
    bars["mark"] = [np.nan, 102.0, np.nan, 104.0, np.nan, np.nan]
    bars["funding_rate"] = [np.nan, 0.0, 1e-4, np.nan, -2e-4, 0.0]
    aligned = to_aligned(bars.iloc[::-1], "ETH")  # unsorted rows are sorted first

    rate = np.array([0.0, 0.0, 1e-4, 0.0, -2e-4, 0.0])
    fields = asset_fields(bars.iloc[:, :5].to_numpy(), bars["mark"].to_numpy(), rate, rate != 0)
    pd.testing.assert_frame_equal(aligned, aligned_frame(bars.index, {"ETH": fields}))
    assert aligned[("ETH", "mark")].tolist() == [100.0, 102.0, 102.0, 104.0, 104.0, 104.0]
    assert aligned[("ETH", "funding_event")].tolist() == [0, 0, 1, 0, 1, 0]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(43210.456, "price", "43,210.46 USDC"), (0.1234, "price", "0.1234 USDC"),
     (-1.2345, "signed_pct", "-1.23%"), (0.0123, "signed_pct", "+0.0123%"), (55.0, "pct", "55.00%"),
     (3.0, "count", "3"), (1.5, "x", "1.50x"), (1234567.8, "usd", "1,234,568 USDC")],
)
def test_values_are_formatted_by_unit(value, unit, text):
    assert format_value(value, unit) == text


def test_facts_reject_bad_keys_and_values_and_later_ones_win_on_merge():
    with pytest.raises(ValueError):
        Fact("a b", 1.0, "number", START, "market")
    with pytest.raises(ValueError):
        Fact("a", float("nan"), "number", START, "market")
    a = Facts((Fact("x", 1.0, "number", START, "market"),))
    b = Facts((Fact("x", 2.0, "number", START, "market"),))
    assert a.merge(b)["x"].value == 2.0 and len(a.merge(b)) == 1
