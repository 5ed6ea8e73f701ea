"""A realistic synthetic perpetual-futures market: the embedded default data.

This machine has no exchange access, so training, backtests and tests run on a
seeded market that reproduces the stylised facts of crypto perps. The model, all
vectorised (recursions run in C via scipy's lfilter; kernels in
market/_synthetic_kernels.py):

- Regimes: a Markov chain on an hourly clock over calm / trending / crisis with
  strong persistence (mean spells: calm ~8 days, trends ~4 days, crises ~1.5 days,
  crisis ~4% of the time). Trends carry a drift of random sign, shared by all
  assets; crises triple volatility, lean to crashes and raise correlations.
- Volatility clustering: log-volatility is a sum of AR(1) components with
  half-lives from minutes (bursts) to weeks, weighted as calibrated, mostly shared
  by all assets (a market volatility factor), times the regime multiplier (which
  carries the slow memory) and an intraday/weekend seasonality.
- Fat tails and correlation: multivariate Student-t innovations (3.5 degrees of
  freedom, unit variance) correlated through a Cholesky factor (BTC/ETH 0.96, which
  idiosyncratic volatility and bounce dilute to a realised 0.82).
- Bid-ask bounce: traded prices carry a transient noise around the efficient
  price, so 1m returns have the small negative lag-1 autocorrelation real ones do.
- OHLC: open = previous close (crypto trades around the clock); high and low are
  drawn exactly from the law of a Brownian bridge's max and min given the bar's
  return and variance, so low <= open, close <= high always.
- Volume: mean notional x (bar range / normal range)^gamma x lognormal noise x
  seasonality: volume rises with volatility and with each bar's own move.
- Perp premium: an Ornstein-Uhlenbeck premium over the index whose mean follows
  the recent trend; index = efficient close / (1 + premium); mark = index x (1 +
  EMA of the premium); funding every 8 hours is Binance's formula on the average premium of
  the 8 hours before the event. The premium sits a few bp below zero with a
  persistent noise of about half a bp, so funding is mostly the 0.01% interest
  rate and a little below it (as on Binance), never the +-5 bp swings of a
  premium that chases every hour's drift.

The defaults are fitted to real Binance data by `quantum data calibrate`
(market/calibrate.py); tests/unit/market/test_calibration.py checks the facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market import _synthetic_kernels as kern
from market import _synthetic_moments as moments
from market.schema import (
    FUNDING_INTERVAL_MS,
    TIMESTAMP,
    perp_symbol,
    timeframe_ms,
    to_utc_timestamp,
)
from market.synthetic_config import (  # noqa: F401 (re-exported)
    DEFAULT_CONFIG,
    GENERIC_ASSET,
    KNOWN_ASSETS,
    AssetProfile,
    SyntheticConfig,
    correlation_matrix,
    n_bars,
)

REGIMES = ("calm", "trending", "crisis")
"""Regime labels, in the order of their codes."""
_MINUTES_PER_YEAR = 365 * 24 * 60


@dataclass(frozen=True)
class SyntheticMarket:
    """Generated series keyed by ccxt symbol, in the store's frame format (market.schema)."""

    config: SyntheticConfig
    ohlcv: dict[str, pd.DataFrame]
    mark: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame]
    regimes: pd.Series

    def aligned(self) -> pd.DataFrame:
        """The multi-asset aligned frame (market.loader), straight from memory, no store."""
        from market.loader import align_asset

        grid = self.ohlcv[perp_symbol(self.config.assets[0])].index
        frames = {
            asset: align_asset(
                self.ohlcv[perp_symbol(asset)], self.mark[perp_symbol(asset)],
                self.funding[perp_symbol(asset)], grid, self.config.timeframe,
            )
            for asset in self.config.assets
        }
        return pd.concat(frames, axis=1, names=["asset", "field"])


