"""Market-wide feature sources: daily series that are the same for every asset (the
Fear & Greed Index, an on-chain activity count), stored beside the news and aligned to
market bars with the news package's causal rule (``news.align.visible_bars``).

Each source knows where to fetch its payload, how to read it into observations
(``time``: the period a value describes; ``first_seen``: when it could first be known, by the
source's publication rule), and how to scale it for a model. ``source_features`` turns the
stored observations into a (T, k) float32 block for the env; a value is visible only from
the first bar closing strictly after its ``first_seen`` (see ``base`` for why nothing later
can leak into a bar).

Sources: ``fear_greed`` (``fear_greed.py``) and ``btc_transactions`` (``onchain.py``); their
module docs give the visibility rule and scale of each.

How to add a source:

1. Write ``news/sources/<module>.py`` with a ``FeatureSource`` subclass: ``name`` (lower
   case, the store and feature key), a frozen ``SourceConfig`` subclass as ``config_type``
   when it needs settings, and ``url``, ``read_values`` (payload -> ``time`` + value
   columns, ValueError naming any problem), ``first_seen`` (its publication rule, plus
   ``config.publication_lag``) and ``transform`` (model scale; override ``window`` when it
   reads more than the newest value). Say in the module doc why the rule is conservative.
2. Add one line to ``SOURCES`` below.
3. Add a recorded payload under ``tests/unit/news/fixtures`` (with its provenance in
   ``SOURCES_README.md``) and tests: parsing, the visibility rule worked by hand, and a
   bad payload refused.

``quantum news sources import|fetch|show`` then handle it with no other change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from news.sources.base import FeatureSource, SourceConfig, align_source
from news.sources.fear_greed import FearGreed, FearGreedConfig
from news.sources.fetch import SourceFetchError, fetch_payload
from news.sources.onchain import BtcTransactions, OnchainConfig
from news.sources.store import (
    MergeResult,
    MissingSourceError,
    SourceStoreError,
    read_observations,
    source_path,
    stored_sources,
    write_observations,
)

SOURCES: dict[str, type[FeatureSource]] = {
    FearGreed.name: FearGreed,
    BtcTransactions.name: BtcTransactions,
}
"""Every source by name: adding a source is one module and one line here."""

__all__ = [
    "SOURCES",
    "BtcTransactions",
    "FearGreed",
    "FearGreedConfig",
    "FeatureSource",
    "MergeResult",
    "MissingSourceError",
    "OnchainConfig",
    "SourceConfig",
    "SourceFetchError",
    "SourceStoreError",
    "align_source",
    "fetch_payload",
    "get_source",
    "read_observations",
    "source_features",
    "source_path",
    "stored_sources",
    "write_observations",
]


def get_source(name: str, config: SourceConfig | None = None) -> FeatureSource:
    """The registered source ``name`` (default settings unless ``config``); ValueError
    listing the known names otherwise."""
    try:
        kind = SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}: use one of "
                         f"{', '.join(SOURCES)}") from None
    return kind(config)


def source_features(names: Sequence[str], data_dir: str, bar_close: pd.DatetimeIndex,
                    configs: Mapping[str, SourceConfig] | None = None
                    ) -> tuple[tuple[str, ...], np.ndarray]:
    """Feature names (``src_<name>``, in ``names`` order) and their (T, k) float32 values
    at bars closing at ``bar_close``, from the observations stored under ``data_dir``.

    Market-wide: one column per feature, the same for every asset. ``configs`` overrides a
    source's settings by name (the on-chain trailing window, for instance); the publication
    lag is not among them here, as it was applied when the observations were stored.
    Raises ValueError for an unknown or repeated name and MissingSourceError, naming the
    command that fills it, for a source with nothing stored."""
    if len(set(names)) != len(names):
        raise ValueError(f"a source is named twice in {list(names)}")
    configs = configs or {}
    labels: list[str] = []
    blocks = [np.zeros((len(bar_close), 0), np.float32)]
    for name in names:
        source = get_source(name, configs.get(name))
        observations = read_observations(data_dir, name)
        labels.extend(source.feature_names)
        blocks.append(source.features(observations, bar_close))
    return tuple(labels), np.concatenate(blocks, axis=1)
