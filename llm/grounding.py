"""Grounding: an answer states only what the facts say, or the chatbot answers from a template.

The model writes placeholders that name facts (``{BTC.close}``); :func:`render` fills them
with the facts' formatted values, and an unknown name rejects the answer. Anything the
model writes outside a placeholder is checked like the output of any other model (a
large local model that writes plain numbers is held to the same rules):

- a number must equal a context fact's value as shown, to the precision written
  (``43,210`` for 43,210.47) or within ``rel_tol``; unsigned numbers match magnitudes
  (the sign is a direction word's job); a metric word just before it (RSI, Sharpe...)
  must name the fact it matches;
- a direction word (up, fell, bullish, long, flat...) must agree with a fact of its kind
  (price moves and returns, trends, the policy's decisions): one the sentence refers to,
  else one of the assets it names, else the question's assets; negated or unbacked
  directions fail, enumerations ("long or short", "P(long)") state none;
- a date must be the date of a fact;
- an answer to a question about a fact must state that fact.

On any failure the answer is replaced by the intent's templated answer filled from the
facts, so every number the user reads comes from code, never from the model's memory.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llm.facts import Fact, Facts
from llm.prompt import ASSET, PLACEHOLDER, Detected, instantiate, mentioned_assets

_NUMBER = re.compile(
    r"(?<![\w.,])([+\-−]?)\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:\s?(%|[kKMB]\b|bn\b|x\b))?"
)
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2})?(?::\d{2})?\b")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "bn": 1e9}
_MOVE, _TREND, _POSITION = "move", "trend", "position"
_WORDS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    (r"up|ris(e|es|en|ing)|rose|gain(s|ed|ing)?|rall(y|ied|ies|ying)|surg(e|ed|es|ing)|"
     r"soar(s|ed|ing)?|jump(s|ed|ing)?|climb(s|ed|ing)?", (_MOVE,), 1),
    (r"down|f[ae]ll(s|en|ing)?|drop(s|ped|ping)?|declin(e|ed|es|ing)|los(s|ses|t|ing)|"
     r"crash(es|ed|ing)?|plung(e|ed|es|ing)|tumbl(e|ed|es|ing)|slump(s|ed|ing)?|sank|"
     r"sink(s|ing)?|dip(s|ped|ping)?", (_MOVE,), -1),
    (r"unchanged", (_MOVE,), 0),
    (r"uptrend|bullish", (_TREND,), 1),
    (r"downtrend|bearish", (_TREND,), -1),
    (r"sideways|range-bound", (_TREND,), 0),
    (r"long", (_POSITION,), 1),
    (r"short", (_POSITION,), -1),
    (r"flat", (_POSITION, _TREND, _MOVE), 0),
)
_DIRECTION = re.compile(r"\b(" + "|".join(f"(?:{w})" for w, _, _ in _WORDS) + r")\b", re.I)
_JOINER = re.compile(r"^\s*(?:,|/|or|and|,\s*or|,\s*and|vs\.?|versus|nor)\s*$", re.I)
_NEGATION = re.compile(r"\b(not|no|never|isn't|aren't|wasn't|nor)\s+(?:\w+\s+)?$", re.I)
_KIND_SUFFIXES = {
    _MOVE: ("change_1h", "change_24h", "direction_1h", "direction_24h", "volume_change",
            "total_return", "annualized_return", "excess_return", "benchmark_return", "outcome",
            "max_drawdown"),
    _TREND: ("trend", "macd_state"),
    _POSITION: ("decision",),
}
_LABELS = {
    "rsi": ("rsi",), "macd": ("macd",), "atr": ("atr",), "funding": ("funding_rate",),
    "sharpe": ("sharpe",), "sortino": ("sortino",), "drawdown": ("max_drawdown",),
    "leverage": ("leverage",), "var": ("var_",), "es": ("es_",), "shortfall": ("es_",),
    "volume": ("volume",), "volatility": ("volatility", "atr_pct", "vol_regime"),
}
"""Metric words and the fact keys a value right after them may belong to."""
_CONNECTORS = frozenset({
    "is", "was", "are", "of", "at", "reads", "stands", "now", "currently", "about", "around",
    "ratio", "rate", "the", "a", "an", "its",
})
DEFAULT_IGNORE = (
    r"\b(?:1|4|8|24|48)\s?(?:h\b|hours?\b|-hour\b)",  # window names: 1h, 24 hours
    r"\b(?:95|99)(?:\.0)?\s?%(?=\s*(?:VaR|ES\b|expected|confidence|level))",  # VaR levels
    r"\b(?:at|the)\s+(?:95|99)(?:\.0)?\s?%",  # "at 95%" / "the 99%" (a confidence level)
    r"\b(?:above|below|over|under)\s+(?:30|50|70)\b",  # RSI thresholds
    r"\bP\((?:long|flat|short)\)",  # probability labels
    r"\b(?:long|short)-(?:term|only)\b|\bhow long\b|\bas long as\b|\bin short\b",
    r"\b(?:up|down) to\b|\blongs\b|\bshorts\b",
    r"\bstop[- ]loss(?:es)?\b|\btake[- ]profits?\b",  # order names, not outcomes
)
"""Text that names a window, a level or a label rather than stating a fact: not checked."""


LATEST = "The latest market data:"
"""Opens an overview when the market regime is not known yet (too little history)."""


@dataclass(frozen=True)
class GroundingConfig:
    """How strictly an answer is checked against the facts."""

    rel_tol: float = 1e-3
    """A number may differ from a fact's value by this fraction (it was rounded)."""
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    """Regexes of text that states no fact (window names, VaR levels, labels)."""
    require_asked: bool = True
    """Reject an answer that does not state the fact the question asks for."""


