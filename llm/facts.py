"""Facts: every number, direction and name the chatbot may state, computed in code.

A small language model learns the wording of market commentary but does not copy
numbers from its prompt (measured here: 0 of 20), so the chatbot never trusts it
with a value. Values come from the project's own objects: market bars and their
indicators (market.features), causal regimes (risk.regimes), the policy's signal
(the Serve API's POST /v1/signals), a risk report (risk.report) and a backtest's
metrics (backtest.report). Each becomes a typed :class:`Fact` with a key such as
``BTC.close`` or ``signal.ETH.decision``, a display unit and the time it describes,
so a context can be cut at any moment (``Facts.as_of``) and nothing from after a
backtest's end leaks into its explanation.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from market.features import FeatureConfig, compute_features
from market.loader import aligned_frame, asset_fields
from risk.regimes import RegimeConfig, market_regimes, trend_regime, volatility_regime

Source = Literal["market", "indicator", "regime", "signal", "risk", "backtest", "news"]
Unit = Literal[
    "price", "pct", "signed_pct", "number", "usd", "count", "x", "atr", "bars", "text"
]
"""How a value is shown: prices in USDC, percents (values already in percent units),
plain numbers, USDC amounts, counts, multiples of equity (x), ATR multiples, bars, text."""

DIRECTION_VALUES: dict[str, int] = {
    "up": 1, "down": -1, "unchanged": 0, "uptrend": 1, "downtrend": -1, "sideways": 0,
    "long": 1, "short": -1, "flat": 0, "bullish": 1, "bearish": -1, "gain": 1, "loss": -1,
}
"""Polarity of the text values that carry a direction (grounding checks words against it)."""


def to_utc(stamp: Any) -> pd.Timestamp:
    """A UTC pandas Timestamp from a datetime, string, Timestamp or epoch milliseconds.

    Naive times are taken as UTC: every time in this project is UTC, and failing on a
    user's naive CSV index would help nobody.
    """
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return pd.Timestamp(int(stamp), unit="ms", tz="UTC")
    out = pd.Timestamp(stamp)
    if out is pd.NaT:
        raise ValueError(f"not a time: {stamp!r}")
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _fixed(value: float, significant: int) -> str:
    """Fixed-point text with about `significant` significant digits (never exponent form)."""
    if value == 0:
        return "0.00"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{min(decimals, 8)}f}"


def format_value(value: float | str, unit: Unit) -> str:
    """The text a fact shows in the prompt and in answers (the grounding reads it back)."""
    if unit == "text" or isinstance(value, str):
        return str(value)
    v = float(value)
    if unit in ("pct", "signed_pct"):
        body = f"{abs(v):,.2f}" if abs(v) >= 1 else _fixed(abs(v), 3)
        sign = ("-" if v < 0 else "+" if v > 0 else "") if unit == "signed_pct" else "-" * (v < 0)
        return f"{sign}{body}%"
    if unit == "count":
        return f"{round(v):,}"
    if unit == "bars":
        return f"{round(v):,} bars"
    if unit == "usd":
        return f"{v:,.0f} USDC"
    body = f"{v:,.2f}" if abs(v) >= 1 else _fixed(v, 4)
    return {"price": f"{body} USDC", "x": f"{body}x", "atr": f"{body} ATR"}.get(unit, body)


@dataclass(frozen=True)
class Fact:
    """One value the chatbot may state, with the moment it describes and where it came from."""

    key: str
    """Dotted name, e.g. ``BTC.close``, ``signal.BTC.decision``, ``backtest.sharpe``."""
    value: float | str
    """Numbers in display units (percent facts hold percents), or a label."""
    unit: Unit
    timestamp: pd.Timestamp
    """The UTC time the value describes (a bar's open time, a report's time)."""
    source: Source

    def __post_init__(self) -> None:
        if not self.key or any(c in self.key for c in "{} \n="):
            raise ValueError(f"bad fact key {self.key!r}: no spaces, braces or '='")
        if self.unit not in get_args(Unit) or self.source not in get_args(Source):
            raise ValueError(f"{self.key}: unknown unit {self.unit!r} or source {self.source!r}")
        if not isinstance(self.value, str):
            if not math.isfinite(float(self.value)):
                raise ValueError(f"{self.key}: value {self.value!r} is not finite")
            object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "timestamp", to_utc(self.timestamp))

    @property
    def text(self) -> str:
        return format_value(self.value, self.unit)

    @property
    def direction(self) -> int | None:
        """+1 / -1 / 0 for facts that carry a direction (signed changes, drawdowns, trend
        labels, decisions), else None."""
        if isinstance(self.value, str):
            return DIRECTION_VALUES.get(self.value)
        if self.key.endswith("max_drawdown"):
            return -1 if self.value > 0 else 0  # a drawdown is a fall from the peak
        if self.unit == "signed_pct":
            return (self.value > 0) - (self.value < 0)
        return None


@dataclass(frozen=True)
class Facts:
    """An ordered, immutable set of facts with unique keys (later ones win on merge)."""

    items: tuple[Fact, ...] = ()
    _index: dict[str, Fact] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {f.key: f for f in self.items}
        object.__setattr__(self, "items", tuple(index.values()))
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __getitem__(self, key: str) -> Fact:
        return self._index[key]

    def get(self, key: str) -> Fact | None:
        return self._index.get(key)

    def keys(self) -> tuple[str, ...]:
        return tuple(self._index)

    def merge(self, *others: Facts) -> Facts:
        return Facts(self.items + tuple(f for other in others for f in other.items))

    def select(self, keys: Iterable[str]) -> Facts:
        """The facts named, in the order named (missing keys are skipped)."""
        return Facts(tuple(self._index[k] for k in keys if k in self._index))

    def where(self, prefix: str) -> Facts:
        return Facts(tuple(f for f in self.items if f.key.startswith(prefix)))

    def as_of(self, cutoff: Any) -> Facts:
        """Only the facts describing moments at or before `cutoff` (no look-ahead)."""
        limit = to_utc(cutoff)
        return Facts(tuple(f for f in self.items if f.timestamp <= limit))

    @property
    def assets(self) -> tuple[str, ...]:
        """Asset names with market facts (keys ``ASSET.close``), in order."""
        return tuple(f.key.split(".")[0] for f in self.items if f.key.endswith(".close"))

    def render(self) -> str:
        """The compact block the prompt carries: a header per time, then ``key = value``
        lines; the keys are what the model writes in braces."""
        lines, header = [], None
        for fact in self.items:
            stamp = f"as of {fact.timestamp:%Y-%m-%d %H:%M} UTC:"
            if stamp != header:
                lines.append(stamp)
                header = stamp
            lines.append(f"{fact.key} = {fact.text}")
        return "\n".join(lines)


def _load_json(data: Any) -> Any:
    """Dicts and lists pass through; a JSON string or a path to a JSON file is parsed."""
    is_text = isinstance(data, str) and data.lstrip().startswith(("{", "["))
    if isinstance(data, Path) or (isinstance(data, str) and not is_text):
        return json.loads(Path(data).read_text())
    if isinstance(data, str | bytes):
        return json.loads(data)
    if hasattr(data, "model_dump"):
        return data.model_dump()
    if hasattr(data, "to_dict"):
        return data.to_dict()
    return data


def signal_facts(signals: Any, timestamp: Any = None) -> Facts:
    """Facts of a policy signal: the /v1/signals response (dict, JSON, file, pydantic
    model) or a bare list of per-asset signals.

    The time is the response's ``data_timestamp`` (its last bar), else `timestamp`,
    else now: a signal describes the moment it was computed for.
    """
    payload = _load_json(signals)
    if isinstance(payload, list):
        payload = {"signals": payload}
    if not isinstance(payload, Mapping) or not isinstance(payload.get("signals"), list):
        raise ValueError("signals must be a /v1/signals response or a list of asset signals")
    stamp = to_utc(payload.get("data_timestamp") or timestamp or datetime.now(UTC))
    out: list[Fact] = []

    def add(key: str, value: Any, unit: Unit) -> None:
        if value is not None and (isinstance(value, str) or math.isfinite(float(value))):
            out.append(Fact(key, value, unit, stamp, "signal"))

    if payload.get("model_id"):
        add("signal.model_id", str(payload["model_id"]), "text")
    if payload.get("value") is not None:
        add("signal.value", payload["value"], "number")
    for item in payload["signals"]:
        p = f"signal.{item['asset']}"
        decision = str(item["decision"])
        add(f"{p}.decision", decision, "text")
        add(f"{p}.size", 100.0 * float(item.get("size", 0.0)), "pct")
        add(f"{p}.target_exposure", item.get("target_exposure"), "x")
        probs = (item.get("probabilities") or {}).get("trade") or {}
        for side in ("long", "flat", "short"):
            if side in probs:
                add(f"{p}.p_{side}", 100.0 * float(probs[side]), "pct")
        if decision in probs:
            add(f"{p}.confidence", 100.0 * float(probs[decision]), "pct")
        add(f"{p}.stop_loss", item.get("stop_loss_atr"), "atr")
        add(f"{p}.take_profit", item.get("take_profit_atr"), "atr")
        if item.get("execution_style"):
            add(f"{p}.execution_style", str(item["execution_style"]), "text")
        add(f"{p}.execution_horizon", item.get("execution_horizon_bars"), "bars")
    return Facts(tuple(out))


def _var_row(rows: list[dict], confidence: float) -> dict | None:
    """The one-step VaR row at `confidence`, historical first (it assumes no distribution)."""
    matches = [r for r in rows if abs(r.get("confidence", 0) - confidence) < 1e-9
               and r.get("horizon", 1) == 1]
    matches.sort(key=lambda r: r.get("method") != "historical")
    return matches[0] if matches else None


def risk_facts(report: Any) -> Facts:
    """Facts of a risk report (risk.report.RiskReport, its dict, JSON text or file),
    stamped with the report's own time."""
    data = _load_json(report)
    stamp = to_utc(data["timestamp"])
    out: list[Fact] = []

    def add(key: str, value: Any, unit: Unit) -> None:
        if value is not None and (isinstance(value, str) or math.isfinite(float(value))):
            out.append(Fact(f"risk.{key}", value, unit, stamp, "risk"))

    add("equity", data.get("equity"), "usd")
    add("leverage", data.get("leverage"), "x")
    add("gross_exposure", data.get("gross_exposure"), "usd")
    add("net_exposure", data.get("net_exposure"), "usd")
    ratio = data.get("margin_ratio")
    add("margin_ratio", None if ratio is None else 100.0 * ratio, "pct")
    for conf in (0.95, 0.99):
        row = _var_row(list(data.get("var") or []), conf)
        for name in ("var", "es"):
            if row is not None and row.get(name) is not None:
                add(f"{name}_{round(conf * 100)}", 100.0 * row[name], "pct")
    if data.get("regime"):
        vol, _, trend = str(data["regime"]).partition("/")
        add("regime", f"{vol.replace('_vol', ' volatility')}, {trend}".strip(", "), "text")
    alerts = list(data.get("alerts") or [])
    add("alerts", len(alerts), "count")
    add("alert", str(alerts[0].get("message") or alerts[0].get("kind")) if alerts else "none",
        "text")
    stress = [s for s in data.get("stress") or [] if s.get("pnl") is not None]
    if stress:
        worst = min(stress, key=lambda s: s["pnl"])
        add("worst_stress", str(worst["scenario"]).replace("_", " "), "text")
        add("worst_stress_pnl", worst["pnl"], "usd")
    return Facts(tuple(out))


