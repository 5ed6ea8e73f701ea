"""numba kernels of the fast feature engine; each matches its 'ta'/pandas twin to 1e-9.

Every kernel reads only rows <= t to produce row t (no look-ahead), and returns
NaN where its pandas twin does (warm-up, windows with missing values).
Rolling means, sums and standard deviations mirror pandas' own online algorithms
(compensated sums and Welford updates, from pandas/core/_numba/kernels), so the
two engines round alike. Rolling correlation keeps sums of values shifted by a
reference inside the window, recomputed exactly every `window` rows, so rounding
never accumulates over a million rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from market.numba_cache import configure_numba_cache

configure_numba_cache()


@njit(cache=True, nogil=True)
def ewm(x, alpha, min_periods):
    """pandas ewm(alpha, adjust=False, min_periods).mean(), starting at the first finite x."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    value = np.nan
    count = 0
    for t in range(n):
        v = x[t]
        if v == v:
            if count == 0:
                value = v
            elif value != v:  # as pandas: an unchanged value stays bit-identical
                value = ((1.0 - alpha) * value + alpha * v) / ((1.0 - alpha) + alpha)
            count += 1
        if count >= min_periods and count > 0:
            out[t] = value
    return out


@njit(cache=True, inline="always")
def _kahan_add(total, compensation, value):
    y = value - compensation
    t = total + y
    return t, t - total - y


@njit(cache=True, nogil=True)
def rolling_mean(x, window):
    """pandas rolling(window).mean(): a compensated running sum, as pandas computes it."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    nobs = 0
    total = comp_add = comp_remove = 0.0
    same = 0
    prev = np.nan
    negatives = 0
    for t in range(n):
        v = x[t]
        if t >= window:
            old = x[t - window]
            if old == old:
                nobs -= 1
                total, comp_remove = _kahan_add(total, comp_remove, -old)
                negatives -= old < 0
        if v == v:
            nobs += 1
            total, comp_add = _kahan_add(total, comp_add, v)
            negatives += v < 0
            same = same + 1 if v == prev else 1
            prev = v
        if nobs >= window:
            result = total / nobs
            if same >= nobs:
                result = prev
            elif (negatives == 0 and result < 0) or (negatives == nobs and result > 0):
                result = 0.0
            out[t] = result
    return out


@njit(cache=True, nogil=True)
def rolling_sum(x, window):
    """pandas rolling(window).sum(): a compensated running sum."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    nobs = 0
    total = comp_add = comp_remove = 0.0
    same = 0
    prev = np.nan
    for t in range(n):
        v = x[t]
        if t >= window:
            old = x[t - window]
            if old == old:
                nobs -= 1
                total, comp_remove = _kahan_add(total, comp_remove, -old)
        if v == v:
            nobs += 1
            total, comp_add = _kahan_add(total, comp_add, v)
            same = same + 1 if v == prev else 1
            prev = v
        if nobs >= window:
            out[t] = prev * nobs if same >= nobs else total
    return out


@njit(cache=True, nogil=True)
def rolling_std(x, window, ddof):
    """pandas rolling(window).std(ddof): Welford updates with compensation, as pandas does."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    nobs = 0
    mean = ssqdm = comp_add = comp_remove = 0.0
    same = 0
    prev = np.nan
    for t in range(n):
        v = x[t]
        if t >= window:
            old = x[t - window]
            if old == old:
                nobs -= 1
                if nobs:
                    prev_mean = mean - comp_remove
                    y = old - comp_remove
                    d = y - mean
                    comp_remove = d + mean - y
                    mean -= d / nobs
                    ssqdm -= (old - prev_mean) * (old - mean)
                else:
                    mean = ssqdm = 0.0
        if v == v:
            same = same + 1 if v == prev else 1
            prev = v
            nobs += 1
            prev_mean = mean - comp_add
            y = v - comp_add
            d = y - mean
            comp_add = d + mean - y
            mean += d / nobs
            ssqdm += (v - prev_mean) * (v - mean)
        if nobs >= window and nobs > ddof:
            var = 0.0 if (nobs == 1 or same >= nobs) else ssqdm / (nobs - ddof)
            out[t] = math.sqrt(var) if var > 0.0 else 0.0
    return out


@njit(cache=True, nogil=True)
def rolling_corr(x, y, window):
    """Rolling Pearson correlation over `window` rows (NaN where either is constant)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    valid = 0
    sx = sy = sxx = syy = sxy = 0.0
    rx = ry = 0.0
    for t in range(n):
        a = x[t]
        b = y[t]
        valid = valid + 1 if (a == a and b == b) else 0
        if valid < window:
            continue
        if valid == window or (t % window) == 0:
            rx = a
            ry = b
            sx = sy = sxx = syy = sxy = 0.0
            for k in range(t - window + 1, t + 1):
                dx = x[k] - rx
                dy = y[k] - ry
                sx += dx
                sy += dy
                sxx += dx * dx
                syy += dy * dy
                sxy += dx * dy
        else:
            dx = a - rx
            dy = b - ry
            ox = x[t - window] - rx
            oy = y[t - window] - ry
            sx += dx - ox
            sy += dy - oy
            sxx += dx * dx - ox * ox
            syy += dy * dy - oy * oy
            sxy += dx * dy - ox * oy
        cov = sxy - sx * sy / window
        vx = sxx - sx * sx / window
        vy = syy - sy * sy / window
        if vx > 0.0 and vy > 0.0:
            out[t] = cov / math.sqrt(vx * vy)
    return out


