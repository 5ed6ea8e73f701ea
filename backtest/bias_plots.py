"""Writing a BiasReport to disk: CSVs, JSON and PNG charts.

Every file is written to a temporary name in the output folder and moved into place
with ``os.replace`` (as ``Path.replace``), so a crashed or interrupted run never leaves
a half-written CSV that a later step (or a person) mistakes for a result. Charts use
matplotlib's Agg canvas through ``Figure`` directly, never pyplot: no display is needed
and no global backend or figure registry is touched (serving and tests run in the same process).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backtest.bias import DIRECTIONS, BiasReport
from backtest.files import write_atomic

SUMMARY_CSV = "bias_summary.csv"
"""One row per asset (BiasReport.summary_frame)."""
ACTIONS_CSV = "bias_actions.csv"
"""One row per (sample, asset): the action taken (BiasReport.samples)."""
EXTREMES_CSV = "bias_extremes.csv"
"""The states behind the most extreme exposures, their features as columns."""
REPORT_JSON = "bias_report.json"
"""BiasReport.to_dict."""
CHARTS = ("bias_directions.png", "bias_sizes.png", "bias_exposure.png")
"""Stacked short/flat/long bars, size histograms and exposure histograms per asset."""
_COLORS = {"short": "#c0392b", "flat": "#95a5a6", "long": "#27ae60"}


def write_bias_outputs(report: BiasReport, output_dir: str | Path) -> list[Path]:
    """Write the report's CSVs, JSON and charts into ``output_dir``; the paths written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    extremes = [
        {
            **{k: v for k, v in state.items() if k not in ("portfolio", "market_last")},
            **{f"portfolio_{k}": v for k, v in state["portfolio"].items()},
            **{f"market_{k}": v for k, v in state["market_last"].items()},
        }
        for state in report.to_dict()["extremes"]
    ]
    writers: list[tuple[str, Callable[[IO[bytes]], None]]] = [
        (SUMMARY_CSV, lambda f: report.summary_frame().to_csv(f, index=False)),
        (ACTIONS_CSV, lambda f: report.samples.to_csv(f, index=False)),
        (EXTREMES_CSV, lambda f: pd.DataFrame(extremes).to_csv(f, index=False)),
        (REPORT_JSON, lambda f: f.write(json.dumps(report.to_dict(), indent=2).encode())),
        (CHARTS[0], lambda f: _save(_direction_chart(report), f)),
        (CHARTS[1], lambda f: _save(_histograms(report, "size", (0.0, 1.0)), f)),
        (CHARTS[2], lambda f: _save(_histograms(report, "exposure", (-1.0, 1.0)), f)),
    ]
    return [write_atomic(out / name, write) for name, write in writers]


def _save(fig: Figure, f: IO[bytes]) -> None:
    FigureCanvasAgg(fig).print_png(f)


def _direction_chart(report: BiasReport) -> Figure:
    fig = Figure(figsize=(max(4.0, 1.2 * len(report.assets) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(report.assets))
    bottom = np.zeros(len(report.assets))
    for direction in DIRECTIONS:
        share = np.array([getattr(a, f"{direction}_fraction") for a in report.per_asset])
        ax.bar(x, share, bottom=bottom, color=_COLORS[direction], label=direction)
        bottom += share
    for i, asset in enumerate(report.per_asset):
        ax.text(i, 1.02, asset.flag, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, report.assets)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of held-out states")
    ax.set_title(f"Trade decisions on {report.num_samples} held-out states")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _histograms(report: BiasReport, column: str, span: tuple[float, float]) -> Figure:
    n = len(report.assets)
    fig = Figure(figsize=(3.2 * n, 3), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    bins = np.linspace(*span, 41)
    for ax, asset in zip(axes, report.assets, strict=True):
        values = report.samples.loc[report.samples["asset"] == asset, column].to_numpy()
        ax.hist(values, bins=bins, color="#2c3e50")
        ax.axvline(values.mean(), color="#e67e22", linestyle="--", label="mean")
        ax.set_title(asset)
        ax.set_xlabel(column)
    axes[0].set_ylabel("states")
    axes[0].legend(fontsize=8)
    return fig