class UnknownPlaceholderError(ValueError):
    """The answer names a fact that is not in the context."""


@dataclass(frozen=True)
class Grounded:
    """A checked answer: the text to show and how it came about."""

    text: str
    """What the user reads: the model's answer filled in, or the templated fallback."""
    grounded: bool
    """The model's own answer passed every check (False when the fallback was used)."""
    used_fallback: bool
    facts_used: tuple[Fact, ...]
    """The facts the shown text states."""
    template: str
    """The shown text with placeholders (kept in the history the model sees)."""
    raw: str = ""
    """The model's answer as written."""
    problems: tuple[str, ...] = ()
    """Why the model's answer was rejected (empty when it passed)."""


def render(answer: str, facts: Facts) -> str:
    """Fill every ``{key}`` with the fact's formatted value; unknown keys raise."""
    unknown = [k for k in PLACEHOLDER.findall(answer) if k not in facts]
    if unknown:
        raise UnknownPlaceholderError(f"unknown placeholders {unknown}")
    return PLACEHOLDER.sub(lambda m: facts[m.group(1)].text, answer)


def shown_number(fact: Fact) -> float | None:
    """The number a numeric fact shows (its value rounded as displayed)."""
    if isinstance(fact.value, str):
        return None
    match = _NUMBER.search(fact.text)
    value = float((match.group(2) + (match.group(3) or "")).replace(",", ""))
    return -value if fact.text.startswith("-") else value


def _number_facts(match: re.Match, facts: Iterable[Fact], rel_tol: float) -> list[Fact]:
    """Facts whose shown value the number matches, to the precision it was written."""
    sign, whole, frac, suffix = match.groups()
    scale = _SCALE.get(suffix or "", 1.0)
    value = float(whole.replace(",", "") + (frac or "")) * scale
    value = -value if sign in ("-", "−") else value
    tol = 0.5 * 10.0 ** -(len(frac) - 1 if frac else 0) * scale
    found = []
    for fact in facts:
        shown = shown_number(fact)
        if shown is None:
            continue
        percent = fact.unit in ("pct", "signed_pct")
        if suffix == "%" and not percent:
            continue
        targets = [shown, shown / 100.0] if percent and suffix != "%" else [shown]
        for target in targets:
            target = target if sign else abs(target)
            if abs(value - target) <= max(tol, rel_tol * abs(target)) * (1 + 1e-9):
                found.append(fact)
                break
    return found


