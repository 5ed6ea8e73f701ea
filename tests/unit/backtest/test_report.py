"""write_report on a hand-made backtest: the page parses, every chart it shows is a real
image, the metrics and ledger round-trip, and missing inputs are skipped visibly."""

import json
import math
import struct
from html.parser import HTMLParser

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from backtest import plots
from backtest.report import BASELINES_KEY, PLOTS, write_report
from backtest.result import BacktestResult
from envs.ledger import LEDGER_COLUMNS

N_STEPS = 2_000
ASSETS = ("BTC", "ETH", "SOL")
INDEX = pd.date_range("2024-01-01", periods=N_STEPS, freq="min", tz="UTC")
METRICS = {"n_steps": N_STEPS - 1, "total_return": 0.0123, "sharpe": 1.5, "calmar": math.nan,
           "profit_factor": math.inf, "var_historical": 0.0021, "es_historical": 0.003}


def make_result(name="policy", seed=0, benchmark=True) -> BacktestResult:
    rng = np.random.default_rng(seed)
    equity = 1_000_000.0 * np.exp(np.cumsum(np.r_[0.0, rng.normal(0, 1e-3, N_STEPS - 1)]))
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, (N_STEPS, 3)), axis=0))
    positions = pd.DataFrame(rng.normal(0, 2e5, (N_STEPS, 3)).cumsum(axis=0) / 50,
                             index=INDEX, columns=list(ASSETS))
    gross = positions.abs().sum(axis=1).to_numpy()
    steps = pd.DataFrame({"equity": equity, "gross_notional": gross, "leverage": gross / equity,
                          "traded_notional": rng.uniform(0, 1e4, N_STEPS),
                          "fees": np.linspace(0, 50, N_STEPS), "funding": 0.0,
                          "impact": 0.0, "spread": 0.0}, index=INDEX)
    ledger = pd.DataFrame(
        [{"timestamp": INDEX[bar], "bar": bar, "asset": asset, "kind": kind, "qty": qty,
          "price": 100.0, "notional": abs(qty) * 100.0, **dict.fromkeys(LEDGER_COLUMNS[7:], 0.0)}
         for bar, asset, kind, qty in ((5, "BTC", "fill", 1.5), (60, "BTC", "funding", 1.5),
                                       (90, "ETH", "fill", -2.0), (120, "BTC", "fill", -1.5))],
        columns=list(LEDGER_COLUMNS),
    )
    bench = pd.Series(1_000_000.0 * prices[:, 0] / prices[0, 0], index=INDEX)
    return BacktestResult(
        name=name, assets=ASSETS, steps=steps, positions=positions,
        prices=pd.DataFrame(prices, index=INDEX, columns=list(ASSETS)), ledger=ledger,
        initial_capital=1_000_000.0, periods_per_year=525_600.0,
        benchmark=bench if benchmark else None, meta={"seed": seed, "config": "abc123"},
    )


REGIME_LABELS = pd.Series(np.where(np.arange(N_STEPS) % 700 < 400, "calm", "crisis"), index=INDEX)
REGIME_TABLE = pd.DataFrame(
    {"total_return": [0.02, -0.01], "sharpe": [2.1, -0.7], "share": [0.6, 0.4]},
    index=pd.Index(["calm", "crisis"], name="regime"),
)
WALK_FORWARD = pd.DataFrame({
    "window": [0, 1, 2],
    "train_start": INDEX[[0, 500, 1000]], "train_end": INDEX[[500, 1000, 1500]],
    "test_start": INDEX[[500, 1000, 1500]], "test_end": INDEX[[1000, 1500, 1999]],
    "total_return": [0.01, -0.004, 0.002], "sharpe": [1.2, -0.5, 0.3],
})


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    parser.close()
    return parser


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    page = write_report(
        out, make_result(), METRICS,
        baselines={"buy_and_hold": make_result("buy_and_hold", seed=1)},
        baseline_metrics={"buy_and_hold": {"total_return": 0.01, "sharpe": math.nan}},
        regime_labels=REGIME_LABELS, regime_table=REGIME_TABLE, walk_forward=WALK_FORWARD,
    )
    return out, page


def test_report_page_shows_every_chart_as_an_existing_nonblank_png(full_report):
    out, page = full_report
    parser = parse(page)

    assert page == out / "report.html"
    assert sorted(parser.images) == sorted(f"plots/{name}.png" for name in PLOTS)
    for src in parser.images:
        width, height = png_size(out / src)
        assert 300 <= width <= 2000 and 200 <= height <= 1500, (src, width, height)
        pixels = mpimg.imread(out / src)
        assert pixels.shape[:2] == (height, width)
        assert np.ptp(pixels[..., :3]) > 0.2, f"{src} is a single colour"


