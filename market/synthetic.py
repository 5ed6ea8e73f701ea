"""A realistic synthetic perpetual-futures market: the embedded default data.

The model, per bar (all vectorised; recursive filters run in C via scipy's lfilter):

- Regimes: a Markov chain on an hourly clock over calm / trending / crisis with
  strong persistence (calm spells ~8 days, trends ~4 days, crises ~1.5 days).
  Trends carry a drift of random sign; crises triple volatility, lean to crashes
  and raise correlations, as crypto sell-offs do.
- Volatility clustering with long memory: log-volatility is a sum of AR(1)
  components with half-lives of an hour, a day and two weeks, partly shared by all
  assets (a market volatility factor), plus an intraday seasonality.
- Fat tails: Student-t innovations (4 degrees of freedom, unit variance) on top of
  the stochastic volatility.
- Correlation: innovations are correlated through a Cholesky factor of the target
  correlation matrix (BTC/ETH 0.8).
- OHLC: open = previous close (crypto trades around the clock); high and low are
  drawn exactly from the distribution of a Brownian bridge's maximum and minimum
  given the bar's return and variance, so low <= open, close <= high always.
- Volume rises with volatility (and with the bar's absolute shock).
- Perp premium: an Ornstein-Uhlenbeck premium over the index whose mean follows
  the recent trend; funding every 8 hours is Binance's formula on the average
  premium of the 8 hours before the event; the mark price is the index plus a
  smoothed premium.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.signal import lfilter

from market.schema import (
    FUNDING_INTERVAL_MS,
    TIMESTAMP,
    perp_symbol,
    timeframe_ms,
    to_utc_timestamp,
)

REGIMES = ("calm", "trending", "crisis")
_MINUTES_PER_YEAR = 365 * 24 * 60

# asset: (initial price, annualised volatility, base traded notional per minute in USD)
_KNOWN = {
    "BTC": (42_000.0, 0.55, 5_000_000.0),
    "ETH": (2_300.0, 0.70, 2_500_000.0),
    "SOL": (100.0, 0.95, 1_000_000.0),
}
_GENERIC = (1.0, 0.90, 500_000.0)
_CORR = {("BTC", "ETH"): 0.84, ("BTC", "SOL"): 0.74, ("ETH", "SOL"): 0.77}
_GENERIC_CORR = 0.65


class SyntheticConfig(BaseModel):
    """What to generate. Unknown asset names get generic parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assets: tuple[str, ...] = Field(("BTC", "ETH", "SOL"), description="Asset names.")
    timeframe: str = Field("1m", description="Bar timeframe (ccxt notation).")
    days: float = Field(365.0, gt=0, le=3650, description="Length of the span in days.")
    start: str = Field("2024-01-01", description="UTC open time of the first bar.")
    seed: int = Field(7, description="Seed of the one random generator; same seed, same data.")
    regime_persistence: tuple[float, float, float] = Field(
        (0.995, 0.99, 0.97),
        description="Hourly probability of staying in calm, trending, crisis.",
    )
    regime_vol: tuple[float, float, float] = Field(
        (0.7, 1.0, 3.0), description="Volatility multiplier in calm, trending, crisis."
    )
    trend_drift: tuple[float, float] = Field(
        (5.0, 15.0), description="Range of the annualised drift magnitude of a trend spell."
    )
    crisis_corr: float = Field(0.92, gt=0, lt=1, description="Pairwise correlation in a crisis.")
    tail_df: float = Field(4.5, gt=2, description="Student-t degrees of freedom of innovations.")
    vol_of_vol: float = Field(
        0.3, ge=0, le=1, description="Stationary std of each log-volatility component."
    )

    @field_validator("assets")
    @classmethod
    def _assets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not a or "/" in a for a in value) or len(set(value)) != len(value):
            raise ValueError("assets must be distinct non-empty names like 'BTC'")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value


@dataclass(frozen=True)
class SyntheticMarket:
    """Generated series keyed by ccxt symbol, in the store's frame format."""

    config: SyntheticConfig
    ohlcv: dict[str, pd.DataFrame]
    mark: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame]
    regimes: pd.Series


def _ar1(rng: np.random.Generator, n: int, half_life: float, std: float, k: int) -> np.ndarray:
    """k independent stationary AR(1) paths (n, k) with the given half-life (bars) and std."""
    phi = 0.5 ** (1.0 / max(half_life, 1e-9))
    shocks = rng.standard_normal((n, k)) * std * np.sqrt(1.0 - phi * phi)
    shocks[0] = rng.standard_normal(k) * std
    return lfilter([1.0], [1.0, -phi], shocks, axis=0)


