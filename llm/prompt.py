"""The chat prompt format and the catalogue of question intents, shared by the corpus
(training), the chatbot (inference) and the grounding (fallback answers).

The seed trained its model on one prompt and served it another; here one function
builds both. An intent names what a question asks (a price, a 24h change, the
policy's signal...), the facts that answer it, and answer templates whose values are
placeholders such as ``{BTC.close}``: the model is trained to write those, the
grounding fills them from the facts, and the first template whose facts are all
present is the fallback answer when the model's own answer fails its checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llm.facts import Facts

END = "<end>"
"""Written by the model after its answer; generation stops on it."""
STOP = (END, "\nUser:")
ASSET = "$A"
"""Stands for the asset in templates: ``{$A.close}`` becomes ``{BTC.close}``."""
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")
ALIASES = {"bitcoin": "BTC", "xbt": "BTC", "ether": "ETH", "ethereum": "ETH", "solana": "SOL"}

Scope = Literal["asset", "market", "account", "none"]


@dataclass(frozen=True)
class Intent:
    """One kind of question: how to recognise it, what answers it, how to phrase it."""

    name: str
    scope: Scope
    """asset: about one asset; market: all assets; account: risk/backtest; none: no facts."""
    pattern: str
    """Regex (case-insensitive) of the words that signal this intent; more hits win."""
    answers: tuple[str, ...]
    """Answer templates with placeholders; the first usable one is the fallback."""
    asked: tuple[str, ...] = ()
    """Keys the question asks for (evaluation checks these are stated correctly)."""
    each: str = ""
    """For market scope: a sentence per asset appended to the answer."""
    missing: str = "I have no data loaded to answer that."
    """The answer when the facts it needs are not loaded (no numbers in it)."""
    weight: float = 1.0
    """Keyword hits are multiplied by this: specific words (RSI) beat general ones (price)."""

    def keys(self, assets: Sequence[str], template: str | None = None) -> tuple[str, ...]:
        """Fact keys the intent's templates (or one template) use, for these assets."""
        texts = [template] if template is not None else list(self.answers)
        if self.each:
            texts.append(self.each)
        keys = []
        for text in texts:
            for asset in assets if ASSET in text else [""]:
                keys += PLACEHOLDER.findall(instantiate(text, asset))
        return tuple(dict.fromkeys(keys))


def instantiate(template: str, asset: str) -> str:
    return template.replace(ASSET, asset)


_MARKET_MISSING = "I have no market data for $A loaded; pass bars with update_market_data."
_SIGNAL_MISSING = (
    "No policy signal for $A is loaded, so I cannot say what the policy does; "
    "load one with update_signals or --trading-signals."
)
_RISK_MISSING = "No risk report is loaded; load one with update_risk."
_NEWS_MISSING = "No news about $A is loaded; load headlines with update_news."
_BACKTEST_MISSING = "No backtest is loaded; load a report folder with update_backtest."
_STRATEGY = (
    "The policy is a hierarchical PPO agent trained on perpetual futures: for each asset it "
    "first picks a trade decision, then a position size given that decision, then stop-loss "
    "and take-profit distances in ATR multiples and an execution style."
)

_PATTERNS: dict[str, tuple[float, str]] = {
    "price": (1, r"\bprice|how much is|\btrading\b|trad(e|es|ing) at|\bworth|\bcost|\bquote"
              r"|\blevel|\bclos(e|ed|ing)\b"),
    "change": (1, r"\bchang|\bmov(e|ed|es|ing)\b|\bup\b|\bdown\b|\bgain|\blos[st]|\bdrop|\bfell\b"
               r"|\bris(e|en)\b|today|\bhour|\b24 ?h\b|\bday\b"),
    "trend": (1, r"trend|regime|direction|\bbull|\bbear|heading"),
    "news": (2, r"\bnews|headline|sentiment|\bstor(y|ies)\b|\bmedia\b|\bpress\b|\breported"),
    "rsi": (2, r"\brsi\b|relative strength|overbought|oversold"),
    "macd": (2, r"\bmacd|histogram|momentum|signal line"),
    "atr": (2, r"\batr\b|average true range|true range|range per bar"),
    "volatility": (1.5, r"volatil|\bvol\b|choppy|\bcalm|\bwild|\bswing"),
    "volume": (1.5, r"\bvolume|liquid|activity|turnover"),
    "funding": (1.5, r"\bfund|\bbasis|premium|\bcarry|\bperp"),
    "signal": (1, r"\bsignal|\bpolic|\bposition|recommend|should i|\bbuy\b|\bsell\b|\bdecision"
               r"|\bcall\b|\bagent|\blong\b|\bshort\b|stop.loss|take.profit|execut"),
    "probabilities": (2.5, r"probab|confiden|\blikel|\bchance|\bodds\b|\bsure\b|certain"),
    "var": (1.5, r"\bvar\b|value at risk|shortfall|\bes\b|\btail|risky|\brisk\b"),
    "leverage": (1.5, r"\blever|\bmargin|exposure|\bequity|\baccount|book size"),
    "alerts": (2, r"alert|\blimit|warning|breach|stress|scenario|danger"),
    "performance": (1.2, r"backtest|perform|\breturn|profit|\bpnl\b|\bresult|histor|win rate"
                    r"|\btrades\b|\bmade\b"),
    "sharpe": (2, r"sharpe|sortino|risk.adjusted"),
    "drawdown": (2, r"drawdown|\bworst|deepest|peak.to|underwater"),
    "strategy": (1, r"strateg|how does|how do you|explain|approach|\bwork|\blogic|\bmodel\b"
                 r"|\breason|\bwhy\b"),
    "overview": (0.8, r"\bmarket|overview|summary|everything|\bcrypto|how are things"),
    "help": (0.5, r"\bhelp|\bhello|\bhi\b|\bhey\b|what can you|who are you"),
}
"""Per intent: a weight (specific words beat general ones) and the words that signal it."""