def _kind_facts(facts: Iterable[Fact], kinds: tuple[str, ...], assets: tuple[str, ...]):
    suffixes = tuple(s for k in kinds for s in _KIND_SUFFIXES[k])
    return [f for f in facts if f.direction is not None and f.key.endswith(suffixes)
            and (not assets or any(f.key.startswith((f"{a}.", f"signal.{a}.")) for a in assets)
                 or f.key.startswith(("market.", "backtest.")))]


def _label(before: str) -> str | None:
    """The metric word a value is attached to: the last word before it, skipping
    connectors ("RSI is", "Sharpe ratio of"), if it names a metric."""
    for word in reversed(re.findall(r"[a-z]+", before[-60:].lower())):
        if word not in _CONNECTORS:
            return word if word in _LABELS else None
    return None


def _fits(key: str, label: str) -> bool:
    return any(part in key for part in _LABELS[label])


def _owner(key: str, assets: tuple[str, ...]) -> str | None:
    """The asset a fact belongs to (``BTC.close``, ``signal.BTC.size``), if any."""
    parts = key.split(".")
    name = parts[1] if parts[0] == "signal" and len(parts) > 2 else parts[0]
    return name if name in assets else None


def _word_info(word: str) -> tuple[tuple[str, ...], int]:
    for pattern, kinds, polarity in _WORDS:
        if re.fullmatch(pattern, word, re.I):
            return kinds, polarity
    raise AssertionError(word)


class _Checker:
    """Checks one answer against one context; collects problems and facts used."""

    def __init__(self, facts: Facts, detected: Detected | None, config: GroundingConfig):
        self.facts, self.detected, self.config = facts, detected, config
        self.problems: list[str] = []
        self.used: dict[str, Fact] = {}

    def run(self, answer: str) -> None:
        if not answer.strip():
            self.problems.append("empty answer")
        for sentence in filter(None, _SENTENCE.split(answer)):
            self._sentence(sentence)
        self._asked()

    def _sentence(self, sentence: str) -> None:
        referenced: list[Fact] = []
        for key in PLACEHOLDER.findall(sentence):
            if key in self.facts:
                referenced.append(self.facts[key])
            else:
                self.problems.append(f"unknown placeholder {{{key}}}")
        text = PLACEHOLDER.sub(lambda m: " " * len(m.group()), sentence)
        for pattern in self.config.ignore:
            text = re.sub(pattern, lambda m: " " * len(m.group()), text, flags=re.I)
        for match in _DATE.finditer(text):
            days = {f"{f.timestamp:%Y-%m-%d}" for f in self.facts}
            days |= {str(f.value)[:10] for f in self.facts if isinstance(f.value, str)}
            if match.group()[:10] not in days:
                self.problems.append(f"date {match.group()} is not a fact's date")
        text = _DATE.sub(lambda m: " " * len(m.group()), text)
        for match in PLACEHOLDER.finditer(sentence):
            label = _label(text[: match.start()])
            if match[1] in self.facts and label and not _fits(match[1], label):
                self.problems.append(f"{{{match[1]}}} is labelled {label}")
        named = mentioned_assets(text, self.facts.assets)
        if len(named) == 1:
            for f in referenced:
                owner = _owner(f.key, self.facts.assets)
                if owner not in (None, named[0]):
                    self.problems.append(f"a sentence about {named[0]} states {f.key}")
        for match in _NUMBER.finditer(text):
            referenced += self._number(match, text)
        self._directions(text, referenced)
        self.used.update((f.key, f) for f in referenced)

    def _number(self, match: re.Match, text: str) -> list[Fact]:
        found = _number_facts(match, self.facts, self.config.rel_tol)
        label = _label(text[: match.start()])
        if label:
            found = [f for f in found if _fits(f.key, label)]
        if not found:
            named = f" (labelled {label})" if label else ""
            self.problems.append(f"number {match.group().strip()}{named} matches no fact")
        return found

    def _directions(self, text: str, referenced: list[Fact]) -> None:
        words = list(_DIRECTION.finditer(text))
        listed = set()
        for a, b in itertools.pairwise(words):
            if _JOINER.match(text[a.end() : b.start()]):
                listed |= {a.start(), b.start()}
        named = mentioned_assets(text, self.facts.assets)
        fallback_assets = self.detected.assets if self.detected else ()
        for word in words:
            if word.start() in listed:
                continue
            kinds, polarity = _word_info(word.group())
            if _NEGATION.search(text[: word.start()]):
                self.problems.append(f"negated direction '{word.group()}' cannot be checked")
                continue
            candidates = _kind_facts(referenced, kinds, ()) or _kind_facts(
                self.facts, kinds, named or fallback_assets
            )
            backing = [f for f in candidates if f.direction == polarity]
            if not backing:
                self.problems.append(f"direction '{word.group()}' is not backed by the facts")
            self.used.update((f.key, f) for f in backing[:1])

    def _asked(self) -> None:
        if not (self.config.require_asked and self.detected and self.detected.intent.asked):
            return
        for asset in self.detected.assets[:1] or ("",):
            keys = [instantiate(k, asset) for k in self.detected.intent.asked]
            if not any(k in self.used for k in keys):
                self.problems.append(f"the answer does not state {', '.join(keys)}")