def test_report_page_names_the_policy_span_baselines_and_tables(full_report):
    _, page = full_report
    text = " ".join(parse(page).text)

    for expected in ("policy", "buy_and_hold", "2024-01-01 00:00:00+00:00", "abc123",
                     "crisis", "Walk-forward", "sharpe"):
        assert expected in text, expected
    assert "skipped" not in text


def test_metrics_json_holds_the_metrics_with_nonfinite_values_as_null(full_report):
    out, _ = full_report
    loaded = json.loads((out / "metrics.json").read_text())

    assert loaded.pop(BASELINES_KEY) == {"buy_and_hold": {"total_return": 0.01, "sharpe": None}}
    assert loaded == {**METRICS, "calmar": None, "profit_factor": None}


def test_ledger_and_steps_round_trip_through_parquet(full_report):
    out, _ = full_report
    result = make_result()

    ledger = pd.read_parquet(out / "ledger.parquet")
    steps = pd.read_parquet(out / "steps.parquet")

    pd.testing.assert_frame_equal(ledger, result.ledger)
    expected = pd.concat([result.steps, result.positions.add_prefix("position_")], axis=1)
    pd.testing.assert_frame_equal(steps[expected.columns], expected, check_freq=False)
    assert list(steps.columns[-4:]) == ["price_BTC", "price_ETH", "price_SOL", "benchmark"]
    np.testing.assert_allclose(steps["benchmark"], result.benchmark)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_report_without_regimes_or_walk_forward_skips_those_charts_and_says_so(tmp_path):
    page = write_report(tmp_path, make_result(benchmark=False), METRICS)
    parser = parse(page)
    text = " ".join(parser.text)

    assert sorted(parser.images) == sorted(
        f"plots/{n}.png" for n in PLOTS if n not in ("regimes", "walk_forward")
    )
    assert not (tmp_path / "plots" / "regimes.png").exists()
    assert not (tmp_path / "plots" / "walk_forward.png").exists()
    assert "Chart 'regimes' skipped" in text and "Chart 'walk_forward' skipped" in text
    assert json.loads((tmp_path / "metrics.json").read_text())[BASELINES_KEY] == {}


def test_the_run_facts_say_whether_the_risk_shield_was_on_and_what_it_cut(tmp_path):
    shielded = make_result()
    shielded.meta["shield"] = {
        "decisions": 240, "asset_targets_cut": 37, "by_rule": {"vol_target": 30, "var": 9},
        "mean_scale_when_cut": 0.625,
        "settings": {"max_var": 0.02, "max_es": 0.12, "max_margin_ratio": None}}

    on = " ".join(parse(write_report(tmp_path / "on", shielded, METRICS)).text)
    off = " ".join(parse(write_report(tmp_path / "off", make_result(), METRICS)).text)

    assert ("on (max_var 0.02, max_es 0.12): cut 37 asset targets in 240 decisions (by rule: "
            "vol_target 30, var 9), leaving 62% of each on average") in on
    assert "risk shield off" in off


def test_baseline_named_like_the_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="baseline names"):
        write_report(tmp_path, make_result(), METRICS, baseline_metrics={"policy": {}})


def test_downsample_last_caps_points_and_keeps_both_ends():
    series = pd.Series(np.arange(525_600, dtype=float))

    points = plots.downsample(series, cap=5_000)

    assert len(points) <= 5_000
    assert points.index[0] == 0 and points.index[-1] == 525_599
    assert points.index.is_monotonic_increasing


def test_downsample_envelope_keeps_the_deepest_drawdown_and_both_ends():
    rng = np.random.default_rng(3)
    equity = pd.Series(np.exp(np.cumsum(rng.normal(0, 1e-3, 525_600))))
    underwater = equity / equity.cummax() - 1.0

    points = plots.downsample(underwater, cap=5_000, how="envelope")

    assert len(points) <= 5_000
    assert points.index[0] == 0 and points.index[-1] == len(underwater) - 1
    assert points.min() == underwater.min()
    assert points.max() == underwater.max()


def test_downsample_leaves_short_series_alone_and_rejects_unknown_modes():
    short = pd.Series([3.0, 1.0, 2.0])

    assert plots.downsample(short, cap=10) is short
    with pytest.raises(ValueError, match="how must be"):
        plots.downsample(pd.Series(np.zeros(100)), cap=10, how="mean")


def test_rolling_window_adapts_to_run_length():
    assert plots.rolling_window(2_000, 525_600) == 200
    assert plots.rolling_window(525_600, 525_600) == 43_800
    assert plots.rolling_window(5, 365) == 2