def generate_market(config: SyntheticConfig = DEFAULT_CONFIG) -> SyntheticMarket:
    """Generate the market described in the module docstring; the seed fixes every value."""
    rng = np.random.default_rng(config.seed)
    index = _bar_index(config)
    bar_minutes = timeframe_ms(config.timeframe) / 60_000
    regimes = _bar_regimes(config, rng, len(index), bar_minutes)
    paths = _price_paths(config, rng, index, regimes, bar_minutes)
    volume = _volume(config, rng, index, paths, bar_minutes)
    mark_close, event_index, rates = _perp_series(config, rng, index, paths, bar_minutes)
    ohlcv, mark, funding = {}, {}, {}
    for j, asset in enumerate(config.assets):
        symbol = perp_symbol(asset)
        ohlcv[symbol] = _bars(index, paths.open[:, j], paths.high[:, j], paths.low[:, j],
                              paths.close[:, j], volume[:, j])
        mark[symbol] = _mark_bars(index, mark_close[:, j])
        funding[symbol] = pd.DataFrame({"funding_rate": rates[:, j]}, index=event_index)
    labels = pd.Categorical.from_codes(regimes, categories=list(REGIMES))
    return SyntheticMarket(
        config, ohlcv, mark, funding, pd.Series(labels, index=index, name="regime")
    )


def _perp_series(
    config: SyntheticConfig,
    rng: np.random.Generator,
    index: pd.DatetimeIndex,
    paths: _Paths,
    bar_minutes: float,
) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Mark closes (bars, assets), funding event times and rates (events, assets).

    The traded price is the perp's; the index is the efficient close (no bid-ask
    bounce) / (1 + premium), and the mark is the index plus a smoothed premium, so
    it tracks the last price without its bounce and tick noise (the exchange's guard
    against liquidations on spikes); the mark-last basis is then about the bounce's
    size, as on Binance (real sample: 0.4 bp BTC/ETH, 1.3 bp SOL).
    """
    premium = kern.premium_path(
        rng, paths.log_ret, paths.activity, bar_minutes,
        base=config.premium_base, sensitivity=config.premium_trend_sensitivity,
        trend_half_life_minutes=config.premium_trend_half_life_minutes,
        reversion_minutes=config.premium_reversion_minutes, noise=config.premium_noise,
        cap=config.premium_cap,
    )
    smooth = kern.ema(premium, config.mark_smoothing_minutes / bar_minutes, premium[0])
    mark_close = paths.efficient / (1.0 + premium) * (1.0 + smooth)
    bar_ns = timeframe_ms(config.timeframe) * 1_000_000
    events, rates = kern.funding_rates(
        premium, int(index[0].value), bar_ns, FUNDING_INTERVAL_MS * 1_000_000,
        interest=config.funding_interest, clamp=config.funding_clamp, cap=config.funding_cap,
    )
    stamps = pd.DatetimeIndex(pd.to_datetime(events, utc=True), name=TIMESTAMP).as_unit("ns")
    return mark_close, stamps, rates


@dataclass(frozen=True)
class _Paths:
    """Per-bar arrays (bars, assets) of the traded price and its volatility."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    log_ret: np.ndarray
    activity: np.ndarray
    """Volatility relative to the asset's normal: stochastic vol x regime x seasonality."""
    efficient: np.ndarray
    """Closes without the bid-ask bounce: what the spot index and the mark price follow."""


def _bar_index(config: SyntheticConfig) -> pd.DatetimeIndex:
    """Bar open times: UTC, nanoseconds, on the timeframe grid."""
    start = to_utc_timestamp(config.start)
    step = pd.Timedelta(milliseconds=timeframe_ms(config.timeframe))
    return pd.date_range(start, periods=n_bars(config), freq=step, name=TIMESTAMP).as_unit("ns")


def _minute_of_week(index: pd.DatetimeIndex) -> np.ndarray:
    """Minutes since Monday 00:00 UTC of each bar's open."""
    return (index.day_of_week * 1440 + index.hour * 60 + index.minute).to_numpy()