_BACKTEST_METRICS: tuple[tuple[str, str, Unit, float], ...] = (
    ("total_return", "total_return", "signed_pct", 100.0),
    ("annualized_return", "annualized_return", "signed_pct", 100.0),
    ("volatility", "annualized_volatility", "pct", 100.0),
    ("sharpe", "sharpe", "number", 1.0),
    ("sortino", "sortino", "number", 1.0),
    ("max_drawdown", "max_drawdown", "pct", 100.0),
    ("win_rate", "win_rate", "pct", 100.0),
    ("n_trades", "n_trades", "count", 1.0),
    ("fees", "fees", "usd", 1.0),
    ("benchmark_return", "benchmark_total_return", "signed_pct", 100.0),
    ("excess_return", "excess_return", "signed_pct", 100.0),
)
"""(fact name, metrics.json key, unit, scale) of the backtest facts; every key is one of
backtest.metrics.METRIC_KEYS (checked on first use)."""


@functools.cache
def _report_schema():
    """backtest.metrics, the schema of what a backtest report writes, after checking that
    every key read here is in it: a renamed metric fails loudly, never reads as absent.
    Imported on first use: backtest.metrics pulls in scipy and the simulator."""
    from backtest import metrics as schema

    unknown = [key for _, key, _, _ in _BACKTEST_METRICS if key not in schema.METRIC_KEYS]
    if unknown:
        raise RuntimeError(f"llm.facts reads metrics {unknown} that backtest.metrics.Metrics "
                           "does not define; rename them in llm.facts._BACKTEST_METRICS")
    return schema


