"""Headline sentiment in [-1, 1]: VADER's compound score with a small crypto lexicon.

VADER is a rule-based lexicon scorer: deterministic, fast, no model weights, and it
handles negation ("not bullish"), boosters ("very") and capitals. Its lexicon was built
from social media, so market words are missing ("bullish", "rally", "delist") or carry a
general meaning ("exploit" -0.4, where in crypto it means funds were stolen). The update
below adds or corrects those on VADER's own scale (-4..4; e.g. "crash" -1.7, "gain" 2.4,
"scam" -2.7). Multi-word phrases ("etf approval", "sec lawsuit") are joined into one token
before scoring, because VADER looks words up one at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from types import MappingProxyType

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

CRYPTO_LEXICON: Mapping[str, float] = MappingProxyType({
    # market direction
    "bullish": 2.0, "bearish": -2.0,
    "rally": 1.8, "rallies": 1.8, "rallied": 1.8,
    "surge": 1.6, "surges": 1.6, "surged": 1.6,
    "soar": 1.8, "soars": 1.8, "soared": 1.8,
    "rebound": 1.2, "rebounds": 1.2, "rebounded": 1.2,
    "plunge": -1.8, "plunges": -1.8, "plunged": -1.8,
    "tumble": -1.6, "tumbles": -1.6, "tumbled": -1.6,
    "crashes": -1.7, "crashed": -1.7,
    "selloff": -1.6, "sell-off": -1.6,
    "dump": -1.8, "dumps": -1.8, "dumped": -1.8,
    "pump": 1.0, "pumps": 1.0, "pumped": 1.0,
    "inflows": 1.0, "outflows": -1.0,
    "adoption": 1.2,
    "all-time high": 2.0, "record high": 2.0,
    # forced selling
    "liquidation": -1.5, "liquidations": -1.5, "liquidated": -1.8,
    # security incidents (VADER's "exploit" -0.4 is the general-English sense)
    "hack": -2.3, "hacks": -2.3, "hacked": -2.5, "hacker": -2.0, "hackers": -2.0,
    "exploit": -2.3, "exploits": -2.3, "exploited": -2.5, "exploiter": -2.3,
    "depeg": -2.5, "depegs": -2.5, "depegged": -2.5,
    "rug pull": -3.0, "pump and dump": -2.5,
    "insolvent": -2.8, "insolvency": -2.8, "bankruptcy": -2.6,
    # venues and regulators
    "delist": -2.0, "delists": -2.0, "delisted": -2.0, "delisting": -2.0,
    "sues": -1.8, "sued": -1.8,
    "etf approval": 2.5, "etf approved": 2.5, "etf rejection": -2.0, "etf rejected": -2.0,
    "sec lawsuit": -2.5,
})
"""Crypto additions to VADER's lexicon (lower case; phrases contain spaces). Valences are
on VADER's -4..4 scale and deliberately moderate: the score ranks headlines, it is not a
trading signal by itself."""


class SentimentScorer:
    """VADER compound scores for many texts at once, with a lexicon update applied.

    ``identity`` changes with the lexicon or VADER's version; it is part of the embedding
    cache's key, so cached scores never outlive the lexicon that made them.
    """

    def __init__(self, lexicon_update: Mapping[str, float] = CRYPTO_LEXICON) -> None:
        bad = {word: value for word, value in lexicon_update.items() if not -4 <= value <= 4}
        if bad:
            raise ValueError(f"lexicon valences must lie in [-4, 4] (VADER's scale): {bad}")
        self._analyzer = SentimentIntensityAnalyzer()
        tokens = {_token(word): float(value) for word, value in lexicon_update.items()}
        self._analyzer.lexicon.update(tokens)
        self._phrases = _phrase_pattern([word for word in lexicon_update if " " in word.strip()])
        payload = json.dumps(sorted(tokens.items())) + version("vaderSentiment")
        self.identity = hashlib.sha256(payload.encode()).hexdigest()

    def _prepare(self, text: str) -> str:
        if self._phrases is None:
            return text
        return self._phrases.sub(lambda match: _token(match.group(0)), text)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Compound sentiment per text, float32 in [-1, 1] (0 for text with no opinion)."""
        scores = (
            self._analyzer.polarity_scores(self._prepare(text))["compound"] for text in texts
        )
        return np.clip(np.fromiter(scores, dtype=np.float32, count=len(texts)), -1.0, 1.0)


def _phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str] | None:
    """One regex for all phrases, longest first, whole words, any case and spacing."""
    if not phrases:
        return None
    alternatives = (
        r"\s+".join(map(re.escape, phrase.split()))
        for phrase in sorted(phrases, key=len, reverse=True)
    )
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


def _token(phrase: str) -> str:
    """One VADER token for a phrase: lower case, words joined by '_' (VADER splits on
    whitespace and strips only leading/trailing punctuation, so the token survives)."""
    return "_".join(phrase.lower().split())