def _bar_regimes(
    config: SyntheticConfig, rng: np.random.Generator, n: int, bar_minutes: float
) -> np.ndarray:
    """Regime code of each bar: the hourly chain, read at the hour each bar opens in."""
    hours = int(np.ceil(n * bar_minutes / 60.0))
    hourly = kern.regime_path(rng, hours, np.asarray(config.mean_spell_hours))
    return hourly[(np.arange(n) * bar_minutes // 60).astype(np.int64)]


def _price_paths(
    config: SyntheticConfig,
    rng: np.random.Generator,
    index: pd.DatetimeIndex,
    regimes: np.ndarray,
    bar_minutes: float,
) -> _Paths:
    """Log returns from drift + stochastic vol x correlated t shocks; exact OHLC from them."""
    n, k = len(index), len(config.assets)
    profiles = [config.profile(a) for a in config.assets]
    vols = np.array([p.annual_vol for p in profiles])
    prices = np.array([p.price for p in profiles])
    shares = kern.regime_shares(np.asarray(config.mean_spell_hours))
    regime_vol = np.asarray(config.regime_vol) / np.sqrt(shares @ np.square(config.regime_vol))
    log_vol = kern.log_vol(
        rng, n, k, np.asarray(config.vol_half_lives_minutes) / bar_minutes,
        moments.log_vol_variances(config, bar_minutes), config.common_vol_share,
    )
    minute_of_week = _minute_of_week(index)
    season = kern.seasonality(
        minute_of_week, config.intraday_vol_amplitude, config.weekend_activity
    )
    activity = np.exp(log_vol) * (regime_vol[regimes] * season)[:, None]
    chol = [np.linalg.cholesky(correlation_matrix(config, crisis=c)) for c in (False, True)]
    shocks, jump = kern.correlated_t(rng, chol[0], chol[1], regimes == kern.CRISIS, config.tail_df)
    sharpe = kern.spell_drift(rng, regimes, config.trend_sharpe, config.crash_probability)
    calm_sharpe = kern.calm_sharpe(
        vols, shares, config.trend_sharpe, config.crash_probability, config.annual_log_drift
    )
    calm = (regimes == kern.CALM)[:, None] * calm_sharpe
    dt = bar_minutes / _MINUTES_PER_YEAR
    var = np.square(vols * activity) * dt
    drift = (sharpe[:, None] + calm) * vols * dt - 0.5 * var
    noise = np.array([p.microstructure_noise for p in profiles]) * vols / np.sqrt(_MINUTES_PER_YEAR)
    log_ret, bounce = kern.bounce(rng, drift + np.sqrt(var) * shocks, noise * activity)
    close = prices * np.exp(np.cumsum(log_ret, axis=0))
    open_ = np.vstack([prices[None, :], close[:-1]])
    up, down = kern.bridge_extremes(rng, log_ret, var * jump[:, None])
    high = np.maximum(open_ * np.exp(up), np.maximum(open_, close))
    low = np.minimum(open_ * np.exp(down), np.minimum(open_, close))
    return _Paths(open_, high, low, close, log_ret, activity, close * np.exp(-bounce))


def _volume(
    config: SyntheticConfig,
    rng: np.random.Generator,
    index: pd.DatetimeIndex,
    paths: _Paths,
    bar_minutes: float,
) -> np.ndarray:
    """Base-unit volume: notional x (bar range / normal range)^gamma x lognormal noise x cycle.

    Volume follows the bar's realised high-low range (trading is what moves the
    price), so it rises with volatility, spikes on the bars that move most (the
    Student-t jumps, as liquidations and stop cascades do) and tracks each bar's
    own move, as real 1m volume does. The normal range is that of a Brownian bar
    at the asset's normal volatility.
    """
    profiles = [config.profile(a) for a in config.assets]
    notional = np.array([p.notional_per_minute for p in profiles])
    normal_sd = np.array([p.annual_vol for p in profiles]) * np.sqrt(
        bar_minutes / _MINUTES_PER_YEAR
    )
    bar_range = np.log(paths.high / paths.low) / (normal_sd * kern.UNIT_RANGE_MEAN)
    intensity = bar_range**config.volume_vol_elasticity
    intensity /= moments.mean_volume_intensity(config, bar_minutes)  # mean notional as set
    sd = config.volume_noise
    noise = rng.lognormal(-0.5 * sd * sd, sd, paths.close.shape)
    cycle = kern.seasonality(_minute_of_week(index), config.intraday_volume_amplitude, 1.0)
    return notional * bar_minutes * intensity * noise * cycle[:, None] / paths.close


def _bars(
    index: pd.DatetimeIndex,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> pd.DataFrame:
    """One OHLCV frame in the schema's column order."""
    columns = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame(columns, index=index)


def _mark_bars(index: pd.DatetimeIndex, close: np.ndarray) -> pd.DataFrame:
    """Mark-price bars from mark closes: open = previous close, no intrabar range, no volume."""
    open_ = np.r_[close[0], close[:-1]]
    return _bars(index, open_, np.maximum(open_, close), np.minimum(open_, close), close,
                 np.zeros(len(close)))
