"""The training corpus, generated from the project's own data in a few seconds.

The seed trained its model on random templates unrelated to any data, with no market
data in the prompt. Here every text comes from a snapshot of the synthetic market
(market.synthetic, as ``quantum data synth`` builds it): its bars, indicators and
causal regimes (llm.facts.MarketView), a policy-style signal in the /v1/signals format,
a risk report from the risk engine (risk.report) and the metrics of a rule backtest
over the days before the snapshot (backtest.sharpe). From those facts:

- pre-training texts: market notes with literal numbers, notes over a facts block
  with placeholders (``{BTC.close}``), and whole chat exchanges, so the base model
  learns the wording, the facts block and the placeholder syntax;
- instruction pairs: the chat prompt (facts relevant to the question, earlier turns,
  the question; llm.prompt) and the answer with placeholders.

Evaluation uses question templates never trained on (QUESTIONS' held-out part), over a
market generated with another seed (``seed + 1``), and held-out texts from that market
for perplexity. The signal is a seeded stand-in for the policy's (a trend-following
rule with noise): what the model learns is which fact answers which question, never a
value, so a stand-in teaches the same thing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backtest.sharpe import max_drawdown, per_period_rate, sharpe_ratio, sortino_ratio
from envs.config import EnvConfig
from envs.spaces import STYLES
from llm.facts import Facts, MarketView, backtest_facts, risk_facts, signal_facts
from llm.grounding import fallback_template, render
from llm.news_facts import news_facts, scored
from llm.prompt import (
    ALIASES,
    BY_NAME,
    END,
    INTENTS,
    Detected,
    context,
    detect,
    format_completion,
    format_prompt,
    instantiate,
)
from market.synthetic import SyntheticConfig, generate_market
from news.synthetic import SyntheticNewsConfig, synthetic_news
from risk.report import build_risk_report
from risk.stress import PortfolioSnapshot, hypothetical_scenarios, load_scenarios

_Q = dict[str, tuple[str, str]]
QUESTIONS: _Q = {
    "price": ("what is the $A price? | where is $A trading? | $A price? | how much is $A right "
              "now? | give me the latest $A quote | what did $A close at?",
              "what's $A trading at now? | current price of $A?"),
    "change": ("how much did $A move today? | is $A up or down today? | what is the 24h change "
               "of $A? | how has $A changed over the last day? | did $A gain or lose in the last "
               "hour?", "how did $A move over the past 24 hours? | $A change today?"),
    "trend": ("what is the trend of $A? | is $A in an uptrend or a downtrend? | what regime is "
              "$A in? | which direction is $A heading? | is $A bullish or bearish?",
              "describe the $A trend | what's the trend regime for $A?"),
    "news": ("what is the news sentiment on $A? | any headlines about $A? | what does the "
             "news say about $A? | is the press bullish on $A? | $A news?",
             "what stories are out on $A? | how is $A's media sentiment?"),
    "rsi": ("what is the RSI of $A? | is $A overbought? | is $A oversold? | $A RSI? | give me "
            "the relative strength index for $A", "what does the RSI say about $A? | rsi $A"),
    "macd": ("what is the MACD of $A? | what does the MACD histogram show for $A? | is $A "
             "momentum positive? | $A MACD?", "how does the $A MACD look? | macd reading $A"),
    "atr": ("what is the ATR of $A? | what is the average true range of $A? | $A ATR? | how "
            "big is the true range of $A?", "tell me the ATR for $A | atr of $A now?"),
    "volatility": ("how volatile is $A? | what is the volatility of $A? | is $A calm or wild? "
                   "| $A realised volatility?", "give me the $A volatility | how choppy is $A?"),
    "volume": ("what is the $A volume? | how much $A volume traded in 24h? | is $A liquid "
               "today? | $A trading volume?", "volume on $A? | what's the turnover of $A?"),
    "funding": ("what is the funding rate of $A? | who pays funding on $A? | $A funding? | "
                "what is the $A perp basis?", "tell me the $A funding rate | funding for $A now?"),
    "signal": ("what is the policy's signal for $A? | should I buy $A? | what position does the "
               "policy want in $A? | what is the agent's call on $A? | what stop-loss does the "
               "policy use for $A?", "what does the policy recommend for $A? | $A signal?"),
    "probabilities": ("how confident is the policy on $A? | what are the probabilities for $A? "
                      "| what are the odds the policy goes long $A? | how likely is a short on "
                      "$A?", "probabilities of the $A decision? | how sure is the model on $A?"),
    "var": ("what is the VaR? | what is the value at risk of the book? | what is the expected "
            "shortfall? | how risky is the book?", "tell me the tail risk | VaR and ES now?"),
    "leverage": ("what is the leverage? | how much margin is used? | what is the exposure of the "
                 "account? | what is our equity?", "how levered is the book? | leverage now?"),
    "alerts": ("are there any risk alerts? | is any limit breached? | what do the stress tests "
               "say? | any warnings?", "show me the alerts | did we hit a limit?"),
    "performance": ("how did the backtest perform? | what return did the backtest make? | "
                    "what were the backtest results? | how much profit did the policy make?",
                    "summarise the backtest | what was the historical performance?"),
    "sharpe": ("what is the Sharpe ratio of the backtest? | what Sortino did the policy get? | "
               "how good was the risk-adjusted return?", "sharpe? | what's the backtest sharpe?"),
    "drawdown": ("what was the max drawdown? | how deep was the worst drawdown? | what was the "
                 "peak-to-trough loss?", "worst drawdown of the backtest? | drawdown?"),
    "strategy": ("explain the strategy | how does the policy work on $A? | what is the logic "
                 "behind the model? | how do you decide?", "what is the approach of the "
                 "strategy? | explain how the model works"),
    "overview": ("how is the market? | give me a market overview | market summary please | how "
                 "are things in crypto?", "what's going on in the market? | overview?"),
    "help": ("hello | what can you do? | help | who are you?", "hi | hey there"),
}
"""Per intent: training question templates and held-out ones, separated by ' | '."""

_DAY_BARS = 1440
_MOMENTUM_BARS = 240
_FEE = 0.0004


class CorpusConfig(BaseModel):
    """What to generate; the same config and seed give the same corpus, byte for byte."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="Training market and choices; evaluation: seed + 1.")
    days: float = Field(20.0, gt=3, description="Days of 1-minute synthetic market per split.")
    assets: tuple[str, ...] = Field(("BTC", "ETH", "SOL"), min_length=1)
    snapshots: int = Field(400, ge=1, description="Moments sampled from the training market.")
    pairs_per_snapshot: int = Field(4, ge=1, description="Instruction pairs per moment.")
    texts_per_snapshot: int = Field(4, ge=1, description="Pre-training texts per moment.")
    risk_reports: int = Field(
        60, ge=1, description="Risk reports per market (each moment uses the latest one)."
    )
    eval_snapshots: int = Field(40, ge=1, description="Moments sampled from the eval market.")
    eval_per_snapshot: int = Field(4, ge=1, description="Held-out questions per eval moment.")
    history_share: float = Field(0.25, ge=0, le=1, description="Pairs with earlier turns.")
    missing_share: float = Field(
        0.08, ge=0, le=1, description="Pairs whose source is withheld (answer: 'not loaded')."
    )


