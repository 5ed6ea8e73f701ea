"""Indicator numba kernels of the fast feature engine; each matches its 'ta'/pandas twin.

Every kernel writes into caller-owned arrays (columns of the feature frame) and
reads only rows <= t to produce row t. Inputs are finite (market.features
validates the frame), so the kernels need no NaN handling of their own.

The exponential averages reproduce pandas' ``ewm(adjust=False)`` exactly: alpha
derived through pandas' centre of mass, and the step
``((1 - a) * prev + a * x) / ((1 - a) + a)``, skipped when x equals prev. The
normaliser is exactly 1.0 for the usual spans, and its division is then
skipped, which takes the slowest instruction off the loop-carried path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.numba_cache import configure_numba_cache

configure_numba_cache()


@njit(cache=True, nogil=True, inline="always")
def _span_alpha(span):
    """pandas' alpha for ewm(span=...): via the centre of mass (span - 1) / 2."""
    return 1.0 / (1.0 + (span - 1) / 2)


@njit(cache=True, nogil=True, inline="always")
def _alpha_alpha(alpha):
    """pandas' alpha for ewm(alpha=...): via the centre of mass (1 - alpha) / alpha."""
    return 1.0 / (1.0 + (1.0 - alpha) / alpha)


@njit(cache=True, nogil=True, inline="always")
def _ewm_step(prev, x, alpha, norm):
    """One pandas ewm(alpha, adjust=False) update; the first observation starts it."""
    if prev != prev:
        return x
    if prev == x:
        return prev
    value = (1.0 - alpha) * prev + alpha * x
    return value if norm == 1.0 else value / norm


@njit(cache=True, nogil=True)
def macd(close, fast, slow, signal, out_macd, out_signal, out_diff):
    """ta MACD line, signal and histogram, each divided by close (scale-free).

    The fast and slow averages run from row 0; the line exists once both have
    their min_periods; the signal averages the line from its first value on.
    """
    a_fast, a_slow, a_sig = _span_alpha(fast), _span_alpha(slow), _span_alpha(signal)
    n_fast, n_slow, n_sig = (1.0 - a_fast) + a_fast, (1.0 - a_slow) + a_slow, (1.0 - a_sig) + a_sig
    e_fast = e_slow = e_sig = np.nan
    seen = 0
    for t in range(close.shape[0]):
        c = close[t]
        e_fast = _ewm_step(e_fast, c, a_fast, n_fast)
        e_slow = _ewm_step(e_slow, c, a_slow, n_slow)
        if t + 1 < max(fast, slow):
            out_macd[t] = out_signal[t] = out_diff[t] = np.nan
            continue
        line = e_fast - e_slow
        e_sig = _ewm_step(e_sig, line, a_sig, n_sig)
        seen += 1
        out_macd[t] = line / c
        if seen < signal:
            out_signal[t] = out_diff[t] = np.nan
        else:
            out_signal[t] = e_sig / c
            out_diff[t] = (line - e_sig) / c


@njit(cache=True, nogil=True)
def rsi(close, window, out):
    """ta RSIIndicator: Wilder averages (alpha 1/window) of gains and losses from row 0.

    Row 0 has no change and counts as a zero gain and loss, as in 'ta'; 100
    where the average loss is 0.
    """
    alpha = _alpha_alpha(1.0 / window)
    norm = (1.0 - alpha) + alpha
    up = down = np.nan
    for t in range(close.shape[0]):
        d = close[t] - close[t - 1] if t > 0 else 0.0
        up = _ewm_step(up, d if d > 0.0 else 0.0, alpha, norm)
        down = _ewm_step(down, -d if d < 0.0 else 0.0, alpha, norm)
        if t + 1 < window:
            out[t] = np.nan
        elif down == 0.0:
            out[t] = 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + up / down)


