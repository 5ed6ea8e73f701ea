"""A backtest's report folder: one HTML page, its charts, the metrics and the raw series.

Layout of ``output_dir`` (names fixed, so scripts and people find things)::

    report.html      self-contained page: run facts, metrics, charts, tables, provenance
    plots/NAME.png   one chart per entry of PLOTS that had its inputs
    metrics.json     the metrics (backtest.metrics.Metrics), baselines' metrics under
                     "baselines"; NaN/inf as null
    ledger.parquet   result.ledger, every fill, fee, funding payment and liquidation
    steps.parquet    steps, position_ASSET, price_ASSET and benchmark columns per step
    risk_report.json the risk engine's report on the book at the run's end (when given)

Each file goes to a temporary name in its folder and is moved into place with
``os.replace``, and the HTML is written last: a crash leaves the previous report or no
report, never a half-written file, and a report.html means its files are all there.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from backtest import plots
from backtest.files import write_atomic
from backtest.guard import SampleCheck
from backtest.metrics import BASELINES_KEY, METRICS_FILE, SAMPLE_KEY, STEPS_FILE, metrics_table
from backtest.result import BacktestResult

PLOTS = {
    "equity": "Equity of the policy against the buy-and-hold benchmark and the baselines.",
    "drawdown": "Drawdown: the fall from the running equity peak (under water).",
    "returns": "Distribution of step returns against a normal of the same mean and deviation.",
    "rolling_sharpe": "Annualised Sharpe ratio over a trailing window.",
    "positions": "Signed position notional per asset, and gross leverage (right axis).",
    "regimes": "Performance per market regime.",
    "walk_forward": "Walk-forward windows (train and test spans) and each test window's result.",
}
"""Chart names (plots/NAME.png) and their captions, in page order."""
_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border-bottom:1px solid #ddd;padding:0.25em 0.8em;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1.5em 0}
img{max-width:100%}figcaption,.note{color:#666;font-size:0.9em}.warn{color:#c0392b}"""