def read_backtest(path_or_metrics: Any) -> tuple[dict, pd.Timestamp | None, pd.Timestamp | None]:
    """Metrics and the (start, end) span of a backtest: a report folder (metrics.json and
    steps.parquet, see backtest.report), a metrics.json file, or a metrics dict."""
    if isinstance(path_or_metrics, Mapping):
        return dict(path_or_metrics), None, None
    schema = _report_schema()
    path = Path(path_or_metrics)
    folder = path if path.is_dir() else path.parent
    metrics_file = path / schema.METRICS_FILE if path.is_dir() else path
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{metrics_file} not found: pass a backtest report folder "
                                f"(quantum backtest --output-dir) or its {schema.METRICS_FILE}")
    metrics = json.loads(metrics_file.read_text())
    steps = folder / schema.STEPS_FILE
    if not steps.is_file():
        return metrics, None, None
    index = pd.read_parquet(steps, columns=[]).index
    return metrics, to_utc(index[0]), to_utc(index[-1])


def backtest_facts(
    metrics: Mapping[str, Any], end: Any, start: Any = None, name: str | None = None
) -> Facts:
    """Facts of a backtest's metrics (and its baselines'), stamped at the backtest's end:
    that is the moment its results describe, and the cut-off for explaining it."""
    stamp = to_utc(end)
    baselines_key = _report_schema().BASELINES_KEY
    out: list[Fact] = []

    def add(key: str, value: Any, unit: Unit) -> None:
        if value is not None and (isinstance(value, str) or math.isfinite(float(value))):
            out.append(Fact(f"backtest.{key}", value, unit, stamp, "backtest"))

    if name:
        add("policy", name, "text")
    if start is not None:
        add("start", f"{to_utc(start):%Y-%m-%d %H:%M}", "text")
    add("end", f"{stamp:%Y-%m-%d %H:%M}", "text")
    for fact_name, key, unit, scale in _BACKTEST_METRICS:
        value = metrics.get(key)
        add(fact_name, None if value is None else scale * float(value), unit)
    total = metrics.get("total_return")
    if total is not None:
        add("outcome", "gain" if total > 0 else "loss" if total < 0 else "flat", "text")
    for base, values in (metrics.get(baselines_key) or {}).items():
        for fact_name, key, unit, scale in _BACKTEST_METRICS[:6]:
            value = values.get(key)
            add(f"{base}.{fact_name}", None if value is None else scale * float(value), unit)
    return Facts(tuple(out))


