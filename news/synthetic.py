"""A synthetic news stream for the synthetic market: the embedded default, so the text
path runs offline, and the planted-news test device.

Event headlines precede each asset's large moves: at a bar ``e`` where the return over
the next ``horizon_bars`` is in the top ``1 - move_quantile`` by size (events at least
``min_gap_bars`` apart), a headline about the asset is first seen ``lead_bars`` (plus
uniform jitter) before ``e``, with the move's tone (positive for a rise) with
probability ``accuracy`` and the opposite tone otherwise. Unrelated noise headlines
(neutral news about an asset or the market) arrive as a Poisson stream. The decoy
(``informative=False``) keeps every headline's time, asset and tone distribution but
draws each event's tone independently of the move: the same stream, no information.

Like ``envs.planted``, this leaks the future on purpose; a real market has no such feed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from news.schema import content_hash

NAMES = {"BTC": "Bitcoin", "ETH": "Ether", "SOL": "Solana", "BNB": "BNB", "XRP": "XRP"}

POSITIVE = (
    "{name} rallies as buyers return in force",
    "Analysts turn bullish on {name} after strong inflows",
    "{name} surges on ETF approval hopes",
    "Whales accumulate {name} as sentiment improves",
    "{name} breaks out to a new high with strong demand",
)
NEGATIVE = (
    "{name} slides as liquidations mount",
    "Traders turn bearish on {name} after heavy outflows",
    "{name} plunges after exchange hack reports",
    "Whales dump {name} as fear spreads",
    "{name} crashes through support on panic selling",
)
NEUTRAL = (
    "{name} developers schedule a network upgrade",
    "Conference panel discusses the {name} roadmap",
    "{name} foundation publishes its quarterly report",
    "Exchange lists new {name} trading pairs",
    "Researchers publish a study of {name} transaction fees",
)
MARKET_NEUTRAL = (
    "Crypto conference opens in Singapore",
    "Regulators publish a consultation on digital asset custody",
    "Exchange announces scheduled maintenance window",
)


class SyntheticNewsConfig(BaseModel):
    """The planted stream's knobs (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    seed: int = 0
    informative: bool = True
    """False: the decoy (event tones independent of the moves)."""
    horizon_bars: int = Field(60, ge=1)
    """The move an event headline announces: the return over this many bars."""
    move_quantile: float = Field(0.98, gt=0.0, lt=1.0)
    """Moves larger (in size) than this quantile of the asset's horizon returns."""
    min_gap_bars: int = Field(120, ge=1)
    """Events of one asset at least this far apart (the largest move of a cluster)."""
    lead_bars: int = Field(5, ge=1)
    """A headline is first seen this many bars before its move starts ..."""
    lead_jitter_bars: int = Field(3, ge=0)
    """... plus uniform jitter in [0, lead_jitter_bars] bars (always before the move)."""
    accuracy: float = Field(0.8, ge=0.0, le=1.0)
    """Share of event headlines whose tone matches the move's direction."""
    noise_per_day: float = Field(24.0, ge=0.0)
    """Unrelated headlines per day (Poisson), a third of them market-wide."""


def synthetic_news(close: pd.DataFrame, config: SyntheticNewsConfig | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Headlines for bars whose close prices are ``close`` (index: bar open times, UTC;
    columns: assets). Returns (headlines in the store's columns, events: bar, asset,
    move, tone of each event headline, for tests and reports)."""
    config = config or SyntheticNewsConfig()
    rng = np.random.default_rng(config.seed)
    index = pd.DatetimeIndex(close.index)
    step = index[1] - index[0]
    closes_at = index + step
    rows, events = [], []
    h = config.horizon_bars
    for asset in close.columns:
        price = close[asset].to_numpy(np.float64)
        move = np.full(len(price), np.nan)
        move[:-h] = price[h:] / price[:-h] - 1.0
        for e in _events(move, config):
            lead = config.lead_bars + rng.integers(0, config.lead_jitter_bars + 1)
            seen_bar = e - lead
            if seen_bar < 0:
                continue
            if config.informative:
                tone = 1 if move[e] > 0 else -1
                if rng.random() >= config.accuracy:
                    tone = -tone
            else:
                tone = int(rng.choice([-1, 1]))
            seen = closes_at[seen_bar - 1] + (step * rng.uniform(0.05, 0.95)) \
                if seen_bar > 0 else index[0]
            templates = POSITIVE if tone > 0 else NEGATIVE
            title = templates[rng.integers(len(templates))].format(name=NAMES.get(asset, asset))
            rows.append(_row(seen, title, [asset]))
            events.append({"bar": e, "asset": asset, "move": float(move[e]), "tone": tone,
                           "visible_bar": seen_bar})
    days = (index[-1] - index[0]) / pd.Timedelta("1D")
    for _ in range(rng.poisson(config.noise_per_day * days)):
        seen = index[0] + (index[-1] - index[0]) * rng.random()
        if rng.random() < 1 / 3:
            title, assets = MARKET_NEUTRAL[rng.integers(len(MARKET_NEUTRAL))], []
        else:
            asset = str(close.columns[rng.integers(len(close.columns))])
            title = NEUTRAL[rng.integers(len(NEUTRAL))].format(name=NAMES.get(asset, asset))
            assets = [asset]
        rows.append(_row(seen, title, assets))
    headlines = pd.DataFrame(rows, columns=["hash", "published", "first_seen", "source",
                                            "title", "summary", "url", "assets"])
    headlines = headlines.sort_values("first_seen", kind="stable").reset_index(drop=True)
    return headlines, pd.DataFrame(events, columns=["bar", "asset", "move", "tone",
                                                    "visible_bar"])


def _events(move: np.ndarray, config: SyntheticNewsConfig) -> list[int]:
    """Bars of the largest moves, greedily largest first, ``min_gap_bars`` apart."""
    size = np.abs(np.nan_to_num(move, nan=0.0))
    threshold = np.quantile(size[~np.isnan(move)], config.move_quantile)
    taken: list[int] = []
    for bar in np.argsort(-size, kind="stable"):
        if size[bar] <= threshold:
            break
        if all(abs(int(bar) - t) >= config.min_gap_bars for t in taken):
            taken.append(int(bar))
    return sorted(taken)


def _row(seen: pd.Timestamp, title: str, assets: list[str]) -> dict:
    """A headline in the store's columns. The summary carries the time, so a template
    used again later is another item (the store deduplicates by content)."""
    stamp = pd.Timestamp(seen).floor("ms")
    summary = f"Reported {stamp:%Y-%m-%d %H:%M} UTC."
    return {"hash": content_hash(title, summary), "published": stamp, "first_seen": stamp,
            "source": "synthetic", "title": title, "summary": summary, "url": "",
            "assets": assets}