def write_report(
    output_dir: Path,
    result: BacktestResult,
    metrics: dict[str, float],
    *,
    baselines: dict[str, BacktestResult] | None = None,
    baseline_metrics: dict[str, dict] | None = None,
    regime_labels: pd.Series | None = None,
    regime_table: pd.DataFrame | None = None,
    walk_forward: pd.DataFrame | None = None,
    risk_report: dict | None = None,
    sample: SampleCheck | None = None,
) -> Path:
    """Write the report of ``result`` into ``output_dir`` (created if missing) and return
    the path of its report.html. Baselines are drawn on the equity chart and their metrics
    set beside the policy's; regime labels (per time) colour the equity chart; a chart
    whose input is None is skipped, and the page says so. ``sample`` (backtest.guard)
    says at the top whether the span is out of sample; an in-sample one marks every
    metric, on the page and in metrics.json."""
    baselines, baseline_metrics = baselines or {}, baseline_metrics or {}
    clash = {result.name} & (set(baselines) | set(baseline_metrics))
    if clash or BASELINES_KEY in metrics:
        raise ValueError(f"baseline names must differ from the policy's and metrics may not "
                         f"hold {BASELINES_KEY!r}: {sorted(clash) or BASELINES_KEY}")
    out = Path(output_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    figures = _figures(result, metrics, baselines, regime_labels, regime_table, walk_forward)
    if risk_report is not None:
        text = json.dumps(_json_safe(risk_report), indent=2, allow_nan=False)
        write_atomic(out / "risk_report.json", lambda f: f.write(text.encode()))
    drawn = {}
    for name, make in figures.items():
        if make is not None:
            png = plots.png_bytes(make())
            write_atomic(out / "plots" / f"{name}.png", lambda f, png=png: f.write(png))
            drawn[name] = f"plots/{name}.png"
    payload = {**metrics, BASELINES_KEY: baseline_metrics}
    if sample is not None:
        payload[SAMPLE_KEY] = {"in_sample": sample.in_sample, "note": sample.note,
                               "span": list(sample.span), "overlaps": sample.overlaps}
    text = json.dumps(_json_safe(payload), indent=2, allow_nan=False)
    write_atomic(out / METRICS_FILE, lambda f: f.write(text.encode()))
    write_atomic(out / "ledger.parquet", lambda f: result.ledger.to_parquet(f))
    write_atomic(out / STEPS_FILE, lambda f: steps_frame(result).to_parquet(f))
    page = _page(result, metrics, baseline_metrics, drawn, regime_table, walk_forward,
                 risk_report, sample)
    return write_atomic(out / "report.html", lambda f: f.write(page.encode()))


def steps_frame(result: BacktestResult) -> pd.DataFrame:
    """Everything per step in one frame (enough to recompute every metric and chart):
    the step columns, ``position_ASSET``, ``price_ASSET`` and ``benchmark`` if set."""
    frame = pd.concat([result.steps, result.positions.add_prefix("position_"),
                       result.prices.add_prefix("price_")], axis=1)
    if result.benchmark is not None:
        frame["benchmark"] = result.benchmark.reindex(frame.index)
    return frame


def _figures(result, metrics, baselines, regime_labels, regime_table, walk_forward):
    """Chart name -> a function drawing it, or None when its input was not given."""
    var_key = _var_key(metrics)
    var = metrics[var_key] if var_key else None
    others = {name: baseline.equity for name, baseline in baselines.items()}
    makers: dict[str, Callable[[], Figure] | None] = {
        "equity": lambda: plots.equity_figure(
            result.equity, result.benchmark, others, regime_labels, result.name
        ),
        "drawdown": lambda: plots.drawdown_figure(result.equity),
        "returns": lambda: plots.returns_figure(result.returns, var, var_key or "VaR"),
        "rolling_sharpe": lambda: plots.rolling_sharpe_figure(
            result.returns, result.periods_per_year, result.risk_free_rate
        ),
        "positions": lambda: plots.positions_figure(result.positions, result.steps["leverage"]),
        "regimes": lambda: plots.regime_figure(regime_table),
        "walk_forward": lambda: plots.walk_forward_figure(walk_forward),
    }
    missing = {"regimes": regime_table is None, "walk_forward": walk_forward is None}
    return {name: None if missing.get(name) else make for name, make in makers.items()}


def _var_key(metrics: dict) -> str | None:
    """The metric holding a one-step VaR, if any: a historical one first (it makes no
    distribution assumption, unlike the normal fit it is drawn beside)."""
    keys = [k for k, v in metrics.items() if k.startswith("var") and _finite(v)]
    historical = [k for k in keys if "historical" in k]
    return (historical or keys or [None])[0]


def _page(result, metrics, baseline_metrics, drawn, regime_table, walk_forward,
          risk_report=None, sample=None) -> str:
    """The HTML page; every piece of text from the result is escaped."""
    e = html.escape
    index = result.steps.index
    facts = {
        "policy": result.name,
        "assets": ", ".join(result.assets),
        "span": f"{index[0]} to {index[-1]} ({len(index) - 1:,} decision steps)",
        "initial capital": f"{result.initial_capital:,.2f} USDC",
        "steps per year": f"{result.periods_per_year:,.1f}",
        "risk-free rate": f"{result.risk_free_rate:.2%}",
        "ended early": result.ended_early or "no",
        "risk shield": _shield_fact(result.meta.get("shield")),
    }
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
             f"<title>Backtest: {e(result.name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Backtest: {e(result.name)}</h1>",
             f"<p>{e(str(index[0]))} to {e(str(index[-1]))}</p>"]
    if sample is not None:
        style = "warn" if sample.in_sample else "note"
        parts.append(f"<p class='{style}' id='sample'>Sample: {e(sample.note)}</p>")
    if result.ended_early:
        parts.append(f"<p class='warn'>The run ended early: {e(result.ended_early)}.</p>")
    marked = sample is not None and sample.in_sample
    heading = "Metrics (IN SAMPLE: every figure below)" if marked else "Metrics"
    parts += ["<h2>Run</h2>", _dict_table(facts), f"<h2>{heading}</h2>"]
    table = metrics_table({result.name: metrics, **baseline_metrics})
    parts.append(_frame_html(table))
    parts.append("<h2>Charts</h2>")
    for name, caption in PLOTS.items():
        if name in drawn:
            parts.append(f"<figure id='{name}'><img src='{drawn[name]}' alt='{e(caption)}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
        else:
            parts.append(f"<p class='note' id='{name}'>{e(_skip_note(name))}</p>")
    for title, frame, name in (("Regimes", regime_table, "regime"),
                               ("Walk-forward", walk_forward, "walk-forward")):
        parts.append(f"<h2>{title}</h2>")
        if frame is None:
            parts.append(f"<p class='note'>No {name} table was given.</p>")
        else:
            parts.append(_frame_html(frame))
    parts += _risk_sections(risk_report)
    parts += ["<h2>Provenance</h2>", _dict_table(result.meta) if result.meta else
              "<p class='note'>The result carries no provenance (meta is empty).</p>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _shield_fact(summary: dict | None) -> str:
    """One line on the risk shield: off, or on with its caps and what it cut (the
    settings in full are in the provenance table)."""
    if not summary:
        return "off"
    settings = summary.get("settings", {})
    caps = ", ".join(f"{k} {settings[k]:g}" for k in ("max_var", "max_es", "max_margin_ratio")
                     if settings.get(k) is not None)
    rules = ", ".join(f"{k} {v:,}" for k, v in summary["by_rule"].items()) or "none"
    return (f"on ({caps or 'no book caps'}): cut {summary['asset_targets_cut']:,} asset "
            f"targets in {summary['decisions']:,} decisions (by rule: {rules}), leaving "
            f"{summary['mean_scale_when_cut']:.0%} of each on average")


def _risk_sections(report: dict | None) -> list[str]:
    """The risk engine's view of the final book: VaR/ES, stress scenarios, limit alerts."""
    parts = ["<h2>Risk at the end of the run</h2>"]
    if report is None:
        return [*parts, "<p class='note'>No risk report was given.</p>"]
    facts = {k: report.get(k) for k in ("timestamp", "equity", "gross_exposure", "leverage",
                                         "margin_ratio", "regime")}
    parts.append(_dict_table(facts))
    sections = (
        ("var", "Value at Risk and Expected Shortfall"),
        ("stress", "Stress tests on the final positions"),
        ("alerts", "Alerts"),
    )
    for key, title in sections:
        rows = report.get(key) or []
        parts.append(f"<h3>{title}</h3>")
        parts.append(_frame_html(pd.DataFrame(rows).set_index(pd.RangeIndex(len(rows))))
                     if rows else "<p class='note'>None.</p>")
    for note in report.get("notes") or []:
        parts.append(f"<p class='note'>{html.escape(str(note))}</p>")
    return parts


def _skip_note(name: str) -> str:
    given = {"regimes": "regime table", "walk_forward": "walk-forward frame"}[name]
    return f"Chart '{name}' skipped: no {given} was given."


def _dict_table(values: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>"
                   for k, v in values.items())
    return f"<table>{rows}</table>"


def _frame_html(frame: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table with short numbers (pandas needs no jinja
    for ``to_html``; the Styler would)."""
    return frame.to_html(border=0, na_rep="–", float_format=_number, escape=True)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float | np.floating):
        return _number(float(value))
    return json.dumps(_json_safe(value), default=str)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "–" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    return f"{value:,.0f}" if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _finite(value) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def _json_safe(value):
    """Plain JSON values: NaN and infinities as None (JSON has no literal for them),
    numpy scalars and arrays as Python numbers and lists, timestamps as ISO strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
