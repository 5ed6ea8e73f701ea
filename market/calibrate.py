"""Fit the synthetic market's parameters to stored data (`quantum data calibrate`).

Each parameter comes from the stylised fact it controls (market.facts), by
inverting the generator's closed-form moments (market._synthetic_moments) rather
than by trial simulations, so a calibration is quick and deterministic:

- per asset: price level, annualised volatility, traded notional per minute and the
  bid-ask-bounce noise that gives 1m returns their negative lag-1 autocorrelation;
- correlations of innovations, undoing the dilution of the measured correlations
  by bounce noise, idiosyncratic volatility and the crisis correlation floor;
- the log-volatility components' variances, from the decay of |r| autocorrelation;
- daily and weekly activity cycles, volume's elasticity to the bar's range and its
  noise (market._calibrate_activity);
- funding: interest rate, premium level, noise and persistence (market._calibrate_funding).

What 30 days cannot identify (regime lengths and multipliers, tail degrees of
freedom, caps, the trend-premium link) is kept from the `base` config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import least_squares

from market import _synthetic_kernels as kern
from market import _synthetic_moments as moments
from market._calibrate_activity import fit_activity
from market._calibrate_funding import fit_funding
from market.facts import MarketFacts, bar_returns, measure
from market.loader import load_aligned
from market.schema import asset_of, timeframe_ms
from market.store import ParquetStore, SeriesKey
from market.synthetic_config import DEFAULT_CONFIG, AssetProfile, SyntheticConfig
from market.validate import DataValidationError

_MAX_CORRELATION = 0.98


class CalibrateConfig(BaseModel):
    """Which stored data to fit, and the config whose unfitted parameters are kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(min_length=1, description="Exchange of the stored series.")
    symbols: tuple[str, ...] = Field(min_length=1, description="ccxt symbols to fit.")
    timeframe: Literal["1m"] = Field(
        "1m",
        description="Bar timeframe of the stored OHLCV series: 1m only, because the bounce "
        "and minute-scale volatility bursts the fit reads are invisible in coarser bars.",
    )
    base: SyntheticConfig = Field(
        DEFAULT_CONFIG, description="Source of every parameter the data cannot identify."
    )


@dataclass(frozen=True)
class Calibration:
    """The fitted config and the facts it was fitted to."""

    config: SyntheticConfig
    facts: MarketFacts