def _regime_path(cfg: SyntheticConfig, rng: np.random.Generator, hours: int) -> np.ndarray:
    """Hourly regime codes (0 calm, 1 trending, 2 crisis) from a persistent Markov chain."""
    stay = np.array(cfg.regime_persistence)
    # where a spell goes when it ends: calm -> mostly trend; trend -> mostly calm; crisis -> calm
    exits = np.array([[0.0, 0.8, 0.2], [0.8, 0.0, 0.2], [0.67, 0.33, 0.0]])
    uniforms = rng.random((hours, 2))
    path = np.empty(hours, dtype=np.int8)
    state = 0
    for h in range(hours):
        if uniforms[h, 0] > stay[state]:
            state = int(np.searchsorted(np.cumsum(exits[state]), uniforms[h, 1] * 0.999999))
        path[h] = state
    return path


def _spell_drift(cfg: SyntheticConfig, rng: np.random.Generator, regimes: np.ndarray) -> np.ndarray:
    """Annualised drift per bar: a random-sign drift per trend spell, crash-leaning in crises."""
    spell_id = np.cumsum(np.r_[True, regimes[1:] != regimes[:-1]]) - 1
    n_spells = int(spell_id[-1]) + 1
    lo, hi = cfg.trend_drift
    magnitude = rng.uniform(lo, hi, n_spells)
    sign = np.where(rng.random(n_spells) < 0.5, -1.0, 1.0)
    crash = np.where(rng.random(n_spells) < 0.75, -1.0, 1.0)
    spell_regime = regimes[np.r_[0, np.flatnonzero(np.diff(spell_id)) + 1]]
    drift = np.select(
        [spell_regime == 1, spell_regime == 2], [sign * magnitude, crash * 2.0 * magnitude], 0.0
    )
    return drift[spell_id]


def _correlation(assets: tuple[str, ...], crisis: float | None = None) -> np.ndarray:
    n = len(assets)
    corr = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            pair = (assets[i], assets[j])
            rho = _CORR.get(pair, _CORR.get(pair[::-1], _GENERIC_CORR))
            corr[i, j] = corr[j, i] = rho if crisis is None else max(rho, crisis)
    return corr


def _innovations(cfg: SyntheticConfig, rng, n: int, crisis: np.ndarray) -> np.ndarray:
    """Correlated, fat-tailed, unit-variance shocks (n, assets); more correlated in crises."""
    k = len(cfg.assets)
    df = cfg.tail_df
    raw = rng.standard_t(df, size=(n, k)) / np.sqrt(df / (df - 2.0))
    normal = raw @ np.linalg.cholesky(_correlation(cfg.assets)).T
    stressed = raw @ np.linalg.cholesky(_correlation(cfg.assets, cfg.crisis_corr)).T
    return np.where(crisis[:, None], stressed, normal)


def _log_vol(cfg: SyntheticConfig, rng, n: int, bar_minutes: float) -> np.ndarray:
    """Log-volatility deviations (n, assets): shared long-memory factor + asset-specific part."""
    k = len(cfg.assets)
    s = cfg.vol_of_vol
    per_bar = 1.0 / bar_minutes
    common = sum(
        _ar1(rng, n, hl * per_bar, s, 1) for hl in (60.0, 1440.0, 20160.0)
    )  # an hour, a day, two weeks
    own = _ar1(rng, n, 1440.0 * per_bar, 0.6 * s, k)
    total = common + own
    return total - 0.5 * (3 * s * s + (0.6 * s) ** 2)  # unit mean of exp(2 * log_vol) / 2