def _intent(name: str, scope: Scope, answers: tuple[str, ...], **kwargs) -> Intent:
    weight, pattern = _PATTERNS[name]
    return Intent(name, scope, pattern, answers, weight=weight, **kwargs)


INTENTS: tuple[Intent, ...] = (
    _intent("price", "asset", (
        "$A last traded at {$A.close}.",
        "$A is at {$A.close}, with a 24h range of {$A.low_24h} to {$A.high_24h}.",
        "The latest $A close is {$A.close} ({$A.change_24h} over 24 hours).",
    ), asked=("$A.close",), missing=_MARKET_MISSING),
    _intent("change", "asset", (
        "$A moved {$A.change_24h} over the last 24 hours and {$A.change_1h} over the last "
        "hour; it now trades at {$A.close}.",
        "Over 24 hours $A changed {$A.change_24h}, so it is {$A.direction_24h} on the day.",
        "$A's 24h change is {$A.change_24h} and its 1h change is {$A.change_1h}.",
        "$A changed {$A.change_24h} over 24 hours.",
    ), asked=("$A.change_24h",), missing=_MARKET_MISSING),
    _intent("trend", "asset", (
        "$A's trend regime is {$A.trend}, with {$A.vol_regime}.",
        "The trend regime for $A is {$A.trend}; over 24 hours it moved {$A.change_24h}.",
        "$A's trend reads {$A.trend} while the wider market is {market.trend}.",
        "The trend regime of $A is {$A.trend}.",
    ), asked=("$A.trend",), missing=_MARKET_MISSING),
    _intent("rsi", "asset", (
        "$A's RSI is {$A.rsi}, which reads {$A.rsi_state}.",
        "RSI for $A stands at {$A.rsi} ({$A.rsi_state}).",
        "With an RSI of {$A.rsi}, $A looks {$A.rsi_state}.",
        "RSI for $A is {$A.rsi}.",
    ), asked=("$A.rsi",), missing=_MARKET_MISSING),
    _intent("macd", "asset", (
        "$A's MACD is {$A.macd} against a signal line of {$A.macd_signal}; the histogram at "
        "{$A.macd_hist} is {$A.macd_state}.",
        "The MACD of $A reads {$A.macd} with a histogram of {$A.macd_hist}, a {$A.macd_state} "
        "setup.",
        "MACD {$A.macd}, signal {$A.macd_signal}: momentum on $A is {$A.macd_state}.",
        "The MACD of $A is {$A.macd}.",
    ), asked=("$A.macd",), missing=_MARKET_MISSING),
    _intent("atr", "asset", (
        "$A's ATR is {$A.atr}, or {$A.atr_pct} of the price.",
        "The average true range of $A is {$A.atr} ({$A.atr_pct} of its price).",
        "$A moves about {$A.atr} per bar on average (ATR, {$A.atr_pct} of price).",
        "The ATR of $A is {$A.atr}.",
    ), asked=("$A.atr",), missing=_MARKET_MISSING),
    _intent("volatility", "asset", (
        "$A's realised volatility is {$A.volatility_daily} a day ({$A.volatility_annual} "
        "annualised), a {$A.vol_regime} regime.",
        "Daily volatility of $A is {$A.volatility_daily}; annualised that is "
        "{$A.volatility_annual}.",
        "$A shows {$A.vol_regime}, with a daily volatility of {$A.volatility_daily}.",
        "The daily volatility of $A is {$A.volatility_daily}.",
    ), asked=("$A.volatility_daily",), missing=_MARKET_MISSING),
    _intent("volume", "asset", (
        "$A traded {$A.volume_24h} over the last 24 hours, {$A.volume_change} against the day "
        "before.",
        "The 24h volume for $A is {$A.volume_24h}.",
        "$A's volume over the past day was {$A.volume_24h} ({$A.volume_change} day on day).",
    ), asked=("$A.volume_24h",), missing=_MARKET_MISSING),
    _intent("funding", "asset", (
        "$A's last funding rate was {$A.funding_rate}, so {$A.funding_side}.",
        "Funding on $A is {$A.funding_rate} per funding period: {$A.funding_side}.",
        "The $A perp last funded at {$A.funding_rate} with a basis of {$A.basis}; "
        "{$A.funding_side}.",
        "The last funding rate of $A was {$A.funding_rate}.",
    ), asked=("$A.funding_rate",), missing=_MARKET_MISSING),
    _intent("signal", "asset", (
        "The policy's latest signal for $A is {signal.$A.decision} at {signal.$A.size} of its "
        "budget, with a stop-loss at {signal.$A.stop_loss} and a take-profit at "
        "{signal.$A.take_profit}.",
        "For $A the policy says {signal.$A.decision} ({signal.$A.confidence} probability), "
        "executed as {signal.$A.execution_style} over {signal.$A.execution_horizon}.",
        "Signal on $A: {signal.$A.decision}, size {signal.$A.size}, target exposure "
        "{signal.$A.target_exposure}.",
        "The policy's signal for $A is {signal.$A.decision}.",
    ), asked=("signal.$A.decision",), missing=_SIGNAL_MISSING),
    _intent("probabilities", "asset", (
        "The policy's probabilities for $A are P(long) {signal.$A.p_long}, P(flat) "
        "{signal.$A.p_flat} and P(short) {signal.$A.p_short}; it picked {signal.$A.decision}.",
        "For $A the trade head gives P(long) = {signal.$A.p_long}, P(flat) = "
        "{signal.$A.p_flat}, P(short) = {signal.$A.p_short}.",
        "$A: P(long) {signal.$A.p_long}, P(flat) {signal.$A.p_flat}, P(short) "
        "{signal.$A.p_short}, so the decision is {signal.$A.decision} with "
        "{signal.$A.confidence}.",
    ), asked=("signal.$A.p_long", "signal.$A.p_flat", "signal.$A.p_short"),
        missing=_SIGNAL_MISSING),
    _intent("news", "asset", (
        "News sentiment on $A is {news.$A.tone} ({news.$A.sentiment}) over {news.$A.count} "
        "headlines; the one that weighs most: {news.$A.headline_1}.",
        "Headlines on $A read {news.$A.tone} ({news.$A.sentiment}): {news.$A.headline_1}; "
        "{news.$A.headline_2}.",
        "$A's news tone is {news.$A.tone}, scored {news.$A.sentiment}, led by "
        "{news.$A.headline_1}.",
        "News sentiment on $A is {news.$A.tone} ({news.$A.sentiment}), from "
        "{news.$A.headline_1}.",
    ), asked=("news.$A.sentiment",), missing=_NEWS_MISSING),
    _intent("var", "account", (
        "At 95% confidence the book's one-step VaR is {risk.var_95} and its expected "
        "shortfall {risk.es_95}; at 99% confidence they are {risk.var_99} and {risk.es_99}.",
        "One-step VaR is {risk.var_95} at the 95% level, with an ES of {risk.es_95}.",
        "The 95% VaR of the book is {risk.var_95} and the 99% VaR {risk.var_99}.",
        "The book's one-step VaR at the 95% level is {risk.var_95}.",
    ), asked=("risk.var_95",), missing=_RISK_MISSING),
    _intent("leverage", "account", (
        "The book runs at {risk.leverage} leverage on {risk.equity} of equity, with a margin "
        "ratio of {risk.margin_ratio}.",
        "Leverage is {risk.leverage}: gross exposure {risk.gross_exposure}, net "
        "{risk.net_exposure}.",
        "Current leverage is {risk.leverage} and the margin ratio is {risk.margin_ratio}.",
        "The book's leverage is {risk.leverage}.",
    ), asked=("risk.leverage",), missing=_RISK_MISSING),
    _intent("alerts", "account", (
        "There are {risk.alerts} risk alerts; the first reads: {risk.alert}.",
        "Risk alerts: {risk.alerts} ({risk.alert}). The worst stress scenario is "
        "{risk.worst_stress} at {risk.worst_stress_pnl}.",
        "{risk.alerts} alerts are open: {risk.alert}.",
    ), asked=("risk.alerts",), missing=_RISK_MISSING),
    _intent("performance", "account", (
        "The backtest returned {backtest.total_return} against {backtest.benchmark_return} "
        "for buy-and-hold, with a Sharpe ratio of {backtest.sharpe} and a maximum drawdown of "
        "{backtest.max_drawdown}.",
        "From {backtest.start} to {backtest.end} the policy made {backtest.total_return} over "
        "{backtest.n_trades} trades, winning {backtest.win_rate} of them.",
        "Backtest result: {backtest.total_return} in total, Sharpe {backtest.sharpe}, "
        "drawdown {backtest.max_drawdown}.",
        "The backtest returned {backtest.total_return}.",
    ), asked=("backtest.total_return",), missing=_BACKTEST_MISSING),
    _intent("sharpe", "account", (
        "The backtest's annualised Sharpe ratio is {backtest.sharpe} (Sortino "
        "{backtest.sortino}).",
        "Sharpe {backtest.sharpe}, Sortino {backtest.sortino}, on a total return of "
        "{backtest.total_return}.",
        "Risk-adjusted, the backtest scored a Sharpe ratio of {backtest.sharpe}.",
    ), asked=("backtest.sharpe",), missing=_BACKTEST_MISSING),
    _intent("drawdown", "account", (
        "The backtest's maximum drawdown was {backtest.max_drawdown}; its total return was "
        "{backtest.total_return}.",
        "At worst the policy fell {backtest.max_drawdown} from its peak.",
        "Maximum drawdown: {backtest.max_drawdown}, against {backtest.total_return} in total.",
    ), asked=("backtest.max_drawdown",), missing=_BACKTEST_MISSING),
    _intent("strategy", "asset", (
        _STRATEGY + " Its current call on $A is {signal.$A.decision}.",
        _STRATEGY,
    )),
    _intent("overview", "market", (
        "The market trend is {market.trend}, with {market.vol_regime}.",
        "The market trend is {market.trend}.",
    ), asked=("market.trend",), each=" $A is at {$A.close} ({$A.change_24h} over 24 hours).",
        missing="I have no market data loaded; pass bars with update_market_data."),
    _intent("help", "none", (
        "I answer questions about prices, 24h changes, trends and regimes, RSI, MACD, ATR, "
        "volatility, volume, funding, news sentiment and its headlines, the policy's signals "
        "and probabilities, risk (VaR, "
        "leverage, alerts) and backtest performance, using only the data loaded.",
    )),
)
BY_NAME = {intent.name: intent for intent in INTENTS}


