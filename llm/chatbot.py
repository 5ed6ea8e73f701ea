"""The trading chatbot: answers about the market, the policy, risk and backtests from facts.

``load_market_chatbot(model_path)`` gives a :class:`MarketChatbot`; feed it data with
``update_market_data`` (bars), ``update_signals`` (the /v1/signals response),
``update_risk`` (a risk report) and ``update_backtest`` (a report folder), then ask with
``chat``, ``stream`` or ``reply`` (the structured answer the HTTP API returns).

Each question is matched to an intent (llm.prompt); the prompt carries only the facts
that answer it, the earlier turns that fit, and the question. The model's answer is
grounded (llm.grounding): its placeholders are filled from the facts and anything else it
states is checked, with a templated answer from the facts when a check fails. A
question about a backtest sees no fact later than the backtest's end.

This is the library; the interactive chat is llm.cli's: ``quantum chat --model-path
models/chatbot`` or ``python -m llm.cli --model-path models/chatbot`` (it reads lines
until EOF, so it also works from a pipe; /reset and /quit are commands).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from llm.facts import (
    Fact,
    Facts,
    FactsConfig,
    MarketView,
    backtest_facts,
    read_backtest,
    read_market_file,
    risk_facts,
    signal_facts,
    to_aligned,
    to_utc,
)
from llm.grounding import Grounded, GroundingConfig, fallback_template, ground, render
from llm.news_facts import NewsFactsConfig, news_facts, scored
from llm.prompt import PLACEHOLDER, STOP, Detected, context, detect, format_prompt, instantiate

_BACKTEST_INTENTS = ("performance", "sharpe", "drawdown")


class TextModel(Protocol):
    """What the chatbot needs of a model (llm.model.LanguageModel has it)."""

    context_length: int

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, prompt: str, *, max_new_tokens: int, temperature: float, stop: Sequence[str]
    ) -> str: ...


@dataclass(frozen=True)
class ChatConfig:
    """How the chatbot talks to its model."""

    max_history: int = 5
    """Earlier question/answer pairs kept in the prompt (fewer if the context is full)."""
    max_new_tokens: int = 96
    """Longest answer the model may write, in tokens (reserved in the context)."""
    temperature: float = 0.0
    """0: greedy decoding, so the same state gives the same answer."""
    grounding: GroundingConfig = field(default_factory=GroundingConfig)

    def __post_init__(self) -> None:
        if self.max_history < 0 or self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_history >= 0, max_new_tokens >= 1 and temperature >= 0")


@dataclass(frozen=True)
class Turn:
    question: str
    template: str
    """The answer with placeholders: what the model sees of this turn later."""
    text: str
    assets: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    """One answer with what it rests on (the HTTP API returns ``to_dict()``)."""

    text: str
    intent: str
    assets: tuple[str, ...]
    grounded: bool
    """The model's own answer passed every check (False: the templated fallback was used)."""
    used_fallback: bool
    facts_used: tuple[Fact, ...]
    raw: str = ""
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        facts = [{"key": f.key, "value": f.value, "text": f.text, "unit": f.unit,
                  "source": f.source, "timestamp": f.timestamp.isoformat()}
                 for f in self.facts_used]
        return {"text": self.text, "intent": self.intent, "assets": list(self.assets),
                "grounded": self.grounded, "used_fallback": self.used_fallback,
                "facts_used": facts, "problems": list(self.problems)}