class FactsConfig(BaseModel):
    """How market facts are computed from bars (windows are in bars of the data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: FeatureConfig = Field(
        default_factory=FeatureConfig, description="Indicator windows (market.features)."
    )
    regimes: RegimeConfig = Field(
        default_factory=RegimeConfig, description="Causal regime windows (risk.regimes)."
    )
    rsi_overbought: float = Field(70.0, gt=50, le=100, description="RSI above: overbought.")
    rsi_oversold: float = Field(30.0, ge=0, lt=50, description="RSI below: oversold.")


_OHLCV = ("open", "high", "low", "close", "volume")


def read_market_file(path: str | Path) -> pd.DataFrame:
    """A CSV or parquet file of bars (one asset's OHLCV, or an aligned frame as parquet)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: market data must be a .csv or .parquet file")


def to_aligned(frame: pd.DataFrame, asset: str = "BTC") -> pd.DataFrame:
    """The aligned (asset, field) frame of market.loader, from itself or from one asset's
    OHLCV frame (a DatetimeIndex or a ``timestamp`` column of datetimes or epoch ms;
    optional ``mark`` and ``funding_rate`` columns), built by market.loader's builder.
    A file has no funding events, only rates: a non-zero rate marks its bar's event."""
    if isinstance(frame.columns, pd.MultiIndex):
        return frame
    df = frame.rename(columns=lambda c: str(c).lower())
    if "timestamp" in df.columns:
        stamps = df.pop("timestamp")
        numeric = pd.api.types.is_numeric_dtype(stamps)
        index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ms" if numeric else None, utc=True))
    elif isinstance(df.index, pd.DatetimeIndex):
        index = df.index
    else:
        raise ValueError("market data needs a DatetimeIndex or a 'timestamp' column")
    missing = [c for c in _OHLCV if c not in df.columns]
    if missing:
        raise ValueError(f"market data lacks columns {missing}; it needs {list(_OHLCV)}")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    df = df.set_axis(index).sort_index()
    if not df.index.is_unique:
        raise ValueError("market data has duplicate timestamps; drop them first")
    rate = df["funding_rate"].to_numpy("float64") if "funding_rate" in df else np.zeros(len(df))
    rate = np.nan_to_num(rate, nan=0.0)  # a file has no events, only rates: non-zero ones
    mark = df["mark"].to_numpy("float64") if "mark" in df else None
    ohlcv = df[list(_OHLCV)].to_numpy("float64")
    fields = asset_fields(ohlcv, mark, funding_rate=rate, funding_event=rate != 0.0)
    return aligned_frame(df.index, {asset: fields})


def _direction_word(change: float) -> str:
    return "up" if change > 0 else "down" if change < 0 else "unchanged"


@dataclass(frozen=True, eq=False)
class MarketView:
    """Indicators and regimes of one market frame, computed once; ``facts(i)`` reads bar
    i's facts from data at or before bar i only (features and regimes are causal), so
    the corpus can take many snapshots of one frame and the chatbot the latest one."""

    index: pd.DatetimeIndex
    assets: tuple[str, ...]
    columns: dict[str, dict[str, np.ndarray]]
    """Per asset: its bar fields and features (market.features) as arrays."""
    labels: dict[str, np.ndarray]
    """Regime labels per bar: ``ASSET.trend``, ``ASSET.vol_regime`` and ``market``."""
    config: FactsConfig

    @classmethod
    def build(
        cls,
        frame: pd.DataFrame,
        config: FactsConfig | None = None,
        as_of: Any = None,
        asset: str = "BTC",
    ) -> MarketView:
        """Compute the view over bars opening at or before `as_of` (all bars if None)."""
        cfg = config or FactsConfig()
        aligned = to_aligned(frame, asset)
        if as_of is not None:
            aligned = aligned.loc[aligned.index <= to_utc(as_of)]
        if aligned.empty:
            raise ValueError("no market bars at or before the cut-off")
        features = compute_features(aligned, cfg.features)
        closes = aligned.xs("close", axis=1, level="field")
        assets = tuple(closes.columns)
        columns = {
            a: {str(c): aligned[a][c].to_numpy() for c in aligned[a].columns}
            | {str(c): features[a][c].to_numpy() for c in features[a].columns}
            for a in assets
        }
        labels = {"market": market_regimes(closes, cfg.regimes).astype(str).to_numpy()}
        for a in assets:
            labels[f"{a}.trend"] = trend_regime(closes[a], cfg.regimes).astype(str).to_numpy()
            labels[f"{a}.vol_regime"] = (
                volatility_regime(closes[a], cfg.regimes).astype(str).to_numpy()
            )
        return cls(aligned.index, assets, columns, labels, cfg)

    def __len__(self) -> int:
        return len(self.index)

    def facts(self, position: int = -1) -> Facts:
        """Every market, indicator and regime fact at bar `position`, stamped with its time."""
        i = position % len(self)
        out = [f for asset in self.assets for f in self._asset_facts(asset, i)]
        vol, _, trend = str(self.labels["market"][i]).partition("/")
        stamp = self.index[i]
        if trend != "unknown_trend":
            out.append(Fact("market.trend", trend, "text", stamp, "regime"))
        if vol != "unknown_vol":
            out.append(Fact("market.vol_regime", vol.replace("_vol", " volatility"), "text",
                            stamp, "regime"))
        return Facts(tuple(out))

    def _back(self, i: int, hours: float) -> int | None:
        """Position of the last bar opening at or before `hours` before bar i, if covered."""
        target = self.index[i] - pd.Timedelta(hours=hours)
        j = int(self.index.searchsorted(target, side="right")) - 1
        return j if j >= 0 else None

    def _asset_facts(self, asset: str, i: int) -> list[Fact]:
        stamp = self.index[i]
        col = self.columns[asset]
        close, high, low = col["close"], col["high"], col["low"]
        out: list[Fact] = []

        def add(name: str, value: Any, unit: Unit, source: Source) -> None:
            if isinstance(value, str) or math.isfinite(float(value)):
                out.append(Fact(f"{asset}.{name}", value, unit, stamp, source))

        add("close", close[i], "price", "market")
        for label, hours in (("1h", 1), ("24h", 24)):
            j = self._back(i, hours)
            if j is not None:
                change = 100.0 * (close[i] / close[j] - 1.0)
                add(f"change_{label}", change, "signed_pct", "market")
                add(f"direction_{label}", _direction_word(change), "text", "market")
        day, two_days = self._back(i, 24), self._back(i, 48)
        if day is not None:
            window = slice(day + 1, i + 1)
            last = float(np.sum(close[window] * col["volume"][window]))
            add("high_24h", high[window].max(), "price", "market")
            add("low_24h", low[window].min(), "price", "market")
            add("volume_24h", last, "usd", "market")
            if two_days is not None:
                before = slice(two_days + 1, day + 1)
                previous = float(np.sum(close[before] * col["volume"][before]))
                if previous > 0:
                    add("volume_change", 100.0 * (last / previous - 1.0), "signed_pct", "market")
        self._indicator_facts(col, i, add)
        for name in ("trend", "vol_regime"):
            label = str(self.labels[f"{asset}.{name}"][i])
            if not label.startswith("unknown"):
                add(name, label.replace("_vol", " volatility"), "text", "regime")
        return out

    def _indicator_facts(self, col: dict[str, np.ndarray], i: int, add: Callable) -> None:
        f = {name: float(values[i]) for name, values in col.items()}
        cfg = self.config
        add("rsi", f["rsi"], "number", "indicator")
        if math.isfinite(f["rsi"]):
            state = ("overbought" if f["rsi"] > cfg.rsi_overbought
                     else "oversold" if f["rsi"] < cfg.rsi_oversold else "neutral")
            add("rsi_state", state, "text", "indicator")
        add("macd", f["macd"] * f["close"], "number", "indicator")
        add("macd_signal", f["macd_signal"] * f["close"], "number", "indicator")
        add("macd_hist", f["macd_diff"] * f["close"], "number", "indicator")
        if math.isfinite(f["macd_diff"]):
            state = "bullish" if f["macd_diff"] > 0 else "bearish" if f["macd_diff"] < 0 else "flat"
            add("macd_state", state, "text", "indicator")
        add("atr", f["atr"], "price", "indicator")
        add("atr_pct", 100.0 * f["atr_pct"], "pct", "indicator")
        add("volatility_daily", 100.0 * f["daily_vol"], "pct", "indicator")
        add("volatility_annual", 100.0 * f["daily_vol"] * math.sqrt(365.0), "pct", "indicator")
        rate = f["funding_rate_last"]
        add("funding_rate", 100.0 * rate, "signed_pct", "market")
        if math.isfinite(rate):
            side = ("longs pay shorts" if rate > 0
                    else "shorts pay longs" if rate < 0 else "no one pays")
            add("funding_side", side, "text", "market")
        add("basis", 100.0 * f["basis"], "signed_pct", "market")