@dataclass(frozen=True)
class Detected:
    """What a question asks: the intent and the assets it is about."""

    intent: Intent
    assets: tuple[str, ...]


def mentioned_assets(text: str, assets: Sequence[str]) -> tuple[str, ...]:
    """Assets named in `text` (by ticker or common name), in order of appearance."""
    names = {a.lower(): a for a in assets} | {k: v for k, v in ALIASES.items() if v in assets}
    found = re.finditer(r"[A-Za-z]+", text)
    return tuple(dict.fromkeys(names[m.group().lower()] for m in found
                               if m.group().lower() in names))


def detect(question: str, assets: Sequence[str], previous: Sequence[str] = ()) -> Detected:
    """The intent with most keyword hits (ties: catalogue order; none: help) and the assets
    named, else the ones the conversation was about, else the first asset."""
    scores = [(i.weight * len(re.findall(i.pattern, question, re.IGNORECASE)), -n, i)
              for n, i in enumerate(INTENTS)]
    best = max(scores, key=lambda s: s[:2])
    intent = best[2] if best[0] > 0 else BY_NAME["help"]
    named = mentioned_assets(question, assets) or tuple(a for a in previous if a in assets)
    return Detected(intent, named or tuple(assets[:1]))


def format_prompt(facts_block: str, question: str, history: Sequence[tuple[str, str]] = ()) -> str:
    """The prompt the model continues: facts, earlier turns, the question, 'Assistant:'."""
    turns = [f"User: {q}\nAssistant: {a}{END}" for q, a in history]
    return "\n".join([f"<facts>\n{facts_block}\n</facts>", *turns,
                      f"User: {question.strip()}\nAssistant:"])


def format_completion(answer: str) -> str:
    """What the model is trained to write after 'Assistant:'."""
    return f" {answer}{END}"


def context(detected: Detected, facts: Facts) -> Facts:
    """The facts a question's prompt carries: those its intent's templates use, for the
    assets it is about (all assets for a market overview), in the facts' own order.

    A short context keeps the prompt inside a small model's window and leaves it fewer
    wrong keys to pick from; the grounding checks the answer against this context.
    """
    intent = detected.intent
    assets = facts.assets if intent.scope == "market" else detected.assets
    wanted = set(intent.keys(assets))
    return Facts(tuple(f for f in facts if f.key in wanted))