@dataclass(frozen=True)
class EvalItem:
    """A held-out question with its context and the facts it asks for."""

    prompt: str
    question: str
    intent: str
    assets: tuple[str, ...]
    asked: tuple[str, ...]
    facts: Facts
    """The context the prompt carries (the grounding checks against it)."""


@dataclass(frozen=True)
class Corpus:
    pretrain: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    """(prompt, completion) instruction pairs."""
    eval_items: tuple[EvalItem, ...]
    heldout_texts: tuple[str, ...]
    """Texts from the evaluation market with held-out questions (perplexity)."""
    provenance: dict

    def write(self, folder: Path) -> None:
        """Save as JSON lines (for inspection and reuse) with provenance.json."""
        folder.mkdir(parents=True, exist_ok=True)
        rows = {
            "pretrain.jsonl": [{"text": t} for t in self.pretrain],
            "pairs.jsonl": [{"prompt": p, "completion": c} for p, c in self.pairs],
            "heldout.jsonl": [{"text": t} for t in self.heldout_texts],
            "eval.jsonl": [{k: v for k, v in asdict(e).items() if k != "facts"}
                           for e in self.eval_items],
        }
        for name, items in rows.items():
            (folder / name).write_text("".join(json.dumps(r) + "\n" for r in items))
        (folder / "provenance.json").write_text(json.dumps(self.provenance, indent=2))


