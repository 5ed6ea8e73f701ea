"""Which of our asset codes a headline mentions, so the alignment can route an item to the
assets it is about (and treat the rest as market-wide news).

Whole words only, case-insensitive: "ETH" in "ETH/USDT" or "$ETH" counts, "Tether" does
not count as "ether", "solution" not as "sol". The map is configurable because each
deployment trades its own assets and a short ticker can be a common word elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ALIASES: Final = MappingProxyType({
    "BTC": ("bitcoin", "btc", "xbt"),
    "ETH": ("ethereum", "ether", "eth"),
    "SOL": ("solana", "sol"),
    "BNB": ("bnb", "binance coin"),
    "XRP": ("xrp", "ripple"),
})


class AssetMap(BaseModel):
    """Asset code -> the words that name it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_ALIASES),
        description="Upper-case asset code (as in market symbols) -> words or phrases that "
        "mention it; matched as whole words, case-insensitive; the code itself is not "
        "implied, list it if it should match.",
    )

    @field_validator("aliases")
    @classmethod
    def _check(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for code, words in value.items():
            if not re.fullmatch(r"[A-Z0-9]+", code):
                raise ValueError(f"asset code {code!r} must be upper-case letters/digits")
            if not words or any(not w.strip() for w in words):
                raise ValueError(f"asset {code}: give at least one non-empty alias")
        return value

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes in map order (the order assets are reported in)."""
        return tuple(self.aliases)

    @cached_property
    def _patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        patterns = []
        for code, words in self.aliases.items():
            longest_first = sorted({w.strip() for w in words}, key=len, reverse=True)
            alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in longest_first)
            patterns.append((code, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)))
        return tuple(patterns)

    def detect(self, *texts: str) -> tuple[str, ...]:
        """Codes whose aliases occur as whole words in any of ``texts``, in map order."""
        joined = "\n".join(t for t in texts if t)
        return tuple(code for code, pattern in self._patterns if pattern.search(joined))

    def known(self, codes: Iterable[str]) -> tuple[str, ...]:
        """The given codes (e.g. a source's own tags) that this map knows, in map order."""
        wanted = {c.strip().upper() for c in codes if c}
        return tuple(code for code in self.aliases if code in wanted)


DEFAULT_ASSETS: Final = AssetMap()