def check(
    answer: str,
    facts: Facts,
    detected: Detected | None = None,
    config: GroundingConfig | None = None,
) -> tuple[tuple[Fact, ...], tuple[str, ...]]:
    """The facts an answer states and the problems found (empty: it is grounded)."""
    checker = _Checker(facts, detected, config or GroundingConfig())
    checker.run(answer)
    return tuple(checker.used.values()), tuple(checker.problems)


def fallback_template(
    detected: Detected, facts: Facts, choose: Callable[[list[str]], str] | None = None
) -> str:
    """The intent's first template whose facts are all present (or the one `choose` picks
    among those: the corpus varies its answers), per asset asked about; else the intent's
    'missing data' sentence (which states no value)."""
    intent = detected.intent
    pick = choose or (lambda options: options[0])
    if intent.scope == "market":
        usable = [t for t in intent.answers if set(intent.keys([], t)) <= set(facts.keys())]
        each = [instantiate(intent.each, a) for a in facts.assets
                if set(intent.keys([a], intent.each)) <= set(facts.keys())]
        if not usable and not each:
            return intent.missing
        return (pick(usable) if usable else LATEST) + "".join(each)
    assets = detected.assets if ASSET in "".join((*intent.answers, intent.missing)) else ("",)
    parts = []
    for asset in assets:
        usable = [t for t in intent.answers if set(intent.keys([asset], t)) <= set(facts.keys())]
        parts.append(instantiate(pick(usable) if usable else intent.missing, asset))
    return " ".join(dict.fromkeys(parts))


def ground(
    answer: str,
    facts: Facts,
    detected: Detected | None = None,
    config: GroundingConfig | None = None,
) -> Grounded:
    """Check the model's answer; show it filled in if it passes, else the fallback."""
    raw = answer.strip()
    used, problems = check(raw, facts, detected, config)
    if not problems:
        return Grounded(render(raw, facts), True, False, used, raw, raw, ())
    if detected is None:
        template = "I cannot answer that from the data I have."
    else:
        template = fallback_template(detected, facts)
    keys = PLACEHOLDER.findall(template)
    return Grounded(
        render(template, facts), False, True, tuple(facts[k] for k in dict.fromkeys(keys)),
        template, raw, problems,
    )


def states(text: str, fact: Fact) -> bool:
    """Whether a shown answer states `fact` correctly (its value as displayed, or a
    rounding of it for numbers); used by the evaluation."""
    if isinstance(fact.value, str):
        return re.search(rf"\b{re.escape(fact.text)}\b", text, re.I) is not None
    if fact.text in text:
        return True
    return any(_number_facts(m, [fact], 1e-3) for m in _NUMBER.finditer(text))
