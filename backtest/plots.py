"""Charts of a backtest, drawn from plain pandas objects so any report can reuse them.

Each function returns a matplotlib ``Figure`` built on the Agg canvas directly, never
through pyplot (as in ``backtest.bias_plots``): rendering needs no display, no global
backend is switched under a notebook or server sharing the process, and no figure
registry holds on to finished charts, so a figure is freed as soon as it is dropped.
A year of 1-minute bars is 525,600 steps, a hundred times more than a chart is pixels
wide, so every time series goes through :func:`downsample` before it is drawn.
"""

from __future__ import annotations

import io
import math

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backtest.sharpe import ZERO_VOL, per_period_rate

MAX_POINTS = 5_000
"""Most points a line gets: several per pixel of a 10-inch chart at 100 dpi."""
REGIME_METRICS = ("total_return", "annualized_return", "mean_return", "sharpe", "max_drawdown")
"""Columns of a regime table that get a bar chart, when present (else its numeric ones)."""
_UP, _DOWN, _GREY = "#27ae60", "#c0392b", "#95a5a6"


def downsample(data: pd.Series | pd.DataFrame, cap: int = MAX_POINTS, how: str = "last"):
    """At most ``cap`` rows of ``data``, in order, always keeping its first and last row.

    ``how="last"`` keeps the last row of each of ``cap - 1`` equal buckets of rows (what a
    resampled close shows at the chart's resolution). ``how="envelope"`` (Series only)
    keeps the lowest and the highest row of each bucket, so a drawdown's trough or a
    leverage spike is never cut away. Data of at most ``cap`` rows is returned as is.
    """
    if cap < 4:
        raise ValueError(f"downsample needs cap >= 4, got {cap}")
    n = len(data)
    if n <= cap:
        return data
    if how == "last":
        edges = np.linspace(0, n, cap, dtype=np.int64)
        keep = np.concatenate(([0], edges[1:] - 1))
    elif how == "envelope":
        if not isinstance(data, pd.Series):
            raise TypeError("the envelope of a DataFrame has no single min/max; pass a Series")
        buckets = (cap - 2) // 2
        size = -(-n // buckets)
        values = data.to_numpy(dtype=np.float64)
        low = np.full(buckets * size, np.inf)
        high = np.full(buckets * size, -np.inf)
        low[:n] = np.where(np.isnan(values), np.inf, values)
        high[:n] = np.where(np.isnan(values), -np.inf, values)
        starts = np.arange(buckets) * size
        keep = np.concatenate(([0, n - 1], starts + low.reshape(buckets, size).argmin(axis=1),
                               starts + high.reshape(buckets, size).argmax(axis=1)))
        keep = keep[keep < n]  # buckets past the end are all padding
    else:
        raise ValueError(f"how must be 'last' or 'envelope', got {how!r}")
    return data.iloc[np.unique(keep)]


def rolling_window(n_steps: int, periods_per_year: float) -> int:
    """About a month of steps, but at most a tenth of the run (so the line shows several
    independent windows) and at least 2 (a standard deviation needs two returns)."""
    return max(2, min(n_steps // 10, round(periods_per_year / 12)))


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (the caller decides where and how they are written)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def equity_figure(
    equity: pd.Series,
    benchmark: pd.Series | None = None,
    others: dict[str, pd.Series] | None = None,
    regimes: pd.Series | None = None,
    name: str = "policy",
) -> Figure:
    """The equity curve against the benchmark and other runs (e.g. baselines), with a
    strip below coloured by market regime when ``regimes`` (labels per time) is given."""
    fig = Figure(figsize=(10, 4.5 if regimes is None else 6), layout="constrained")
    if regimes is None:
        ax = fig.add_subplot()
    else:
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=(12, 1))
        _regime_strip(strip, regimes, equity.index)
    lines = {name: equity, "benchmark": benchmark, **(others or {})}
    for label, series in lines.items():
        if series is not None:
            points = downsample(series)
            ax.plot(
                _x(points.index), points.to_numpy(), label=label, lw=1.6 if label == name else 1
            )
    ax.set_ylabel("equity (USDC)")
    ax.set_title("Equity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _date_axis(strip if regimes is not None else ax, equity.index)
    return fig


def drawdown_figure(equity: pd.Series) -> Figure:
    """Underwater curve: the fall from the running peak, with its deepest point marked."""
    underwater = equity / equity.cummax() - 1.0
    points = downsample(underwater, how="envelope")
    x = _x(points.index)
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(x, points.to_numpy(), 0.0, color=_DOWN, alpha=0.4, lw=0)
    ax.plot(x, points.to_numpy(), color=_DOWN, lw=0.8)
    trough = int(np.argmin(points.to_numpy()))
    ax.scatter([x[trough]], [points.iloc[trough]], color="black", zorder=3, s=12)
    ax.set_title(f"Drawdown (deepest {points.iloc[trough]:.2%})")
    ax.set_ylabel("below running peak")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    _date_axis(ax, equity.index)
    return fig


def returns_figure(returns: pd.Series, var: float | None = None, var_label: str = "VaR") -> Figure:
    """Histogram of step returns with the normal of the same mean and deviation (the fat
    tails show where the bars rise above it) and ``-var`` (a positive loss) marked."""
    values = returns.to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(values, bins=min(100, max(10, len(values) // 20)), density=True, color="#2c3e50")
    mean = float(np.mean(values)) if len(values) else math.nan
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    if std > ZERO_VOL:
        grid = np.linspace(values.min(), values.max(), 400)
        pdf = np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        ax.plot(grid, pdf, color="#e67e22", lw=1.5, label="normal fit")
    if var is not None and math.isfinite(var):
        ax.axvline(-var, color=_DOWN, ls="--", label=f"{var_label} {var:.3%}")
    ax.set_title(f"Step returns (n={len(values):,}, mean {mean:.2e}, std {std:.2e})")
    ax.set_xlabel("return per step")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig


def rolling_sharpe_figure(
    returns: pd.Series,
    periods_per_year: float,
    risk_free_rate: float = 0.0,
    window: int | None = None,
) -> Figure:
    """Annualised Sharpe over a trailing window (``rolling_window`` by default): whether
    the edge is steady or comes from one lucky stretch."""
    window = window or rolling_window(len(returns), periods_per_year)
    excess = returns - per_period_rate(risk_free_rate, periods_per_year)
    std = excess.rolling(window).std()
    sharpe = excess.rolling(window).mean() / std.where(std > ZERO_VOL) * math.sqrt(periods_per_year)
    points = downsample(sharpe)
    fig = Figure(figsize=(10, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(_x(points.index), points.to_numpy(), color="#2980b9", lw=1)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_title(f"Rolling Sharpe (annualised, window {window:,} steps)")
    ax.grid(alpha=0.3)
    _date_axis(ax, returns.index)
    return fig


def positions_figure(positions: pd.DataFrame, leverage: pd.Series) -> Figure:
    """Signed notional per asset (long above zero) and gross leverage on a second axis."""
    points = downsample(positions)
    lev = downsample(leverage, how="envelope")
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for asset in points.columns:
        ax.plot(_x(points.index), points[asset].to_numpy(), lw=0.9, label=str(asset))
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_ylabel("position notional (USDC)")
    right = ax.twinx()
    right.plot(_x(lev.index), lev.to_numpy(), color="black", ls="--", lw=0.8, label="leverage")
    right.set_ylabel("gross leverage (x)")
    handles = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="upper left")
    ax.set_title("Positions and leverage")
    _date_axis(ax, positions.index)
    return fig


def regime_figure(table: pd.DataFrame) -> Figure:
    """One bar chart per regime metric (``REGIME_METRICS`` present, else the numeric
    columns), regimes on the x axis (the index, or a ``regime`` column)."""
    if "regime" in table.columns:
        table = table.set_index("regime")
    columns = [c for c in REGIME_METRICS if c in table.columns]
    columns = columns or list(table.select_dtypes("number").columns[:4])
    if not columns or table.empty:
        raise ValueError(f"regime table has no rows or numeric metric: {list(table.columns)}")
    fig = Figure(figsize=(3.3 * len(columns) + 1, 3.5), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    labels = [str(label) for label in table.index]
    for ax, column in zip(axes, columns, strict=True):
        values = table[column].to_numpy(dtype=np.float64)
        ax.bar(labels, values, color=np.where(values >= 0, _UP, _DOWN))
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(column)
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def walk_forward_figure(windows: pd.DataFrame, metric: str = "total_return") -> Figure:
    """Train and test spans per window on a time axis, and the test ``metric`` (falling
    back to the first numeric column) per window, each bar labelled with its Sharpe."""
    spans = {c: pd.to_datetime(windows[c], utc=True).dt.tz_localize(None).to_numpy()
             for c in ("train_start", "train_end", "test_start", "test_end")}
    if metric not in windows.columns:
        numeric = windows.drop(columns=["window"], errors="ignore").select_dtypes("number")
        if numeric.columns.empty:
            raise ValueError(f"walk-forward frame has no metric column: {list(windows.columns)}")
        metric = str(numeric.columns[0])
    fig = Figure(figsize=(10, 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(1, 1))
    y = np.arange(len(windows))
    for kind, color in (("train", _GREY), ("test", "#2980b9")):
        start, end = mdates.date2num(spans[f"{kind}_start"]), mdates.date2num(spans[f"{kind}_end"])
        top.barh(y, end - start, left=start, color=color, height=0.6, label=kind)
    top.xaxis_date()
    top.set_yticks(y, [str(w) for w in windows.get("window", pd.Series(y))])
    top.invert_yaxis()
    top.set_title("Walk-forward windows")
    top.legend(fontsize=8)
    _date_axis(top)
    values = windows[metric].to_numpy(dtype=np.float64)
    bars = bottom.bar(y, values, color=np.where(values >= 0, _UP, _DOWN))
    if "sharpe" in windows.columns:
        bottom.bar_label(bars, [f"SR {s:.2f}" for s in windows["sharpe"]], fontsize=7)
    bottom.set_xticks(y, top.get_yticklabels())
    bottom.axhline(0.0, color="black", lw=0.6)
    bottom.margins(y=0.2)
    bottom.set_xlabel("window")
    bottom.set_title(f"Test {metric} per window")
    return fig


def _regime_strip(ax: Axes, regimes: pd.Series, index: pd.Index) -> None:
    """Fill the axis with one colour per regime over time, read as of each equity step."""
    categorical = pd.Categorical(regimes.sort_index().reindex(index, method="ffill"))
    categorical = categorical.remove_unused_categories()  # a legend entry per regime seen
    codes = downsample(pd.Series(categorical.codes, index=index))
    x = _x(codes.index)
    colors = matplotlib.colormaps["tab20"].colors
    for code, name in enumerate(categorical.categories):
        where = codes.to_numpy() == code
        color = colors[code % len(colors)]
        ax.fill_between(x, 0, 1, where=where, step="post", color=color, label=str(name), lw=0)
    ax.set_yticks([])
    ax.set_ylabel("regime", rotation=0, ha="right", va="center", fontsize=8)
    # combined labels ('high_vol/downtrend') are long: at most 4 per legend row, or the
    # legend is wider than the figure and the layout collapses
    ax.legend(fontsize=7, ncols=min(4, len(categorical.categories)), loc="upper left",
              bbox_to_anchor=(0, -1.6), frameon=False)


def _x(index: pd.Index) -> np.ndarray:
    """x values matplotlib draws fast: naive UTC datetime64 for a tz-aware index (as
    objects, each timestamp would be converted one by one)."""
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        index = index.tz_convert(None)
    return index.to_numpy()


def _date_axis(ax: Axes, index: pd.Index | None = None) -> None:
    """Concise date ticks (and a UTC label) when the x values are times (``index`` is a
    DatetimeIndex, or None for an axis known to hold dates)."""
    if index is None or isinstance(index, pd.DatetimeIndex):
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("time (UTC)")