@njit(cache=True, nogil=True, inline="always")
def _true_range(high, low, close, t):
    """max(high - low, |high - previous close|, |low - previous close|); row 0: high - low."""
    r = high[t] - low[t]
    if t > 0:
        r = max(r, abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
    return r


@njit(cache=True, nogil=True)
def atr(high, low, close, window, seed, out_atr, out_pct):
    """ta AverageTrueRange (Wilder) and ATR / close; NaN for the warm-up (ta writes 0.0).

    `seed` is the mean true range of the first `window` bars, which 'ta' takes
    with pandas' mean (numpy's pairwise sum); the caller computes it the same way.
    """
    value = seed
    for t in range(close.shape[0]):
        if t < window - 1:
            out_atr[t] = out_pct[t] = np.nan
            continue
        if t >= window:
            value = (value * (window - 1) + _true_range(high, low, close, t)) / float(window)
        out_atr[t] = value
        out_pct[t] = value / close[t]


@njit(cache=True, nogil=True)
def obv(close, volume, out):
    """ta OnBalanceVolumeIndicator: running sum of volume, negative on a lower close."""
    total = 0.0
    for t in range(close.shape[0]):
        total += -volume[t] if (t > 0 and close[t] < close[t - 1]) else volume[t]
        out[t] = total


@njit(cache=True, nogil=True)
def last_funding(rate, event, out):
    """The last funding rate known at each row (NaN before the first event)."""
    last = np.nan
    for t in range(rate.shape[0]):
        if event[t] > 0.0:
            last = rate[t]
        out[t] = last


@njit(cache=True, nogil=True)
def _anchor(x, t, window):
    """Exact mean of x[t-window+1..t] (two passes) and the sums of deviations from it."""
    ref = 0.0
    for k in range(t - window + 1, t + 1):
        ref += x[k]
    ref /= window
    sx = sxx = 0.0
    for k in range(t - window + 1, t + 1):
        d = x[k] - ref
        sx += d
        sxx += d * d
    return ref, sx, sxx


@njit(cache=True, nogil=True)
def _cross_anchor(x, y, t, window):
    """Exact means of both windows and the sums of their deviations and cross-products."""
    rx, sx, sxx = _anchor(x, t, window)
    ry, sy, syy = _anchor(y, t, window)
    sxy = 0.0
    for k in range(t - window + 1, t + 1):
        sxy += (x[k] - rx) * (y[k] - ry)
    return rx, ry, sx, sy, sxx, syy, sxy


@njit(cache=True, nogil=True)
def rolling_corr(x, y, window, out):
    """pandas x.rolling(window).corr(y) into out: NaN where either window is constant.

    Exact rather than a copy of pandas' compiled roll_corr: sums of deviations
    from the window means, redone from scratch every `window` rows, so squares
    never cancel and rounding never builds up. pandas is accurate here too
    (returns have a mean near zero: it differs by ~3e-11 over 1M bars), and
    correlations are not z-scored, so nothing amplifies the difference.
    """
    run = same_x = same_y = age = 0
    rx = ry = sx = sy = sxx = syy = sxy = 0.0
    for t in range(x.shape[0]):
        a, b = x[t], y[t]
        if a != a or b != b:
            run = same_x = same_y = 0
            out[t] = np.nan
            continue
        same_x = same_x + 1 if run > 0 and a == x[t - 1] else 1
        same_y = same_y + 1 if run > 0 and b == y[t - 1] else 1
        run += 1
        if run < window:
            out[t] = np.nan
            continue
        if run == window or age == window:
            rx, ry, sx, sy, sxx, syy, sxy = _cross_anchor(x, y, t, window)
            age = 0
        else:
            dx, dy = a - rx, b - ry
            ox, oy = x[t - window] - rx, y[t - window] - ry
            sx += dx - ox
            sy += dy - oy
            sxx += dx * dx - ox * ox
            syy += dy * dy - oy * oy
            sxy += dx * dy - ox * oy
        age += 1
        vx = sxx - sx * sx / window
        vy = syy - sy * sy / window
        if same_x >= window or same_y >= window or vx <= 0.0 or vy <= 0.0:
            out[t] = np.nan
        else:
            out[t] = (sxy - sx * sy / window) / math.sqrt(vx * vy)