def _bridge_extremes(rng, x: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact max and min of a Brownian bridge from 0 to x with total variance var."""
    u = 1.0 - rng.random(x.shape)
    v = 1.0 - rng.random(x.shape)
    high = 0.5 * (x + np.sqrt(x * x - 2.0 * var * np.log(u)))
    low = 0.5 * (x - np.sqrt(x * x - 2.0 * var * np.log(v)))
    return high, low


def _ema(values: np.ndarray, half_life: float, start: np.ndarray | None = None) -> np.ndarray:
    """Exponential moving average along axis 0, starting from `start` (default: first row)."""
    alpha = 1.0 - 0.5 ** (1.0 / half_life)
    first = values[:1] if start is None else start[None, :]
    return lfilter([alpha], [1.0, alpha - 1.0], values, axis=0, zi=(1.0 - alpha) * first)[0]


def generate_market(config: SyntheticConfig | None = None) -> SyntheticMarket:
    """Generate the market described in the module docstring (deterministic in the seed)."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    bar_ms = timeframe_ms(cfg.timeframe)
    bar_minutes = bar_ms / 60_000
    n = round(cfg.days * 86_400_000 / bar_ms)
    if n < 2:
        raise ValueError(f"{cfg.days} days of {cfg.timeframe} bars is fewer than 2 bars")
    start = to_utc_timestamp(cfg.start)
    index = pd.date_range(start, periods=n, freq=pd.Timedelta(milliseconds=bar_ms), name=TIMESTAMP)
    index = index.as_unit("ns")
    hours = int(np.ceil(n * bar_minutes / 60)) + 1
    bar_hour = (np.arange(n) * bar_minutes // 60).astype(np.int64)
    regimes = _regime_path(cfg, rng, hours)[bar_hour]
    crisis = regimes == 2
    prices, vols, notionals = map(
        np.array, zip(*(_KNOWN.get(a, _GENERIC) for a in cfg.assets), strict=True)
    )
    dt = bar_minutes / _MINUTES_PER_YEAR
    hour_of_day = index.hour.to_numpy() + index.minute.to_numpy() / 60
    season = 1.0 + 0.25 * np.cos(2 * np.pi * (hour_of_day - 15.0) / 24.0)
    regime_mult = np.asarray(cfg.regime_vol)[regimes]
    sigma = vols * np.exp(_log_vol(cfg, rng, n, bar_minutes)) * (regime_mult * season)[:, None]
    shocks = _innovations(cfg, rng, n, crisis)
    drift = _spell_drift(cfg, rng, regimes)[:, None]
    var = sigma * sigma * dt
    log_ret = drift * dt - 0.5 * var + np.sqrt(var) * shocks
    close = prices * np.exp(np.cumsum(log_ret, axis=0))
    open_ = np.vstack([prices[None, :], close[:-1]])
    up, down = _bridge_extremes(rng, log_ret, var)
    high = open_ * np.exp(up)
    low = open_ * np.exp(down)
    volume_notional = (
        notionals * bar_minutes * (sigma / vols) * np.exp(0.3 * np.abs(shocks))
        * rng.lognormal(-0.125, 0.5, (n, len(cfg.assets))) * season[:, None]
    )  # fmt: skip
    volume = volume_notional / close
    premium = _premium(rng, log_ret, bar_minutes)
    mark_close = close / (1.0 + premium) * (1.0 + _ema(premium, 30.0 / bar_minutes))
    events, rates = _funding(index, bar_ms, premium)
    ohlcv, mark, funding = {}, {}, {}
    for j, asset in enumerate(cfg.assets):
        symbol = perp_symbol(asset)
        ohlcv[symbol] = pd.DataFrame(
            {"open": open_[:, j], "high": high[:, j], "low": low[:, j], "close": close[:, j],
             "volume": volume[:, j]}, index=index,
        )  # fmt: skip
        mark_open = np.r_[mark_close[0, j], mark_close[:-1, j]]
        mark[symbol] = pd.DataFrame(
            {"open": mark_open, "high": np.maximum(mark_open, mark_close[:, j]),
             "low": np.minimum(mark_open, mark_close[:, j]), "close": mark_close[:, j],
             "volume": np.zeros(n)}, index=index,
        )  # fmt: skip
        funding[symbol] = pd.DataFrame({"funding_rate": rates[:, j]}, index=events)
    labels = pd.Categorical.from_codes(regimes, categories=list(REGIMES))
    return SyntheticMarket(cfg, ohlcv, mark, funding, pd.Series(labels, index=index, name="regime"))


def _premium(rng, log_ret: np.ndarray, bar_minutes: float) -> np.ndarray:
    """Perp premium over the index: OU around 1 bp plus a share of the recent trend."""
    no_trend = np.zeros(log_ret.shape[1])
    trend = _ema(log_ret, 1440.0 / bar_minutes, no_trend) / bar_minutes  # per-minute drift
    target = 0.0001 + 40.0 * trend
    kappa = min(1.0, 0.01 * bar_minutes)
    noise = rng.standard_normal(log_ret.shape) * 5e-5 * np.sqrt(bar_minutes)
    drive = kappa * target + noise
    premium = lfilter([1.0], [1.0, kappa - 1.0], drive, axis=0, zi=(1 - kappa) * target[:1])[0]
    return np.clip(premium, -0.003, 0.003)


def _funding(
    index: pd.DatetimeIndex, bar_ms: int, premium: np.ndarray
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Funding events at 00/08/16 UTC inside the span, from the premium of the 8 h before."""
    step_ns = FUNDING_INTERVAL_MS * 1_000_000
    bar_ns = bar_ms * 1_000_000
    first_ns, end_ns = index[0].value, index[-1].value + bar_ns
    first_event = -(-(first_ns + step_ns) // step_ns) * step_ns  # a full 8 h of premium before
    events = np.arange(first_event, end_ns + 1, step_ns)
    cumulative = np.vstack([np.zeros((1, premium.shape[1])), np.cumsum(premium, axis=0)])
    stop = (events - first_ns) // bar_ns  # bars strictly before the event
    begin = np.maximum(stop - step_ns // bar_ns, 0)
    average = (cumulative[stop] - cumulative[begin]) / (stop - begin)[:, None]
    rates = np.clip(average + np.clip(0.0001 - average, -0.0005, 0.0005), -0.0075, 0.0075)
    stamps = pd.DatetimeIndex(events.astype("datetime64[ns]"), name=TIMESTAMP).tz_localize("UTC")
    return stamps, rates
