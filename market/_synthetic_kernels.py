"""Numerical kernels of the synthetic market: pure functions over numpy arrays.

Every kernel takes the one ``np.random.Generator`` of the market explicitly (no
global random state), so a seed fixes the whole market. Recursions over bars
(AR(1) log-volatility, the premium's Ornstein-Uhlenbeck process, EMAs) run as
linear filters in C via ``scipy.signal.lfilter``; the only Python loop is over
regime *spells* (tens per year), never over bars. Arrays are (bars, assets).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

CALM, TRENDING, CRISIS = 0, 1, 2
MINUTES_PER_WEEK = 7 * 24 * 60
UNIT_RANGE_MEAN = 2.0 * np.sqrt(2.0 / np.pi)
"""Mean high-low range of a unit-variance Brownian motion over its interval."""

EXIT_PROBABILITIES = np.array([[0.0, 0.8, 0.2], [0.8, 0.0, 0.2], [0.7, 0.3, 0.0]])
"""Where a regime spell goes when it ends (rows: from calm, trending, crisis).

Calm markets mostly break into trends and trends mostly fade into calm; a crisis
can follow either, and is followed by calm (capitulation) or by a trend (rebound).
"""


def ar1(rng: np.random.Generator, n: int, half_life: float, std: float, k: int) -> np.ndarray:
    """k independent stationary AR(1) paths (n, k) with a half-life in bars and a std.

    The first value is drawn from the stationary law, so the series has no burn-in.
    """
    phi = 0.5 ** (1.0 / max(half_life, 1e-9))
    shocks = rng.standard_normal((n, k)) * (std * np.sqrt(1.0 - phi * phi))
    shocks[0] = rng.standard_normal(k) * std
    return lfilter([1.0], [1.0, -phi], shocks, axis=0)


def ema(values: np.ndarray, half_life: float, start: np.ndarray) -> np.ndarray:
    """Causal exponential moving average along axis 0 (half-life in rows), seeded with `start`."""
    alpha = 1.0 - 0.5 ** (1.0 / max(half_life, 1e-9))
    zi = ((1.0 - alpha) * np.asarray(start, dtype=np.float64))[None, :]
    return lfilter([alpha], [1.0, alpha - 1.0], values, axis=0, zi=zi)[0]


def regime_shares(mean_spell_hours: np.ndarray) -> np.ndarray:
    """Long-run share of time in each regime: spell visit rates times mean spell lengths."""
    eigenvalues, eigenvectors = np.linalg.eig(EXIT_PROBABILITIES.T)
    visits = np.abs(np.real(eigenvectors[:, np.argmin(np.abs(eigenvalues - 1.0))]))
    time = visits * mean_spell_hours
    return time / time.sum()


def regime_path(rng: np.random.Generator, hours: int, mean_spell_hours: np.ndarray) -> np.ndarray:
    """Hourly regime codes from a persistent Markov chain, built spell by spell.

    An hourly chain that stays with probability 1 - 1/mean has geometric spell
    lengths with that mean, so drawing whole spells is the same chain with a loop
    over spells instead of hours. The first regime comes from the long-run shares,
    so a short sample is not biased towards calm.
    """
    state = int(rng.choice(3, p=regime_shares(mean_spell_hours)))
    states: list[int] = []
    lengths: list[int] = []
    total = 0
    while total < hours:
        length = int(rng.geometric(1.0 / mean_spell_hours[state]))
        states.append(state)
        lengths.append(length)
        total += length
        state = int(rng.choice(3, p=EXIT_PROBABILITIES[state]))
    return np.repeat(np.array(states, dtype=np.int8), lengths)[:hours]


def spell_ids(codes: np.ndarray) -> np.ndarray:
    """Number each run of equal codes 0, 1, 2, ... (a regime spell)."""
    return np.cumsum(np.r_[False, codes[1:] != codes[:-1]])


def spell_drift(
    rng: np.random.Generator,
    regimes: np.ndarray,
    trend_sharpe: tuple[float, float],
    crash_probability: float,
) -> np.ndarray:
    """Annualised drift per bar in units of each asset's volatility (a Sharpe ratio).

    Each trending spell draws a strength in `trend_sharpe` and a random sign;
    crises drift twice as hard and mostly down (crypto sell-offs). The drift is
    shared by all assets (crypto trends are market-wide) and scaled by each
    asset's volatility by the caller, so alts move more than BTC, as high-beta
    assets do. Calm spells have no drift.
    """
    ids = spell_ids(regimes)
    starts = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
    kinds = regimes[starts]
    strength = rng.uniform(trend_sharpe[0], trend_sharpe[1], len(starts))
    sign = np.where(rng.random(len(starts)) < 0.5, -1.0, 1.0)
    crash = np.where(rng.random(len(starts)) < crash_probability, -1.0, 1.0)
    per_spell = np.select(
        [kinds == TRENDING, kinds == CRISIS], [sign * strength, 2.0 * crash * strength], 0.0
    )
    return per_spell[ids]


def calm_sharpe(
    vols: np.ndarray,
    shares: np.ndarray,
    trend_sharpe: tuple[float, float],
    crash_probability: float,
    annual_log_drift: float,
) -> np.ndarray:
    """Calm-spell drift (in volatility units, per asset) that sets the long-run log return.

    Trends are symmetric; crises drift 2 x trend strength, down with the crash
    probability; the volatility drag is sigma^2 / 2 per year. Without an offset a
    long sample would sink; this calm drift makes the expected annual log return
    equal `annual_log_drift` (the slow grind up between crashes).
    """
    crisis = 2.0 * np.mean(trend_sharpe) * (1.0 - 2.0 * crash_probability)
    needed = (annual_log_drift + 0.5 * vols * vols) / vols
    return (needed - shares[CRISIS] * crisis) / shares[CALM]


def seasonality(minute_of_week: np.ndarray, amplitude: float, weekend: float) -> np.ndarray:
    """Daily cycle peaking at 15:00 UTC (US/EU overlap) with quieter weekends.

    Normalised to mean square 1 over a week, so it reshapes volatility in time
    without changing its annual level.
    """

    def shape(minutes: np.ndarray) -> np.ndarray:
        hour = (minutes % 1440) / 60.0
        cycle = 1.0 + amplitude * np.cos(2.0 * np.pi * (hour - 15.0) / 24.0)
        return cycle * np.where(minutes // 1440 >= 5, weekend, 1.0)  # day 5, 6: Sat, Sun

    norm = np.sqrt(np.mean(shape(np.arange(MINUTES_PER_WEEK)) ** 2))
    return shape(minute_of_week) / norm


def log_vol(
    rng: np.random.Generator,
    n: int,
    k: int,
    half_lives: np.ndarray,
    variances: np.ndarray,
    common_share: float,
) -> np.ndarray:
    """Log-volatility deviations (n, k) with long memory, partly common to all assets.

    A sum of AR(1) components at several speeds (minutes to weeks) mimics the slowly
    decaying autocorrelation of |returns| that one GARCH(1,1) cannot; component i
    has half-life `half_lives[i]` (bars) and variance `variances[i]`. `common_share`
    of each is one market factor shared by all assets (vol spikes hit crypto
    together). The mean is shifted so that E[exp(2 h)] = 1: the variance is unbiased.
    """
    total = np.zeros((n, k))
    for half_life, part in zip(half_lives, variances, strict=True):
        if part == 0:
            continue
        total += ar1(rng, n, half_life, np.sqrt(common_share * part), 1)
        total += ar1(rng, n, half_life, np.sqrt((1.0 - common_share) * part), k)
    return total - float(np.sum(variances))


def block_mean_variance(phi: np.ndarray | float, m: float) -> np.ndarray:
    """Variance of the mean of m consecutive values of a unit-variance AR(1) with coefficient phi.

    1 for m = 1, about 2 / (m (1 - phi)) for long blocks: a component much faster
    than a bar averages out inside it, and a premium averaged over 8 hours keeps
    only its slow part.
    """
    phi = np.minimum(np.asarray(phi, dtype=float), 1.0 - 1e-12)
    m = max(float(m), 1.0)
    tail = 2.0 * phi * (1.0 - phi**m) / (m * (1.0 - phi) ** 2)
    return ((1.0 + phi) / (1.0 - phi) - tail) / m


def block_mean_acf1(phi: float, m: float) -> float:
    """Lag-1 autocorrelation of consecutive m-value block means of a stationary AR(1)."""
    phi = min(float(phi), 1.0 - 1e-12)
    cov = phi * (1.0 - phi**m) ** 2 / (m * (1.0 - phi)) ** 2
    return float(cov / block_mean_variance(phi, m))


def correlated_t(
    rng: np.random.Generator,
    chol_normal: np.ndarray,
    chol_crisis: np.ndarray,
    crisis: np.ndarray,
    df: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance multivariate Student-t shocks (n, k) and each bar's variance scale.

    A normal vector correlated by a Cholesky factor is divided by one chi-square
    draw per bar, shared by all assets: marginals are Student-t with `df` degrees
    of freedom and extreme bars hit all assets at once (tail dependence). Crisis
    bars use the more correlated factor. The scale w (mean 1) is the bar's variance
    relative to normal, returned so that high/low ranges and volume see the jump.
    """
    n, k = len(crisis), chol_normal.shape[0]
    normal = rng.standard_normal((n, k))
    scale = (df - 2.0) / rng.chisquare(df, n)
    shocks = np.where(crisis[:, None], normal @ chol_crisis.T, normal @ chol_normal.T)
    return shocks * np.sqrt(scale)[:, None], scale


