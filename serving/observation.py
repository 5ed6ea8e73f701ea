"""Request bars (or a ready observation) -> the served policy's observation, with no skew.

Training's code path: bars become the aligned frame by market.loader's builder (mark:
the bar's, else the previous one, else close; a funding rate marks a funding_event on
its bar, 0 elsewhere), market.features.compute_features computes the features and
envs.data.MarketArrays.from_frames stacks them; the market part is the last ``window``
rows. Bars must be contiguous on the timeframe grid, with the same timestamps for every
asset: gaps are refused, not filled (market.loader fills flat at the previous close,
volume 0, if the client wants that). Bars closing at a funding time (00:00, 08:00, 16:00
UTC), from the last at or before the window on, need their rate: funding_bp is the last
known rate, and a missing one would silently read as a stale rate.

``min_bars`` is measured: the env's first_valid on a generated frame (funding known from
bar 0, so only indicator warm-ups count) plus the window, cached per asset count and
timeframe. At min_bars the exponential averages (MACD, ATR) still remember their start
where the day-long z-score window begins, so macd_diff_z and atr_pct_z differ from a
long-history env by up to ~1e-3; from ``settled_bars`` (transient < 1e-8) every feature
agrees to float32 rounding (bb_wband_z may drift ~1e-7: pandas' online rolling std
depends on where the series starts).

Risk and portfolio parts are the env's own (envs.account.Account.observe runs the env's
observe_batch): of the full account when the request sends one (as ``quantum live``
keeps it: entries, bars held, working orders, stops, risk history), else of the env's
state right after a reset into the given positions (envs.core.incremental.reset_into_book:
no history, so entry = mark, nothing held yet), else of a flat account.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces

from envs import spaces as env_spaces
from envs.account import Account, AccountError
from envs.config import EnvConfig, MarginConfig
from envs.core.accounting import bracket_arrays, maintenance_margin
from envs.core.observe import RISK_FEATURES, portfolio_features
from envs.data import OBS_FEATURES, MarketArrays
from market.features import FeatureConfig, compute_features, make_aligned_frame
from market.loader import aligned_frame, asset_fields
from market.schema import FUNDING_INTERVAL_MS, TIMESTAMP, asset_of
from serving.schemas import Bar, Headline, Observation, PortfolioState

_FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "mark", "funding_rate")
_T, _O, _H, _L, _C, _V, _MARK, _RATE = range(len(_FIELDS))
_COSTS = ("atr", "daily_vol", "dollar_volume_daily", "funding_rate_last")
"""Cost inputs the env needs defined (envs.data._first_valid), besides the features."""
_SETTLE_TOL = 1e-8
_MAX_DETAILS = 20
_F32_MAX = float(np.finfo(np.float32).max)
_MAX_MS = 9e12
"""Bar times must lie before ~2255 (pandas' nanosecond timestamps end in 2262)."""


class InputError(ValueError):
    """A request to refuse with a 400: a machine-readable code, what to fix, and where."""

    def __init__(self, code: str, message: str, details: list[dict] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = list(details or [])[:_MAX_DETAILS]

    def __reduce__(self):
        """Ray pickles it between processes; the default would rebuild it from args alone."""
        return type(self), (self.code, self.message, self.details)


@dataclass(frozen=True)
class ObservationSpec:
    """What the served policy observes and what a bars request must hold."""

    assets: tuple[str, ...]
    """The model's assets in observation order (short names or ccxt symbols)."""
    window: int
    n_features: int
    risk_window: int
    n_risk: int
    n_portfolio: int
    max_leverage: float
    min_bars: int
    """Fewest bars per asset: every feature defined over the window (see module docstring)."""
    settled_bars: int
    """Bars from which every feature matches a long-history env to float32 rounding."""
    timeframe_ms: int = 60_000
    margin: MarginConfig = field(default_factory=MarginConfig)
    env_config: EnvConfig = field(default_factory=EnvConfig)
    """The run's env config: the account part is observed with it."""
    text: tuple[int, int] | None = None
    """The `text` part's (slots, width) when the model reads news text."""
    news: Mapping[str, Any] | None = None
    """The run's news settings (news.source.NewsConfig fields) when it reads news: a bars
    request's headlines are aligned with them."""

    @classmethod
    def from_spaces(
        cls,
        observation_space: spaces.Dict,
        assets: Sequence[str],
        env_config: EnvConfig,
        timeframe_ms: int = 60_000,
        news: Mapping[str, Any] | None = None,
    ) -> ObservationSpec:
        """The spec of a module's observation space; refuses one its env config would not make."""
        window, n_assets, n_features = observation_space["market"].shape
        if len(assets) != n_assets:
            raise ValueError(f"{len(assets)} assets {list(assets)} for a {n_assets}-asset space")
        text = (tuple(observation_space["text"].shape) if "text" in observation_space.spaces
                else None)
        made = env_spaces.observation_space(env_config, n_assets, n_features, text)
        if made != observation_space:
            raise ValueError(f"observation space {observation_space} does not match env config")
        floors, rates, allowances = bracket_arrays(env_config.margin, assets)
        maintenance_margin(1.0, floors[0], rates[0], allowances[0])  # jit now
        min_bars = _first_valid_bar(n_assets, timeframe_ms) + window
        return cls(
            assets=tuple(assets),
            window=window,
            n_features=n_features,
            risk_window=env_config.risk_window,
            n_risk=len(RISK_FEATURES),
            n_portfolio=len(portfolio_features(env_config)),
            max_leverage=env_config.limits.max_leverage,
            min_bars=min_bars,
            settled_bars=min_bars + _settle_bars(FeatureConfig()),
            timeframe_ms=timeframe_ms,
            margin=env_config.margin,
            env_config=env_config,
            text=text,
            news=dict(news) if news is not None else None,
        )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each part's shape without the batch axis."""
        a = len(self.assets)
        shapes = {
            "market": (self.window, a, self.n_features),
            "risk": (self.risk_window, self.n_risk),
            "portfolio": (a, self.n_portfolio),
        }
        if self.text is not None:
            shapes["text"] = self.text
        return shapes

    @property
    def bar_features(self) -> int:
        """Features per asset a bars request yields: the market's, plus the news features
        when the run reads them."""
        if self.news is None:
            return len(OBS_FEATURES)
        from news.align import FEATURES
        from news.source import NewsConfig

        config = NewsConfig.model_validate(self.news)
        return len(OBS_FEATURES) + len(FEATURES) * config.features + len(config.sources)


@functools.lru_cache(maxsize=16)
def _first_valid_bar(n_assets: int, timeframe_ms: int) -> int:
    """The env's first_valid on a generated frame with funding known from bar 0 (see module)."""
    longest = max(v for v in FeatureConfig().model_dump().values() if isinstance(v, int))
    n = 2 * (longest + 86_400_000 // timeframe_ms) + 64
    frame = make_aligned_frame(n, tuple(f"A{j}" for j in range(n_assets)))
    step = pd.Timedelta(milliseconds=timeframe_ms)
    frame.index = pd.date_range(frame.index[0], periods=n, freq=step, name=TIMESTAMP)
    for asset in frame.columns.get_level_values(0).unique():
        frame[(asset, "funding_event")] = np.r_[1.0, np.zeros(n - 1)]
    return MarketArrays.from_aligned(frame).first_valid


def _settle_bars(cfg: FeatureConfig) -> int:
    """Bars for the slowest exponential average's start-up transient to fall below 1e-8."""
    alphas = (2 / (cfg.macd_slow + 1), 2 / (cfg.macd_signal + 1), 1 / cfg.atr_window)
    return math.ceil(math.log(_SETTLE_TOL) / math.log(1 - min(*alphas, 1 / cfg.rsi_window)))


def resolve_assets(
    requested: Iterable[str], spec: ObservationSpec, *, require_all: bool = True
) -> dict[str, str]:
    """Request name -> model asset: its name or base, any case ('btc' ~ 'BTC/USDT:USDT').

    Two full symbols never match by base (BTC/USDC:USDC is not BTC/USDT:USDT).
    """
    out: dict[str, str] = {}
    unknown, ambiguous = [], []
    for name in requested:
        key = str(name).upper()
        hits = [a for a in spec.assets if a.upper() == key] or [
            a
            for a in spec.assets
            if asset_of(a).upper() == asset_of(key) and ("/" not in a or "/" not in key)
        ]
        if len(hits) == 1:
            out[name] = hits[0]
        else:
            (ambiguous if hits else unknown).append({"asset": name, "matches": hits})
    known = f"the model trades {list(spec.assets)}"
    _raise("unknown_assets", f"unknown assets; {known} (or their bases, e.g. 'BTC')", unknown)
    _raise("ambiguous_assets", f"names match several assets; {known}", ambiguous)
    seen: dict[str, list[str]] = {}
    for name, asset in out.items():
        seen.setdefault(asset, []).append(name)
    dup = [{"asset": a, "names": names} for a, names in seen.items() if len(names) > 1]
    _raise("duplicate_assets", "several names for one asset", dup)
    missing = [{"asset": a} for a in spec.assets if a not in seen] if require_all else []
    _raise("missing_assets", f"bars are needed for every asset; {known}", missing)
    return out


@dataclass(frozen=True)
class ServedState:
    """What a bars request becomes: the observation (batch axis 1), the last bar's open
    time, and the market arrays and account it was observed from (for the decision's
    targets: envs.account.Account.targets)."""

    obs: dict[str, np.ndarray]
    stamp: pd.Timestamp
    data: MarketArrays
    account: Account


def served_state(
    bars: Mapping[str, Sequence[Bar | Mapping]],
    spec: ObservationSpec,
    portfolio: PortfolioState | None = None,
    account: Mapping[str, Any] | None = None,
    news: Sequence[Headline | Mapping] | None = None,
) -> ServedState:
    """The state after the last bar of a request.

    Bars may be schema models or their dicts (``model_dump``), oldest first. ``account``
    (an envs.account.Account dict at the last bar) or ``portfolio``, not both. The market
    arrays span every bar sent: the risk shield's inputs (the trailing day's covariance,
    the regime codes) read past bars, so a request sends a day beyond ``min_bars`` for
    the values a backtest over the same bars sees. ``news`` (headlines) is aligned to the
    bars as in training when the model reads news; a model that does not refuses it.
    """
    if portfolio is not None and account is not None:
        raise InputError("invalid_request", "send an account or a portfolio, not both")
    if news and spec.news is None:
        _raise("news_unsupported", "the model was trained without news: send no headlines",
               [{"headlines": len(news)}])
    if spec.news is not None and spec.news.get("sources"):
        _raise("bars_unsupported", "the model reads stored feature sources (news.sources): "
               "send observations", [{"sources": list(spec.news["sources"])}])
    if spec.n_features != spec.bar_features:
        detail = {"model_features": spec.n_features, "bar_features": spec.bar_features}
        _raise("bars_unsupported", "model observes other features: send observations", [detail])
    names = {asset: name for name, asset in resolve_assets(bars, spec).items()}
    tables = {names[a]: _table(names[a], bars[names[a]]) for a in spec.assets}
    _validate(tables, spec)
    frame = _aligned(list(tables.values()), spec)
    features = compute_features(frame)
    undefined = _undefined(features, spec, names)
    _raise("undefined_features", "features undefined in the window (flat prices?)", undefined)
    data = MarketArrays.from_frames(frame, features)
    if spec.news is not None:
        data = _with_headlines(data, spec, news or ())
    held = _account(account, portfolio, data, spec)
    return ServedState(held.observe(data, spec.env_config), frame.index[-1], data, held)


def _with_headlines(data: MarketArrays, spec: ObservationSpec,
                    news: Sequence[Headline | Mapping]) -> MarketArrays:
    """The request's headlines aligned to its bars with the run's news settings (the same
    code as training: news.source.align_headlines, envs.news_features.with_news); each
    headline's assets matched to the model's by base ('btc', 'BTC/USDT:USDT' -> BTC)."""
    from envs.news_features import with_news
    from news.schema import content_hash
    from news.source import NewsConfig, align_headlines

    items = [h if isinstance(h, Headline) else Headline.model_validate(h) for h in news]
    bases = {asset_of(a).upper(): a for a in data.assets}
    rows = [{"hash": content_hash(h.title, h.summary), "title": h.title, "summary": h.summary,
             "first_seen": pd.Timestamp(h.first_seen).tz_convert("UTC"),
             "assets": [bases[asset_of(n).upper()] for n in h.assets
                        if asset_of(n).upper() in bases]} for h in items]
    frame = pd.DataFrame(rows, columns=["hash", "title", "summary", "first_seen", "assets"])
    frame["first_seen"] = pd.to_datetime(frame["first_seen"], utc=True)
    config = NewsConfig.model_validate(spec.news)
    aligned = align_headlines(config, frame, data.timestamps, data.assets)
    return with_news(data, spec.news, aligned=aligned)


def observation_from_bars(
    bars: Mapping[str, Sequence[Bar | Mapping]],
    spec: ObservationSpec,
    portfolio: PortfolioState | None = None,
    account: Mapping[str, Any] | None = None,
    news: Sequence[Headline | Mapping] | None = None,
) -> tuple[dict[str, np.ndarray], pd.Timestamp]:
    """The observation after the last bar (batch axis 1) and that bar's open time (UTC);
    see :func:`served_state`."""
    state = served_state(bars, spec, portfolio, account, news)
    return state.obs, state.stamp


def observation_from_arrays(obs: Observation, spec: ObservationSpec) -> dict[str, np.ndarray]:
    """A ready observation as float32 arrays with a batch axis of 1, checked part by part."""
    if obs.text is not None and spec.text is None:
        _raise("news_unsupported", "the model reads no text: send no text part",
               [{"part": "text"}])
    out = {}
    for part, shape in spec.shapes.items():
        detail = {"part": part, "expected": list(shape)}
        try:
            array = np.asarray(getattr(obs, part), dtype=np.float64)
        except ValueError as exc:
            raise InputError("bad_shape", f"{part} is ragged, expected {shape}", [detail]) from exc
        wrong = [{**detail, "got": list(array.shape)}] if array.shape != shape else []
        _raise("bad_shape", f"{part} has shape {array.shape}, expected {shape}", wrong)
        bad = [{"part": part, "index": i.tolist()} for i in np.argwhere(~(abs(array) <= _F32_MAX))]
        _raise("non_finite", f"{part} holds {len(bad)} values that are not finite float32", bad)
        out[part] = array.astype(np.float32)[None]
    return out


def _raise(code: str, message: str, details: list[dict]) -> None:
    if details:
        raise InputError(code, f"{message}; first: {details[0]}", details)


def _table(name: str, bars: Sequence[Bar | Mapping]) -> np.ndarray:
    """(bars, _FIELDS) float64; an absent mark or funding rate (or any field of a dict) is NaN."""
    get = operator.attrgetter(*_FIELDS)
    if bars and isinstance(bars[0], Mapping):
        whole = all(f in bars[0] for f in _FIELDS)
        get = operator.itemgetter(*_FIELDS) if whole else lambda b: tuple(map(b.get, _FIELDS))
    try:
        return np.array([get(b) for b in bars], dtype=np.float64).reshape(len(bars), len(_FIELDS))
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        message = f"unreadable bar ({exc}); each needs {_FIELDS[:6]}"
        raise InputError("bad_bar", message, [{"asset": name}]) from exc


def _each(tables: dict[str, np.ndarray], flagged, **extra) -> list[dict]:
    """Per asset, the earliest bar any (field, per-bar flags) of `flagged(name, table)` flags."""
    out = []
    for name, t in tables.items():
        hits = [(int(np.argmax(bad)), field) for field, bad in flagged(name, t) if bad.any()]
        if hits:
            i, field = min(hits)
            stamp = int(t[i, _T]) if np.isfinite(t[i, _T]) else None
            out.append({"asset": name, "field": field, "index": i, "timestamp": stamp, **extra})
    return out


_MESSAGES = {
    "non_finite": "timestamp and OHLCV must be finite",
    "bad_bar": "prices must be > 0, volume >= 0, low <= open, close <= high",
    "unsorted_timestamps": "timestamps must strictly increase (oldest first, no repeats)",
    "irregular_bars": "bars must be consecutive {tf} ms bars on the grid, with no gap; send a "
    "contiguous span (fill a gap flat at the previous close, volume 0)",
}
"""The rules each asset's bars must keep, in the order they are checked."""


def _rules(t: np.ndarray, tf: int) -> list[tuple[str, str, np.ndarray]]:
    """(code, field, per-bar flags) of every rule in _MESSAGES."""
    ts, o, c = t[:, _T], t[:, _O], t[:, _C]
    return [
        *(("non_finite", _FIELDS[k], ~np.isfinite(t[:, k])) for k in range(_MARK)),
        *(("bad_bar", _FIELDS[k], t[:, k] <= 0) for k in (_O, _H, _L, _C, _MARK)),
        ("bad_bar", "timestamp", ts >= _MAX_MS),
        ("bad_bar", "volume", t[:, _V] < 0),
        ("bad_bar", "high", t[:, _H] < np.maximum(o, c)),
        ("bad_bar", "low", t[:, _L] > np.minimum(o, c)),
        ("unsorted_timestamps", "timestamp", np.r_[False, np.diff(ts) <= 0]),
        ("irregular_bars", "timestamp", np.r_[ts[0] % tf != 0, np.diff(ts) != tf]),
    ]


def _validate(tables: dict[str, np.ndarray], spec: ObservationSpec) -> None:
    """Each rule over every asset, in order; the first rule broken is the error."""
    tf = spec.timeframe_ms
    need = spec.min_bars
    few = [
        {"asset": n, "bars": len(t), "min_bars": need} for n, t in tables.items() if len(t) < need
    ]
    settled = f"{spec.settled_bars} for features identical to a long history"
    _raise("too_few_bars", f"need at least {spec.min_bars} bars per asset ({settled})", few)
    rules = {n: _rules(t, tf) for n, t in tables.items()}
    for code, message in _MESSAGES.items():
        found = _each(tables, lambda n, t, code=code: [(f, b) for c, f, b in rules[n] if c == code])
        _raise(code, message.format(tf=tf), found)
    ref_name, ref = next(iter(tables.items()))
    off = [
        {"asset": n, "bars": len(t), "reference": ref_name, "reference_bars": len(ref)}
        for n, t in tables.items()
        if len(t) != len(ref)
    ]
    off = off or _each(tables, lambda n, t: [("timestamp", t[:, _T] != ref[:, _T])], ref=ref_name)
    _raise("misaligned_timestamps", "every asset needs bars with the same timestamps", off)
    due = (ref[:, _T] + tf) % FUNDING_INTERVAL_MS == 0  # the bars closing at a funding time
    before = np.flatnonzero(due[: len(ref) - spec.window + 1])
    due[: before[-1] if len(before) else 0] = False  # older rates are not observed
    missing = _each(tables, lambda n, t: [("funding_rate", due & np.isnan(t[:, _RATE]))])
    message = "a bar closing at 00:00, 08:00 or 16:00 UTC needs funding_rate, paid at its close"
    _raise("missing_funding", message, missing)


def _aligned(tables: list[np.ndarray], spec: ObservationSpec) -> pd.DataFrame:
    """The aligned frame of validated bars, built as market.loader builds it: no bar is
    invented (filled = 0), a funding rate marks its bar's event, mark falls back as there."""
    index = pd.to_datetime(tables[0][:, _T].astype(np.int64), unit="ms", utc=True)
    fields = {
        asset: asset_fields(t[:, _O:_MARK], mark=t[:, _MARK], funding_rate=t[:, _RATE])
        for asset, t in zip(spec.assets, tables, strict=True)
    }
    return aligned_frame(pd.DatetimeIndex(index.as_unit("ns")), fields)


def _undefined(features: pd.DataFrame, spec: ObservationSpec, names: dict[str, str]) -> list:
    """Features and cost inputs undefined (or ATR 0) in the window: by the env's first_valid
    rule no decision could be taken at this bar."""
    wanted = (*OBS_FEATURES, *_COSTS)
    cols = pd.MultiIndex.from_product([spec.assets, wanted])
    rows = features.to_numpy()[-spec.window :, features.columns.get_indexer(cols)]
    bad = ~np.isfinite(rows) | ((rows <= 0) & (cols.get_level_values(1) == "atr"))
    out = [
        {"asset": names[a], "feature": f, "index": len(features) - spec.window + int(np.argmax(b))}
        for (a, f), b in zip(cols, bad.T, strict=True)
        if b.any()
    ]
    funding = [d for d in out if d["feature"] in ("funding_bp", "funding_rate_last")]
    message = "no funding rate known in the window: send a funding time's bar with its rate"
    _raise("missing_funding", message, funding)
    return out


def _account(account: Mapping[str, Any] | None, portfolio: PortfolioState | None,
             data: MarketArrays, spec: ObservationSpec) -> Account:
    """The request's account at the data's last bar (see module docstring)."""
    bar = data.n_bars - 1
    cfg = spec.env_config
    if account is not None:
        try:
            held = Account.from_dict(account)
        except AccountError as err:
            raise InputError("bad_account", str(err)) from err
        names = resolve_assets(held.assets, spec)
        held.assets = tuple(names[a] for a in held.assets)
        held.book = {names[a]: row for a, row in held.book.items()}
        if held.assets != spec.assets:
            raise InputError("bad_account", f"the account lists the assets {list(held.assets)}; "
                             f"the model's order is {list(spec.assets)}")
        if held.bar_time != int(data.timestamps[bar]):
            at = pd.Timestamp(held.bar_time, tz="UTC")
            raise InputError("bad_account", f"the account is at {at.isoformat()}, the last "
                             f"bar at {pd.Timestamp(data.timestamps[bar], tz='UTC').isoformat()}"
                             "; send bars up to the account's bar")
        if len(held.risk_history) != cfg.risk_window:
            raise InputError("bad_account", f"the account keeps {len(held.risk_history)} risk "
                             f"vectors, the model observes {cfg.risk_window}")
        return held
    notionals = np.zeros(len(spec.assets))
    equity = cfg.initial_balance
    if portfolio is not None:
        for name, asset in resolve_assets(portfolio.positions, spec, require_all=False).items():
            notionals[spec.assets.index(asset)] = portfolio.positions[name]
        equity = portfolio.equity
    return Account.with_positions(data, cfg, bar, equity, notionals)