def _sha(items: object) -> str:
    return hashlib.sha256(json.dumps(items, default=str).encode()).hexdigest()


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class _Market:
    """One synthetic market and the facts of its moments."""

    def __init__(self, cfg: CorpusConfig, seed: int):
        self.synthetic = SyntheticConfig(assets=cfg.assets, days=cfg.days, seed=seed)
        self.aligned = generate_market(self.synthetic).aligned()
        self.view = MarketView.build(self.aligned)
        closes = self.aligned.xs("close", axis=1, level="field")
        self.news = scored(synthetic_news(closes, SyntheticNewsConfig(
            seed=seed, move_quantile=0.95, min_gap_bars=120))[0])
        self.step = self.aligned.index[1] - self.aligned.index[0]
        self.closes = self.aligned.xs("close", axis=1, level="field").to_numpy()
        self.assets = cfg.assets
        limits = EnvConfig().limits
        self.budget = limits.max_concentration * limits.max_leverage
        self.scenarios = load_scenarios()[:2] + hypothetical_scenarios()[:1]
        rng = np.random.default_rng([seed, 1])
        moments = rng.integers(_DAY_BARS, len(self.aligned), size=cfg.risk_reports - 1)
        self.risk_at = np.unique(np.r_[2 * _DAY_BARS - 1, moments])  # one before any moment
        self.risk = [self._risk(int(i), rng) for i in self.risk_at]

    def facts(self, i: int, rng: np.random.Generator) -> Facts:
        """Bar i's market facts, a signal computed at i, a backtest ending at i, and the
        latest risk report at or before i (the risk engine runs periodically)."""
        market = self.view.facts(i)
        stamp = self.aligned.index[i]
        out = market.merge(self._signal(market, stamp, rng), self._backtest(i, rng),
                           news_facts(self.news, self.assets, stamp + self.step))
        k = int(np.searchsorted(self.risk_at, i, side="right")) - 1
        return out.merge(self.risk[k]) if k >= 0 else out

    def _signal(self, market: Facts, stamp: pd.Timestamp, rng: np.random.Generator) -> Facts:
        """A /v1/signals response from a noisy trend rule (a stand-in for the policy)."""
        signals = []
        for a in self.assets:
            lean = sum(f.direction or 0 for k in (f"{a}.trend", f"{a}.macd_state")
                       if (f := market.get(k)) is not None)
            p = _softmax(np.array([-0.8, 0.0, 0.8]) * lean + rng.normal(0.0, 1.0, 3))
            d, size = int(np.argmax(p)), float(rng.uniform(0.05, 1.0))
            signals.append({
                "asset": a, "decision": ("short", "flat", "long")[d], "size": size,
                "target_exposure": (d - 1) * size * self.budget,
                "stop_loss_atr": float(rng.uniform(1.0, 5.0)),
                "take_profit_atr": float(rng.uniform(1.5, 10.0)),
                "execution_style": str(rng.choice(STYLES)),
                "execution_horizon_bars": int(rng.integers(1, 31)),
                "probabilities": {"trade": dict(zip(("short", "flat", "long"), p.tolist(),
                                                    strict=True)), "style": {}},
            })
        value = float(rng.normal(0.0, 0.5))
        payload = {"model_id": "synthetic-rule", "data_timestamp": stamp.isoformat(),
                   "value": value, "signals": signals}
        return signal_facts(payload)

    def _risk(self, i: int, rng: np.random.Generator) -> Facts:
        """The risk engine's report on a random book priced at bar i."""
        equity = 1e6 * rng.uniform(0.6, 1.4)
        notional = rng.normal(0.0, 1.0, len(self.assets)) * equity * rng.uniform(0.1, 2.0)
        marks = self.closes[i]
        snapshot = PortfolioSnapshot(
            positions=dict(zip(self.assets, (notional / marks).tolist(), strict=True)),
            marks=dict(zip(self.assets, marks.tolist(), strict=True)),
            equity=equity, peak_equity=equity * rng.uniform(1.0, 1.35),
            day_start_equity=equity * rng.uniform(0.97, 1.06),
        )
        window = self.closes[i - _DAY_BARS : i + 1]
        returns = pd.DataFrame(window[1:] / window[:-1] - 1.0, columns=list(self.assets))
        prices = pd.DataFrame(window, columns=list(self.assets))
        stamp = self.aligned.index[i].to_pydatetime()
        alerts = logging.getLogger("risk.alerts")
        alerts.disabled = True  # the book is made up: its alerts are data, not warnings
        try:
            report = build_risk_report(
                snapshot, returns, methods=("historical",), scenarios=self.scenarios,
                prices=prices, now=stamp,
            )
        finally:
            alerts.disabled = False
        return risk_facts(report)

    def _backtest(self, i: int, rng: np.random.Generator) -> Facts:
        """Metrics of a time-series momentum rule over the 2-7 days before bar i."""
        lo = max(_MOMENTUM_BARS, i - int(rng.uniform(2.0, 7.0) * _DAY_BARS))
        px = self.closes
        position = np.sign(np.log(px[lo:i] / px[lo - _MOMENTUM_BARS : i - _MOMENTUM_BARS]))
        step = px[lo + 1 : i + 1] / px[lo:i] - 1.0
        turnover = np.abs(np.diff(position, axis=0, prepend=0.0)).mean(axis=1)
        strategy = (position * step).mean(axis=1) - _FEE * turnover
        equity = 1e6 * np.cumprod(np.r_[1.0, 1.0 + strategy])
        bench = np.cumprod(np.r_[1.0, 1.0 + step.mean(axis=1)])
        per_year = 365.0 * _DAY_BARS
        metrics = _return_metrics(equity, per_year)
        segment = np.cumsum(np.abs(np.diff(position, axis=0, prepend=0.0)) > 0, axis=0)
        pnl = [np.bincount(segment[:, a], position[:, a] * step[:, a])[1:]
               for a in range(len(self.assets))]
        trades = np.concatenate(pnl)
        metrics |= {
            "n_trades": len(trades),
            "win_rate": float((trades > 0).mean()) if len(trades) else None,
            "fees": float((_FEE * turnover * equity[:-1]).sum()),
            "benchmark_total_return": bench[-1] - 1.0,
            "excess_return": metrics["total_return"] - (bench[-1] - 1.0),
            "baselines": {"buy_and_hold": _return_metrics(1e6 * bench, per_year)},
        }
        index = self.aligned.index
        return backtest_facts(metrics, end=index[i], start=index[lo], name="momentum rule")


