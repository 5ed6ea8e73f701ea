"""Limit checks: the right alert, severity and log line for each limit, and nothing otherwise."""

import dataclasses
import json
import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from risk.alerts import AlertEvent, Metric, check_limits, grade, limit_metrics
from risk.limits import RiskLimits
from risk.stress import PortfolioSnapshot

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
MARKS = {"BTC": 50_000.0, "ETH": 2_500.0, "SOL": 100.0}


def snapshot(equity=1_000_000.0, **kwargs):
    positions = kwargs.pop("positions", {"BTC": 20.0})
    return PortfolioSnapshot(
        positions=positions, marks=MARKS, equity=equity, timestamp=NOW, **kwargs
    )


def kinds(events):
    return {(e.kind, e.subject): e.severity for e in events}


def test_a_calm_book_raises_no_alerts():
    assert check_limits(snapshot()) == []


@pytest.mark.parametrize(
    ("btc", "eth", "severity"),
    [(100.0, -1_000.0, None), (170.0, -3_400.0, "warning"), (210.0, -4_200.0, "critical")],
)
def test_leverage_warns_at_80_percent_and_is_critical_at_the_limit(btc, eth, severity):
    limits = RiskLimits(max_concentration=1.0)
    book = snapshot(positions={"BTC": btc, "ETH": eth})

    events = kinds(check_limits(book, limits))

    assert events.get(("leverage", None)) == severity


def test_one_asset_over_its_share_of_the_leverage_budget_is_critical_for_that_asset():
    book = snapshot(positions={"BTC": 240.0, "ETH": 100.0})

    events = check_limits(book)

    (alert,) = [e for e in events if e.kind == "concentration"]
    assert (alert.subject, alert.severity) == ("BTC", "critical")
    assert alert.value == pytest.approx(12e6 / 20e6)
    assert alert.limit == 0.5
    assert alert.timestamp == NOW


@pytest.mark.parametrize(
    ("start", "severity"), [(1_045_000.0, "warning"), (1_060_000.0, "critical")]
)
def test_daily_loss_is_measured_from_the_days_starting_equity(start, severity):
    events = kinds(check_limits(snapshot(day_start_equity=start)))

    assert events == {("daily_loss", None): severity}


def test_drawdown_from_peak_beyond_the_limit_is_critical():
    events = check_limits(snapshot(peak_equity=1_500_000.0))

    (alert,) = events
    assert (alert.kind, alert.severity) == ("drawdown", "critical")
    assert alert.value == pytest.approx(1 / 3)


def test_margin_ratio_near_liquidation_is_critical():
    book = snapshot(equity=3_000.0, positions={"BTC": 10.0})

    events = kinds(check_limits(book, RiskLimits(max_leverage=125, max_concentration=1.0)))

    assert events[("margin_ratio", None)] == "critical"


def test_var_of_the_current_book_is_checked_against_its_limit():
    rng = np.random.default_rng(0)
    returns = pd.DataFrame({"BTC": rng.normal(0, 0.03, 500), "ETH": rng.normal(0, 0.04, 500)})
    book = snapshot(positions={"BTC": 60.0})

    events = check_limits(book, RiskLimits(max_var=0.15), returns)

    (alert,) = [e for e in events if e.kind == "var"]
    assert alert.severity == "critical"
    assert alert.value == pytest.approx(-3 * np.quantile(returns["BTC"], 0.01), rel=0.02)


def test_too_short_a_history_skips_the_var_check_and_says_so(caplog):
    returns = pd.Series(np.full(50, -0.5))

    with caplog.at_level(logging.INFO, logger="risk.alerts"):
        metrics = limit_metrics(snapshot(), RiskLimits(), returns)

    assert "var" not in {m.kind for m in metrics}
    assert "VaR limit not checked" in caplog.text


def test_correlated_assets_are_limited_as_one_group():
    rng = np.random.default_rng(1)
    btc = rng.normal(0, 0.02, 300)
    returns = pd.DataFrame({"BTC": btc, "ETH": btc + rng.normal(0, 0.002, 300)})
    book = snapshot(positions={"BTC": 100.0, "ETH": -2_000.0})

    events = check_limits(book, RiskLimits(max_correlated_exposure=9.0, max_var=1.0), returns)

    assert kinds(events)[("correlated_exposure", "BTC+ETH")] == "critical"


def test_one_exchange_holding_everything_breaches_a_counterparty_limit():
    book = snapshot(positions={"BTC": 20.0, "ETH": 200.0}, exchanges={"ETH": "okx"})

    events = kinds(check_limits(book, RiskLimits(max_counterparty_share=0.6)))

    assert events == {("counterparty", "primary"): "critical"}


def test_critical_alerts_log_as_errors_and_warnings_as_warnings(caplog):
    book = snapshot(peak_equity=1_500_000.0, day_start_equity=1_045_000.0)

    with caplog.at_level(logging.WARNING, logger="risk.alerts"):
        check_limits(book)

    levels = {r.levelname for r in caplog.records if "risk alert" in r.getMessage()}
    assert levels == {"ERROR", "WARNING"}


@given(value=st.floats(0, 10), limit=st.floats(0.1, 5), fraction=st.floats(0.05, 0.95))
def test_severity_depends_only_on_value_against_limit(value, limit, fraction):
    event = grade(Metric("leverage", value, limit), fraction, NOW)

    if value >= limit:
        assert event.severity == "critical"
    elif value >= fraction * limit:
        assert event.severity == "warning"
    else:
        assert event is None


def test_alert_events_are_frozen_and_serialise_to_json():
    event = AlertEvent("leverage", "critical", 21.0, 20.0, "too high", NOW)

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.value = 1.0
    assert json.loads(json.dumps(event.to_dict()))["timestamp"] == NOW.isoformat()


def test_existing_limit_defaults_are_unchanged_and_new_fields_are_documented():
    limits = RiskLimits()

    assert (limits.max_leverage, limits.max_concentration) == (20.0, 0.5)
    assert (limits.daily_loss_limit, limits.max_drawdown) == (0.05, 0.30)
    assert all(f.description for f in RiskLimits.model_fields.values())
    with pytest.raises(pydantic.ValidationError):
        RiskLimits(max_vaR=0.1)