def bounce(
    rng: np.random.Generator, log_ret: np.ndarray, noise_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Observed log returns and each close's noise: efficient returns plus transient noise.

    Traded prices print at the bid or the ask around the efficient price, so the
    observed log price is the efficient one plus noise e_t (std `noise_sd`, (n, k)),
    and the observed return r_t + e_t - e_{t-1} reverts a little next bar: lag-1
    autocorrelation -sd^2 / (var + 2 sd^2). The first bar's open carries no noise.
    """
    noise = rng.standard_normal(log_ret.shape) * noise_sd
    return log_ret + noise - np.vstack([np.zeros((1, log_ret.shape[1])), noise[:-1]]), noise


def bridge_extremes(
    rng: np.random.Generator, x: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact max (>= max(0, x)) and min (<= min(0, x)) of a Brownian bridge from 0 to x.

    For Brownian motion with variance `var` over the bar that ends at x, the
    maximum is (x + sqrt(x^2 - 2 var ln U)) / 2 with U uniform, and symmetrically
    the minimum; so the bar's range matches its variance like real bars do.
    """
    u = 1.0 - rng.random(x.shape)
    v = 1.0 - rng.random(x.shape)
    high = 0.5 * (x + np.sqrt(x * x - 2.0 * var * np.log(u)))
    low = 0.5 * (x - np.sqrt(x * x - 2.0 * var * np.log(v)))
    return high, low


def premium_path(
    rng: np.random.Generator,
    log_ret: np.ndarray,
    activity: np.ndarray,
    bar_minutes: float,
    *,
    base: float,
    sensitivity: float,
    trend_half_life_minutes: float,
    reversion_minutes: float,
    noise: float,
    cap: float,
) -> np.ndarray:
    """Perp premium over the index (n, k): an Ornstein-Uhlenbeck process around a trend.

    Traders pay up for leverage in rallies and short into sell-offs, so the premium
    reverts to base + sensitivity * (recent drift per minute), the recent drift
    being an EMA of past returns (causal). Its noise (stationary std `noise`)
    scales with `activity` (sigma / normal sigma): the basis is wilder in a crisis.
    Times are in minutes, so every timeframe gets the same process. A soft cap
    (tanh) keeps |premium| < `cap` without pinning it flat at the bound.
    """
    half_life = trend_half_life_minutes / bar_minutes
    trend = ema(log_ret, half_life, np.zeros(log_ret.shape[1])) / bar_minutes
    target = base + sensitivity * trend
    phi = np.exp(-bar_minutes / reversion_minutes)
    shocks = rng.standard_normal(log_ret.shape) * activity
    drive = (1.0 - phi) * target + noise * np.sqrt(1.0 - phi * phi) * shocks
    premium = lfilter([1.0], [1.0, -phi], drive, axis=0, zi=phi * target[:1])[0]
    return cap * np.tanh(premium / cap)  # soft cap: extreme premiums saturate smoothly


def funding_rates(
    premium: np.ndarray,
    first_open_ns: int,
    bar_ns: int,
    interval_ns: int,
    *,
    interest: float,
    clamp: float,
    cap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Funding event times (ns) inside the span and their rates (events, k), Binance-style.

    Events fall on multiples of the interval (00:00, 08:00, 16:00 UTC for 8 h). An
    event at T averages the premium of the bars that closed in (T - 8h, T] (data
    known by T, nothing later) and needs a full interval of them, then applies
    F = P + clamp(I - P, -c, c), capped: the interest I wins while the premium is
    small, which is why real funding sits at 0.01% most of the time.
    """
    n = premium.shape[0]
    end_ns = first_open_ns + n * bar_ns
    earliest = first_open_ns + max(interval_ns, bar_ns)
    first_event = -(-earliest // interval_ns) * interval_ns
    count = max((end_ns - first_event) // interval_ns + 1, 0)  # integers: float arange drops one
    events = first_event + interval_ns * np.arange(count, dtype=np.int64)
    cumulative = np.vstack([np.zeros((1, premium.shape[1])), np.cumsum(premium, axis=0)])
    stop = (events - first_open_ns) // bar_ns
    begin = np.maximum(stop - max(interval_ns // bar_ns, 1), 0)
    average = (cumulative[stop] - cumulative[begin]) / (stop - begin)[:, None]
    rates = average + np.clip(interest - average, -clamp, clamp)
    return events, np.clip(rates, -cap, cap)