def _return_metrics(equity: np.ndarray, per_year: float) -> dict[str, float]:
    """The metrics.json return metrics (backtest.metrics' definitions) of an equity curve."""
    r = equity[1:] / equity[:-1] - 1.0
    rf = per_period_rate(0.03, per_year)
    total = float(equity[-1] / equity[0] - 1.0)
    return {
        "total_return": total,
        "annualized_return": (1.0 + total) ** (per_year / len(r)) - 1.0,
        "annualized_volatility": float(np.std(r, ddof=1) * np.sqrt(per_year)),
        "sharpe": sharpe_ratio(r, rf, per_year),
        "sortino": sortino_ratio(r, rf, per_year),
        "max_drawdown": max_drawdown(equity)[0],
    }


def _asset_name(asset: str, rng: np.random.Generator) -> str:
    """The asset as users write it: ticker, lower case, or its common name."""
    names = [asset, asset.lower(), *[k for k, v in ALIASES.items() if v == asset][:1]]
    return str(rng.choice(names))


def _choose(rng: np.random.Generator):
    return lambda options: options[int(rng.integers(len(options)))]


class _Writer:
    """Draws questions and answers for the moments of one market."""

    def __init__(self, market: _Market, cfg: CorpusConfig, split: int, rng: np.random.Generator):
        self.market, self.cfg, self.rng = market, cfg, rng
        self.questions = {k: [q.strip() for q in v[split].split("|")] for k, v in QUESTIONS.items()}

    def draw(self, n: int) -> list[str]:
        return [INTENTS[int(k)].name for k in self.rng.integers(len(INTENTS), size=n)]

    def moment(self) -> Facts:
        """A random moment's facts."""
        return self.market.facts(int(self.rng.integers(2 * _DAY_BARS, len(self.market.aligned))),
                                 self.rng)

    def exchange(
        self, facts: Facts, name: str, history: list, withhold: bool = True
    ) -> tuple[str, Detected, Facts, str]:
        """(question, what it asks, prompt context, answer with placeholders)."""
        rng = self.rng
        asset = str(rng.choice(self.market.assets))
        question = instantiate(str(rng.choice(self.questions[name])), _asset_name(asset, rng))
        if rng.random() < 0.5:
            question = question[0].upper() + question[1:]
        previous = history[-1][1].assets if history else ()
        detected = detect(question, self.market.assets, previous)
        if withhold and rng.random() < self.cfg.missing_share:
            facts = Facts(tuple(f for f in facts if f.source not in _SOURCES[detected.intent.name]))
        ctx = context(detected, facts)
        return question, detected, ctx, fallback_template(detected, ctx, choose=_choose(rng))

    def dialogue(self, facts: Facts, names: list[str]) -> list[tuple[str, str]]:
        """Instruction pairs over one moment; some carry the earlier turns as history."""
        turns, pairs = [], []
        for name in names:
            question, detected, ctx, answer = self.exchange(facts, name, turns)
            keep = int(self.rng.integers(1, 3)) if self.rng.random() < self.cfg.history_share else 0
            shown = [(q, a) for q, _, a in turns[-keep:]] if keep else []
            pairs.append((format_prompt(ctx.render(), question, shown), format_completion(answer)))
            turns.append((question, detected, answer))
        return pairs

    def note(self, facts: Facts, names: list[str]) -> str:
        """A market note over one moment: literal numbers, or a facts block + placeholders."""
        asset = str(self.rng.choice(self.market.assets))
        parts, ctx = [], Facts()
        for name in names:
            detected = Detected(BY_NAME[name], (asset,))
            block = context(detected, facts)
            ctx = ctx.merge(block)
            parts.append(fallback_template(detected, block, choose=_choose(self.rng)))
        text = " ".join(dict.fromkeys(parts))
        if self.rng.random() < 0.5:
            stamp = facts.items[0].timestamp
            return f"{asset} note, {stamp:%Y-%m-%d %H:%M} UTC. {render(text, facts)}"
        return f"<facts>\n{ctx.render()}\n</facts>\nNote: {text}{END}"


