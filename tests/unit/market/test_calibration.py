"""The default synthetic market against real data: each stylised fact within a stated tolerance.

Real: Binance USDT-M 1m, BTC/ETH/SOL, 2023-07-18..08-17 (../shared/realdata, 30 days).
Synthetic: DEFAULT_CONFIG (a year of 1m bars, seed 7), which `quantum data calibrate`
fitted to that sample. Each tolerance is about the spread of that fact between
seeds of the synthetic market (a year of it) or between the three real assets,
whichever is larger, so a failure means the model or its calibration changed.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from market import _synthetic_moments as moments
from market.calibrate import CalibrateConfig, calibrate, load_market, read_yaml
from market.cli import app
from market.facts import MarketFacts, measure
from market.schema import asset_of, perp_symbol
from market.store import ParquetStore, SeriesKey
from market.synthetic import DEFAULT_CONFIG, SyntheticConfig, SyntheticMarket, generate_market
from tests.unit.market.realdata import EXCHANGE, SAMPLE, SYMBOLS, import_sample

ASSETS = ("BTC", "ETH", "SOL")
PAIRS = (("BTC", "ETH"), ("BTC", "SOL"), ("ETH", "SOL"))

CORRELATION_TOL = 0.05
"""Pairwise correlation of 1m log returns, absolute."""
VOL_REL_TOL = 0.3
"""Annualised volatility of 1m returns, relative (a year with more crises than usual is up
to 27% more volatile)."""
KURTOSIS_FACTOR = 4.0
"""Excess kurtosis as a factor either way, synthetic as the median over windows as long as the
real sample (a few crash minutes decide it, and it grows with the sample; real 175-255)."""
ABS_ACF_TOL = {1: 0.1, 60: 0.07}
"""Autocorrelation of |r| at lags 1 and 60 minutes, absolute (real assets differ by 0.09 and
0.06; the synthetic assets share one clustering law)."""
LAG1_ACF_TOL = 0.015
"""Lag-1 autocorrelation of (0.1%-winsorised) returns, absolute: the bid-ask bounce."""
FUNDING_MEAN_TOL = 0.2e-4
"""Mean 8-hourly funding rate, absolute (0.2 bp; real +0.68..+0.78 bp)."""
FUNDING_STD_TOL = 0.35e-4
"""Std of 8-hourly funding rates, absolute (0.35 bp; real 0.29-0.40 bp, old synthetic 3-6 bp;
a year with more crises than usual widens it)."""
VOLUME_LINK_TOL = 0.2
"""Rank correlation of |r| and volume per 1m bar, absolute (real 0.47-0.67)."""


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> ParquetStore:
    if not SAMPLE.is_dir():
        pytest.skip(f"real-data sample not found at {SAMPLE} (CI has it)")
    return import_sample(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def real(real_store) -> MarketFacts:
    return measure(*load_market(real_store, EXCHANGE, SYMBOLS, "1m"), "1m")


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return generate_market(DEFAULT_CONFIG)


@pytest.fixture(scope="module")
def synthetic(market) -> MarketFacts:
    funding = {asset_of(s): f["funding_rate"] for s, f in market.funding.items()}
    return measure(market.aligned(), funding, "1m")


@pytest.mark.parametrize("pair", PAIRS)
def test_pairwise_return_correlations_match_the_real_sample(real, synthetic, pair):
    assert synthetic.correlation(*pair) == pytest.approx(real.correlation(*pair),
                                                         abs=CORRELATION_TOL)


@pytest.mark.parametrize("asset", ASSETS)
def test_annualised_volatility_matches_the_real_sample(real, synthetic, asset):
    assert synthetic.assets[asset].annual_vol == pytest.approx(real.assets[asset].annual_vol,
                                                               rel=VOL_REL_TOL)


@pytest.mark.parametrize("asset", ASSETS)
def test_excess_kurtosis_is_as_fat_tailed_as_the_real_sample(real, market, asset):
    returns = np.log(market.ohlcv[perp_symbol(asset)]["close"]).diff().iloc[1:]
    windows = range(0, len(returns) - real.bars + 1, real.bars)
    typical = np.median([returns.iloc[i : i + real.bars].kurt() for i in windows])

    ratio = typical / real.assets[asset].excess_kurtosis

    assert 1 / KURTOSIS_FACTOR < ratio < KURTOSIS_FACTOR


@pytest.mark.parametrize("asset", ASSETS)
@pytest.mark.parametrize("lag", sorted(ABS_ACF_TOL))
def test_volatility_clusters_like_the_real_sample(real, synthetic, asset, lag):
    assert synthetic.assets[asset].abs_acf[lag] == pytest.approx(real.assets[asset].abs_acf[lag],
                                                                 abs=ABS_ACF_TOL[lag])


@pytest.mark.parametrize("asset", ASSETS)
def test_lag_1_return_autocorrelation_shows_the_real_bid_ask_bounce(real, synthetic, asset):
    measured = synthetic.assets[asset].return_acf1

    assert measured < 0
    assert measured == pytest.approx(real.assets[asset].return_acf1, abs=LAG1_ACF_TOL)


@pytest.mark.parametrize("asset", ASSETS)
def test_8_hourly_funding_mean_and_std_match_the_real_sample(real, synthetic, asset):
    ours, theirs = synthetic.assets[asset], real.assets[asset]

    assert ours.funding_mean == pytest.approx(theirs.funding_mean, abs=FUNDING_MEAN_TOL)
    assert ours.funding_std == pytest.approx(theirs.funding_std, abs=FUNDING_STD_TOL)


@pytest.mark.parametrize("asset", ASSETS)
def test_volume_rises_with_the_size_of_the_move_as_in_the_real_sample(real, synthetic, asset):
    assert synthetic.assets[asset].volume_abs_spearman == pytest.approx(
        real.assets[asset].volume_abs_spearman, abs=VOLUME_LINK_TOL
    )


@pytest.fixture(scope="module")
def fitted(real_store) -> SyntheticConfig:
    return calibrate(real_store, CalibrateConfig(exchange=EXCHANGE, symbols=SYMBOLS)).config


def test_calibrate_writes_yaml_that_round_trips_with_values_read_off_the_facts(
    real_store, real, fitted, tmp_path
):
    out = tmp_path / "synthetic.yaml"

    result = CliRunner().invoke(app, ["calibrate", "--data", str(real_store.root),
                                      "--exchange", EXCHANGE, "--out", str(out)])

    assert result.exit_code == 0, result.output
    config = read_yaml(out)
    assert config == fitted
    assert config.assets == ASSETS
    for asset in ASSETS:
        fact, profile = real.assets[asset], config.profile(asset)
        n = profile.microstructure_noise
        assert profile.price == pytest.approx(fact.first_price, rel=1e-3)
        assert profile.notional_per_minute == pytest.approx(fact.notional_per_minute, rel=1e-3)
        assert profile.annual_vol * np.sqrt(1 + 2 * n * n) == pytest.approx(fact.annual_vol,
                                                                           rel=1e-3)
        assert -n * n / (1 + 2 * n * n) == pytest.approx(fact.return_acf1, abs=1e-4)
    for a, b, rho in config.correlations:
        assert _realised_correlation(config, a, b, rho) == pytest.approx(real.correlation(a, b),
                                                                         abs=0.003)
    assert config.funding_interest == pytest.approx(1e-4)  # the modal real rate


def _realised_correlation(config: SyntheticConfig, a: str, b: str, rho: float) -> float:
    """The 1m return correlation innovations of correlation `rho` show: mixed with the
    crisis floor, damped by idiosyncratic volatility, diluted by bounce noise."""
    crisis = moments.crisis_variance_share(config)
    damping = np.exp(-(1 - config.common_vol_share) * moments.log_vol_variances(config, 1).sum())
    noise = [config.profile(x).microstructure_noise ** 2 for x in (a, b)]
    mixed = (1 - crisis) * rho + crisis * max(rho, config.crisis_correlation)
    return damping * mixed / np.sqrt((1 + 2 * noise[0]) * (1 + 2 * noise[1]))


def test_the_default_config_is_the_calibration_of_the_real_sample(fitted):
    assert _numbers(fitted.model_dump()) == pytest.approx(_numbers(DEFAULT_CONFIG.model_dump()),
                                                          rel=0.02)


def _numbers(tree: object) -> list[float]:
    """Every number in a nested dump, in order (names and labels must match exactly)."""
    if isinstance(tree, dict):
        return [x for key in sorted(tree) for x in _numbers(tree[key])]
    if isinstance(tree, list | tuple):
        return [x for item in tree for x in _numbers(item)]
    if isinstance(tree, bool) or not isinstance(tree, int | float):
        return []
    return [float(tree)]


def test_synth_generates_from_a_yaml_and_its_flags_override_it(tmp_path):
    doge = DEFAULT_CONFIG.generic_profile.model_copy(update={"asset": "DOGE", "price": 0.08})
    config = DEFAULT_CONFIG.model_copy(update={"assets": ("BTC", "DOGE"), "profiles": (doge,)})
    yaml_path = tmp_path / "synthetic.yaml"
    yaml_path.write_text(_yaml(config))

    result = CliRunner().invoke(app, ["synth", "--config", str(yaml_path), "--days", "1",
                                      "--out", str(tmp_path / "data")])

    assert result.exit_code == 0, result.output
    store = ParquetStore(tmp_path / "data")
    bars = store.read(SeriesKey.bars("synthetic", perp_symbol("DOGE"), "1m"))
    assert len(bars) == 1440  # --days overrode the file's 365
    assert bars["open"].iloc[0] == pytest.approx(0.08)  # the file's profile
    assert {k.symbol for k in store.series()} == {perp_symbol("BTC"), perp_symbol("DOGE")}


def _yaml(config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def test_a_yaml_with_an_unknown_field_is_refused_with_its_name(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text("days: 3\nvolatility: 0.5\n")

    result = CliRunner().invoke(app, ["synth", "--config", str(path), "--out", str(tmp_path)])

    assert result.exit_code == 1
    assert "volatility" in result.output and "Extra inputs" in result.output
    assert not (tmp_path / "ohlcv").exists()


def test_calibrate_without_stored_bars_exits_with_code_2_and_says_what_to_do(tmp_path):
    args = ["--data", str(tmp_path), "--exchange", "binanceusdm", "--out", str(tmp_path / "s.yaml")]

    result = CliRunner().invoke(app, ["calibrate", *args])

    assert result.exit_code == 2
    assert "no binanceusdm 1m bars" in result.output and "import them first" in result.output
    assert not (tmp_path / "s.yaml").exists()