def load_market(
    store: ParquetStore, exchange: str, symbols: tuple[str, ...], timeframe: str
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """The aligned bars of `symbols` and each asset's stored funding rates."""
    aligned = load_aligned(store, exchange, list(symbols), timeframe)
    funding = {
        asset_of(s): store.read(SeriesKey.funding(exchange, s))["funding_rate"] for s in symbols
    }
    return aligned, funding


def calibrate(store: ParquetStore, config: CalibrateConfig) -> Calibration:
    """Measure the stored market and fit a SyntheticConfig to it."""
    aligned, funding = load_market(store, config.exchange, config.symbols, config.timeframe)
    if len(aligned) < 1440:
        raise DataValidationError(
            f"{config.exchange} {list(config.symbols)}: only {len(aligned)} common bars; "
            "calibration needs at least a day of them"
        )
    facts = measure(aligned, funding, config.timeframe)
    return Calibration(fit(facts, aligned, funding, config.base), facts)


def fit(
    facts: MarketFacts,
    aligned: pd.DataFrame,
    funding: Mapping[str, pd.Series],
    base: SyntheticConfig,
) -> SyntheticConfig:
    """The SyntheticConfig whose generated market has `facts` (see module docstring)."""
    minutes = timeframe_ms(facts.timeframe) / 60_000
    assets = tuple(facts.assets)
    noise = {a: _bounce(facts.assets[a].return_acf1, minutes) for a in assets}
    returns = bar_returns(aligned)
    config = _update(base, assets=assets, **fit_activity(aligned, returns))
    config = _update(config, **_vol_clustering(facts, config, minutes))
    profiles = tuple(
        AssetProfile(
            asset=a,
            price=_round(facts.assets[a].first_price),
            annual_vol=_round(
                facts.assets[a].annual_vol / np.sqrt(1 + 2 * noise[a] ** 2 / minutes)
            ),
            notional_per_minute=_round(facts.assets[a].notional_per_minute),
            microstructure_noise=_round(noise[a]),
        )
        for a in assets
    )
    config = _update(config, profiles=profiles)
    correlations = _correlations(facts, config, noise, minutes)
    funding_fit = fit_funding(funding, returns, config, minutes)
    return _update(config, correlations=correlations, **funding_fit)


def _update(config: SyntheticConfig, **changes: object) -> SyntheticConfig:
    """A validated copy (model_copy would skip the validators)."""
    return SyntheticConfig.model_validate(config.model_dump() | changes)


def _round(value: float, digits: int = 4) -> float:
    """Four significant digits: more would pretend a precision 30 days do not have."""
    return float(f"{value:.{digits}g}")


def _bounce(acf1: float, minutes: float) -> float:
    """Bounce noise (in 1-minute volatility units) behind a lag-1 autocorrelation.

    acf1 = -n^2 / (m + 2 n^2) for m-minute bars; a positive acf1 has no bounce.
    """
    if not np.isfinite(acf1) or acf1 >= 0:
        return 0.0
    acf1 = max(acf1, -0.45)
    return float(min(np.sqrt(-acf1 * minutes / (1.0 + 2.0 * acf1)), 1.0))


def _vol_clustering(facts: MarketFacts, base: SyntheticConfig, minutes: float) -> dict:
    """vol_of_vol and component weights whose |r| autocorrelation matches the mean measured one."""
    lags = sorted(set.intersection(*(set(f.abs_acf) for f in facts.assets.values())))
    target = np.array([np.mean([f.abs_acf[k] for f in facts.assets.values()]) for k in lags])
    half_lives = np.asarray(base.vol_half_lives_minutes)
    shrink = kern.block_mean_variance(0.5 ** (1.0 / half_lives), minutes)
    lag_minutes = np.asarray(lags, float) * minutes
    autocov = moments.multiplier_autocov(base, lag_minutes)

    def residual(v: np.ndarray) -> np.ndarray:
        acf = moments.abs_return_acf(base, half_lives, v * shrink, lag_minutes, autocov)
        return acf - target

    start = np.full(len(half_lives), 0.05)
    variances = least_squares(residual, start, bounds=(0.0, 2.0)).x
    total = float(variances.sum())
    if total < 1e-6:
        return {"vol_of_vol": 0.0}
    weights = tuple(round(float(w), 3) for w in variances / total)
    return {"vol_of_vol": _round(min(np.sqrt(total), 1.5), 3), "vol_component_weights": weights}


def _correlations(
    facts: MarketFacts, config: SyntheticConfig, noise: Mapping[str, float], minutes: float
) -> tuple[tuple[str, str, float], ...]:
    """Innovation correlations whose realised 1m return correlations are the measured ones.

    Realised = innovation correlation (floored in crises, which carry share w of the
    variance) x exp(-(1 - common share) V) for the idiosyncratic volatility, divided
    by sqrt((1 + 2 n_i^2 / m)(1 + 2 n_j^2 / m)) for the bounce noise.
    """
    share = moments.crisis_variance_share(config)
    variance = float(moments.log_vol_variances(config, minutes).sum())
    damping = np.exp(-(1.0 - config.common_vol_share) * variance)
    floor = config.crisis_correlation
    pairs = []
    for (a, b), measured in facts.correlations.items():
        dilution = np.sqrt((1 + 2 * noise[a] ** 2 / minutes) * (1 + 2 * noise[b] ** 2 / minutes))
        mixed = measured * dilution / damping
        rho = mixed if mixed >= floor else (mixed - share * floor) / (1.0 - share)
        pairs.append((a, b, _round(float(np.clip(rho, -0.95, _MAX_CORRELATION)), 3)))
    for _ in range(50):  # shrink towards zero until the matrix is a valid correlation matrix
        try:
            _update(config, correlations=tuple(pairs))
            return tuple(pairs)
        except ValueError:
            pairs = [(a, b, _round(0.97 * rho, 3)) for a, b, rho in pairs]
    raise ValueError("measured correlations do not form a valid correlation matrix")


def write_yaml(calibration: Calibration, path: Path, source: str) -> None:
    """Write the fitted config as YAML, headed by the facts it was fitted to (as comments)."""
    facts = calibration.facts
    lines = [
        f"# SyntheticConfig fitted by `quantum data calibrate` to {source}",
        f"# ({facts.bars:,} {facts.timeframe} bars). Use: quantum data synth --config {path.name}",
        "# measured: annual vol, notional/min, lag-1 acf, |r| acf at 1 and 60, funding mean/std bp",
    ]
    for asset, f in facts.assets.items():
        lines.append(
            f"#   {asset}: {f.annual_vol:.3f}, {f.notional_per_minute:,.0f}, {f.return_acf1:+.4f}, "
            f"{f.abs_acf.get(1, np.nan):.3f}, {f.abs_acf.get(60, np.nan):.3f}, "
            f"{1e4 * f.funding_mean:+.2f}/{1e4 * f.funding_std:.2f}"
        )
    body = yaml.safe_dump(
        calibration.config.model_dump(mode="json"), sort_keys=False, default_flow_style=None
    )
    path.write_text("\n".join(lines) + "\n" + body)


def read_yaml(path: Path) -> SyntheticConfig:
    """A SyntheticConfig from YAML (unknown keys are errors); ValueError says what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of SyntheticConfig fields")
    return SyntheticConfig.model_validate(data)