@njit(cache=True, nogil=True)
def rsi(close, window):
    """ta RSIIndicator: Wilder-smoothed gains over losses (100 where there are no losses)."""
    n = close.shape[0]
    up = np.zeros(n)
    down = np.zeros(n)
    for t in range(1, n):
        d = close[t] - close[t - 1]
        if d > 0.0:
            up[t] = d
        elif d < 0.0:
            down[t] = -d
    up_avg = ewm(up, 1.0 / window, window)
    down_avg = ewm(down, 1.0 / window, window)
    out = np.full(n, np.nan)
    for t in range(n):
        if down_avg[t] == 0.0:
            out[t] = 100.0
        elif down_avg[t] == down_avg[t]:
            out[t] = 100.0 - 100.0 / (1.0 + up_avg[t] / down_avg[t])
    return out


@njit(cache=True, nogil=True)
def atr(high, low, close, window):
    """ta AverageTrueRange (Wilder), NaN for its warm-up rows (ta writes 0.0 there)."""
    n = close.shape[0]
    tr = np.empty(n)
    for t in range(n):
        r = high[t] - low[t]
        if t > 0:
            r = max(r, abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        tr[t] = r
    out = np.full(n, np.nan)
    if n < window:
        return out
    s = 0.0
    for t in range(window):
        s += tr[t]
    value = s / window
    out[window - 1] = value
    for t in range(window, n):
        value = (value * (window - 1) + tr[t]) / float(window)
        out[t] = value
    return out


@njit(cache=True, nogil=True)
def obv(close, volume):
    """ta OnBalanceVolumeIndicator: cumulative volume signed by the close's direction."""
    n = close.shape[0]
    out = np.empty(n)
    s = 0.0
    for t in range(n):
        s += -volume[t] if (t > 0 and close[t] < close[t - 1]) else volume[t]
        out[t] = s
    return out


@njit(cache=True, nogil=True)
def corwin_schultz(high, low):
    """Corwin-Schultz half-spread from bars t-1 and t, negatives clipped to 0."""
    n = high.shape[0]
    out = np.full(n, np.nan)
    k = 3.0 - 2.0 * math.sqrt(2.0)
    for t in range(1, n):
        b = math.log(high[t] / low[t]) ** 2 + math.log(high[t - 1] / low[t - 1]) ** 2
        g = math.log(max(high[t], high[t - 1]) / min(low[t], low[t - 1])) ** 2
        alpha = (math.sqrt(2.0 * b) - math.sqrt(b)) / k - math.sqrt(g / k)
        spread = 2.0 * (math.exp(alpha) - 1.0) / (1.0 + math.exp(alpha))
        out[t] = max(spread, 0.0) / 2.0
    return out


@njit(cache=True, nogil=True)
def forward_fill_events(rate, event):
    """The last funding rate known at each row (NaN before the first event)."""
    n = rate.shape[0]
    out = np.full(n, np.nan)
    last = np.nan
    for t in range(n):
        if event[t] > 0.0:
            last = rate[t]
        out[t] = last
    return out


@njit(cache=True, nogil=True)
def zscore(x, window):
    """(x - rolling mean) / rolling std (ddof 1); 0 where the window is constant.

    One pass that runs pandas' rolling mean (compensated sum) and rolling std
    (compensated Welford) updates side by side, so it equals
    ``(s - s.rolling(w).mean()) / s.rolling(w).std()`` of pandas to rounding.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    nobs = 0
    total = sum_add = sum_remove = 0.0
    mean = ssqdm = comp_add = comp_remove = 0.0
    same = 0
    prev = np.nan
    negatives = 0
    for t in range(n):
        v = x[t]
        if t >= window:
            old = x[t - window]
            if old == old:
                nobs -= 1
                total, sum_remove = _kahan_add(total, sum_remove, -old)
                negatives -= old < 0
                if nobs:
                    prev_mean = mean - comp_remove
                    y = old - comp_remove
                    d = y - mean
                    comp_remove = d + mean - y
                    mean -= d / nobs
                    ssqdm -= (old - prev_mean) * (old - mean)
                else:
                    mean = ssqdm = 0.0
        if v == v:
            nobs += 1
            total, sum_add = _kahan_add(total, sum_add, v)
            negatives += v < 0
            same = same + 1 if v == prev else 1
            prev = v
            prev_mean = mean - comp_add
            y = v - comp_add
            d = y - mean
            comp_add = d + mean - y
            mean += d / nobs
            ssqdm += (v - prev_mean) * (v - mean)
        if nobs < window:
            continue
        average = total / nobs
        if same >= nobs:
            average = prev
        elif (negatives == 0 and average < 0) or (negatives == nobs and average > 0):
            average = 0.0
        var = 0.0 if same >= nobs else ssqdm / (nobs - 1)
        std = math.sqrt(var) if var > 0.0 else 0.0
        out[t] = (v - average) / std if std > _tol(average) else 0.0
    return out


@njit(cache=True, inline="always")
def _tol(mean):
    return 1e-9 * (abs(mean) + 1e-12)
