"""The risk report holds every section, is plain JSON, and survives a round trip."""

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from risk.limits import RiskLimits
from risk.regimes import RegimeConfig
from risk.report import RiskReport, build_risk_report
from risk.stress import PortfolioSnapshot, hypothetical_scenarios, load_scenarios
from risk.var import METHODS, portfolio_var

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(3)
    cov = [[4e-4, 3e-4, 3e-4], [3e-4, 6e-4, 4e-4], [3e-4, 4e-4, 1e-3]]
    return pd.DataFrame(rng.multivariate_normal([0, 0, 0], cov, 600), columns=["BTC", "ETH", "SOL"])


@pytest.fixture(scope="module")
def book():
    return PortfolioSnapshot(
        positions={"BTC": 20.0, "ETH": -100.0, "SOL": 1_000.0},
        marks={"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0},
        equity=1_000_000.0,
        peak_equity=1_500_000.0,
        exchanges={"SOL": "okx"},
        timestamp=NOW,
    )


@pytest.fixture(scope="module")
def report(book, returns):
    return build_risk_report(
        book, returns, RiskLimits(), regime_config=RegimeConfig(min_history=100)
    )


def test_report_has_every_section_for_the_book(report, book, returns):
    assert report.timestamp == NOW.isoformat()
    assert report.equity == 1_000_000.0
    assert report.gross_exposure == pytest.approx(1_650_000)
    assert report.net_exposure == pytest.approx(1_050_000)
    assert report.leverage == pytest.approx(1.65)
    assert report.margin_ratio == pytest.approx(book.margin_ratio)
    assert len(report.var) == len(METHODS) * 2
    assert len(report.stress) == len(load_scenarios()) + len(hypothetical_scenarios())
    assert {(a["kind"], a["severity"]) for a in report.alerts} == {("drawdown", "critical")}
    assert report.regime is not None and "/" in report.regime
    assert {row["asset"] for row in report.liquidity} == {"BTC", "ETH", "SOL"}
    assert {row["exchange"] for row in report.counterparty} == {"primary", "okx"}
    assert report.notes == []


def test_report_var_prices_the_current_weights(report, book, returns):
    row = next(r for r in report.var if r["method"] == "historical" and r["confidence"] == 0.99)

    assert row["var"] == pytest.approx(portfolio_var(returns, book.weights(), 0.99))
    assert row["es"] >= row["var"]


def test_report_round_trips_through_json(report):
    text = report.to_json()

    again = RiskReport.from_json(text)

    assert again == report
    assert again.to_dict() == json.loads(text)


def test_a_wiped_out_book_still_reports_with_nulls_for_undefined_ratios(returns):
    broke = PortfolioSnapshot(
        positions={"BTC": 20.0}, marks={"BTC": 60_000.0}, equity=-5_000.0, timestamp=NOW
    )

    report = build_risk_report(broke, returns)

    assert report.leverage is None
    assert report.margin_ratio is None
    assert report.var == []
    assert any("equity is not positive" in n for n in report.notes)
    assert "NaN" not in report.to_json() and "Infinity" not in report.to_json()


def test_too_little_history_leaves_notes_instead_of_failing(book, returns):
    report = build_risk_report(book, returns.iloc[:60], now=NOW)

    methods_at_99 = {r["method"] for r in report.var if r["confidence"] == 0.99}
    assert methods_at_99 == {"parametric", "cornish_fisher"}
    assert any("historical 0.99" in n for n in report.notes)
    assert report.regime == "unknown_vol/unknown_trend"


def test_a_return_series_of_the_book_itself_is_accepted(book, returns):
    own = returns @ book.weights()

    report = build_risk_report(book, own, now=NOW)

    assert len(report.var) == len(METHODS) * 2
    assert report.timestamp == NOW.isoformat()