class MarketChatbot:
    """A model plus the facts it may state and the conversation so far."""

    def __init__(
        self,
        model: TextModel,
        config: ChatConfig | None = None,
        facts_config: FactsConfig | None = None,
    ):
        self.model = model
        self.config = config or ChatConfig()
        self.facts_config = facts_config or FactsConfig()
        self._market: pd.DataFrame | None = None
        self._market_asset = "BTC"
        self._market_facts: dict[pd.Timestamp | None, Facts] = {}
        self._signals = self._risk = self._backtest = Facts()
        self._news: pd.DataFrame | None = None
        self._news_config = NewsFactsConfig()
        self._backtest_end: pd.Timestamp | None = None
        self._history: list[Turn] = []

    def update_market_data(self, data: pd.DataFrame | str | Path, asset: str = "BTC") -> None:
        """Bars: the aligned multi-asset frame (market.loader.load_aligned) or one asset's
        OHLCV frame, CSV or parquet file (named `asset`). Facts are computed here, so bad
        data fails now with a clear message, not mid-conversation."""
        frame = read_market_file(data) if isinstance(data, str | Path) else data.copy()
        view = MarketView.build(frame, self.facts_config, asset=asset)
        self._market, self._market_asset = frame, asset
        self._market_facts = {None: view.facts()}

    def update_signals(self, signals: Any, timestamp: Any = None) -> None:
        """The policy's signal: the /v1/signals response (dict, JSON text or file) or a
        list of per-asset signals."""
        self._signals = signal_facts(signals, timestamp)

    def update_news(self, headlines: pd.DataFrame | str | Path,
                    config: NewsFactsConfig | None = None) -> None:
        """Headlines: a frame in the news store's columns (first_seen, title, summary,
        source, assets), a `quantum news collect` store folder or a parquet file of one.
        Sentiment facts per asset then cite the headlines behind them."""
        from news.schema import COLUMNS

        if isinstance(headlines, str | Path):
            path = Path(headlines)
            if path.is_dir():
                from news.store import NewsStore

                headlines = NewsStore(path).read()
            else:
                headlines = pd.read_parquet(path)
        missing = [c for c in ("first_seen", "title", "assets") if c not in headlines]
        if missing:
            raise ValueError(f"headlines lack columns {missing} (the news store's: "
                             f"{list(COLUMNS)})")
        self._news = scored(headlines.copy())
        self._news_config = config or NewsFactsConfig()

    def update_risk(self, report: Any) -> None:
        """A risk report (risk.report.RiskReport, its dict, JSON text or file)."""
        self._risk = risk_facts(report)

    def update_backtest(
        self, path_or_metrics: Any, end: Any = None, start: Any = None, name: str | None = None
    ) -> None:
        """A backtest report folder (or metrics.json, or a metrics dict with `end`).

        Its end (from steps.parquet, or `end`) is the cut-off for questions about it.
        """
        metrics, first, last = read_backtest(path_or_metrics)
        end = end if end is not None else last
        if end is None:
            raise ValueError("the backtest's end is unknown: pass end= (its last bar's time)")
        self._backtest_end = to_utc(end)
        self._backtest = backtest_facts(metrics, end, start if start is not None else first, name)

    def reset_conversation(self) -> None:
        self._history.clear()

    @property
    def history(self) -> tuple[Turn, ...]:
        return tuple(self._history)

    def facts(self, as_of: Any = None) -> Facts:
        """Every fact loaded; with `as_of`, only those at or before it (market facts are
        then recomputed from the bars up to `as_of`)."""
        cut = None if as_of is None else to_utc(as_of)
        if self._market is not None and cut not in self._market_facts:
            try:
                view = MarketView.build(self._market, self.facts_config, cut, self._market_asset)
                self._market_facts[cut] = view.facts()
            except ValueError:  # no bar at or before the cut-off: no market facts then
                self._market_facts[cut] = Facts()
        market = self._market_facts.get(cut, Facts())
        facts = market.merge(self._signals, self._risk, self._backtest, self._news_facts(cut))
        return facts if cut is None else facts.as_of(cut)

    def _news_facts(self, cut: pd.Timestamp | None) -> Facts:
        """The news as of ``cut``, else as of the last market bar's close (the moment the
        market facts describe), else as of the newest headline."""
        if self._news is None or self._news.empty:
            return Facts()
        now = cut
        if now is None and self._market is not None:
            index = to_aligned(self._market, self._market_asset).index
            now = index[-1] + (index[-1] - index[-2] if len(index) > 1 else pd.Timedelta(0))
        if now is None:
            now = pd.to_datetime(self._news["first_seen"], utc=True).max()
        return news_facts(self._news, self._assets_named(), now, self._news_config)

    def _assets_named(self) -> tuple[str, ...]:
        """Assets the loaded market and signals name, and those the headlines mention."""
        market = self._market_facts.get(None, Facts())
        signalled = [f.key.split(".")[1] for f in self._signals if f.key.endswith(".decision")]
        mentioned = [a for names in self._news["assets"] if names is not None for a in names]
        return tuple(dict.fromkeys(str(a) for a in (*market.assets, *signalled, *mentioned)))

    def _assets(self) -> tuple[str, ...]:
        facts = self.facts()
        signalled = [f.key.split(".")[1] for f in facts if f.key.endswith(".decision")]
        return tuple(dict.fromkeys([*facts.assets, *signalled])) or ("BTC",)

    def reply(self, message: str, conversation: Sequence[Any] | None = None) -> Reply:
        """Answer `message`. With `conversation` (earlier (question, answer) pairs or
        {"role", "content"} messages, e.g. from an HTTP client) that history is used and
        the chatbot's own is left alone; without it, the turn is remembered."""
        turns = self._history if conversation is None else _turns(conversation)
        previous = turns[-1].assets if turns else ()
        detected = detect(message, self._assets(), previous)
        as_of = self._backtest_end if detected.intent.name in _BACKTEST_INTENTS else None
        ctx = context(detected, self.facts(as_of))
        asked = [instantiate(k, detected.assets[0]) for k in detected.intent.asked]
        if asked and not any(k in ctx for k in asked):
            template = fallback_template(detected, ctx)
            used = tuple(ctx[k] for k in dict.fromkeys(PLACEHOLDER.findall(template)))
            result = Grounded(render(template, ctx), False, True, used, template,
                              problems=("the facts it asks about are not loaded",))
        else:
            prompt = self._prompt(ctx, message, turns, detected)
            raw = self.model.generate(
                prompt, max_new_tokens=self.config.max_new_tokens,
                temperature=self.config.temperature, stop=STOP,
            )
            result = ground(raw, ctx, detected, self.config.grounding)
        if conversation is None:
            self._history.append(Turn(message, result.template, result.text, detected.assets))
        return Reply(
            result.text,
            detected.intent.name,
            detected.assets,
            result.grounded,
            result.used_fallback,
            result.facts_used,
            result.raw,
            result.problems,
        )

    def chat(self, message: str) -> str:
        return self.reply(message).text

    def stream(self, message: str) -> Iterator[str]:
        """The answer in word-sized pieces. Grounding needs the whole answer before any of
        it can be shown, so the model writes it in full first; the checked text is then
        yielded piece by piece (the pieces join to exactly what ``chat`` returns)."""
        yield from re.findall(r"\S+\s*|\s+", self.reply(message).text)

    def _prompt(self, ctx: Facts, message: str, turns: Sequence[Turn], detected: Detected) -> str:
        """The prompt with as many recent turns as fit (at most max_history, oldest
        dropped first); the facts and question always fit, trimmed to the fallback
        answer's facts and then a shortened question if they alone are too long."""
        budget = self.model.context_length - self.config.max_new_tokens
        keep = self.config.max_history
        history = [(t.question, t.template) for t in turns[max(0, len(turns) - keep) :]]
        while True:
            prompt = format_prompt(ctx.render(), message, history)
            if not history or self.model.count_tokens(prompt) <= budget:
                break
            history = history[1:]
        if self.model.count_tokens(prompt) > budget:
            keys = PLACEHOLDER.findall(fallback_template(detected, ctx))
            ctx = ctx.select(keys)
            prompt = format_prompt(ctx.render(), message)
        while self.model.count_tokens(prompt) > budget and len(message) > 1:
            message = message[: len(message) // 2]
            prompt = format_prompt(ctx.render(), message)
        return prompt


def _turns(conversation: Sequence[Any]) -> list[Turn]:
    """(question, answer) pairs from pairs or from alternating role/content messages."""
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for item in conversation:
        if isinstance(item, dict):
            role, content = item.get("role"), str(item.get("content", ""))
            if role == "user":
                pending = content
            elif role == "assistant" and pending is not None:
                pairs.append((pending, content))
                pending = None
        else:
            question, answer = item
            pairs.append((str(question), str(answer)))
    return [Turn(q, a, a, ()) for q, a in pairs]


def load_market_chatbot(
    model_path: str | Path,
    base_model: str | Path | None = None,
    max_history: int = 5,
    device: str = "auto",
) -> MarketChatbot:
    """Load a model directory or LoRA adapter (local files only) as a chatbot."""
    from llm.model import LanguageModel

    model = LanguageModel.load(model_path, base_model=base_model, device=device)
    return MarketChatbot(model, ChatConfig(max_history=max_history))