_MARKET_SOURCES = ("market", "indicator", "regime")
_SOURCES: dict[str, tuple[str, ...]] = {
    intent.name: ("signal",) if intent.name in ("signal", "probabilities", "strategy")
    else ("risk",) if intent.name in ("var", "leverage", "alerts")
    else ("backtest",) if intent.name in ("performance", "sharpe", "drawdown")
    else ("news",) if intent.name == "news"
    else () if intent.name == "help" else _MARKET_SOURCES
    for intent in INTENTS
}
"""The fact sources each intent's answer draws on (withheld to teach 'not loaded')."""


def _train_split(cfg: CorpusConfig, market: _Market, rng: np.random.Generator):
    writer = _Writer(market, cfg, 0, rng)
    pretrain, pairs = [], []
    for _ in range(cfg.snapshots):
        names = writer.draw(cfg.pairs_per_snapshot + cfg.texts_per_snapshot)
        facts = writer.moment()
        dialogue = writer.dialogue(facts, names[: cfg.pairs_per_snapshot])
        pairs += dialogue
        pretrain.append(dialogue[0][0] + dialogue[0][1])
        for k in range(cfg.texts_per_snapshot - 1):
            size = int(rng.integers(1, 4))
            start = cfg.pairs_per_snapshot + k
            pretrain.append(writer.note(facts, names[start : start + size]))
    return pretrain, pairs


def _eval_split(cfg: CorpusConfig, market: _Market, rng: np.random.Generator):
    writer = _Writer(market, cfg, 1, rng)
    askable = [i.name for i in INTENTS if i.asked]
    items, texts = [], []
    for n in range(cfg.eval_snapshots):
        first = n * cfg.eval_per_snapshot
        names = [askable[(first + k) % len(askable)] for k in range(cfg.eval_per_snapshot)]
        facts = writer.moment()
        for name in names:
            question, detected, ctx, answer = writer.exchange(facts, name, [], withhold=False)
            asked = tuple(instantiate(k, detected.assets[0]) for k in detected.intent.asked)
            prompt = format_prompt(ctx.render(), question)
            items.append(EvalItem(prompt, question, detected.intent.name, detected.assets,
                                  asked, ctx))
            texts.append(prompt + format_completion(answer))
        texts.append(writer.note(facts, names[:3]))
    return items, texts


def build_corpus(config: CorpusConfig | None = None) -> Corpus:
    """Generate the training texts, instruction pairs and held-out evaluation set."""
    cfg = config or CorpusConfig()
    rng = np.random.default_rng(cfg.seed)
    train_market, eval_market = _Market(cfg, cfg.seed), _Market(cfg, cfg.seed + 1)
    pretrain, pairs = _train_split(cfg, train_market, rng)
    items, heldout = _eval_split(cfg, eval_market, np.random.default_rng([cfg.seed, 2]))
    provenance = {
        "generator": "llm.corpus.build_corpus",
        "config": cfg.model_dump(mode="json"),
        "train_market": train_market.synthetic.model_dump(mode="json"),
        "eval_market": eval_market.synthetic.model_dump(mode="json"),
        "counts": {"pretrain": len(pretrain), "pairs": len(pairs), "eval_items": len(items),
                   "heldout_texts": len(heldout)},
        "sha256": {"pretrain": _sha(pretrain), "pairs": _sha(pairs),
                   "eval_items": _sha([(e.prompt, e.asked) for e in items]),
                   "heldout_texts": _sha(heldout)},
        "held_out_questions": {k: v[1] for k, v in QUESTIONS.items()},
    }
    return Corpus(tuple(pretrain), tuple(pairs), tuple(items), tuple(heldout), provenance)
