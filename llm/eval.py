"""How often the chatbot states the fact a held-out question asks for, before and after grounding.

A tiny model that learns the wording can look fluent while inventing every number, so the
evaluation reports both sides: the *raw* rates (the model's own answer, its placeholders
filled where they name real facts: does it state the asked fact? did it pass every
grounding check?) and the rates after grounding (what the user reads, fallback
included), with how often the fallback was needed, plus perplexity on held-out texts.
Questions come from templates never trained on, over a market generated with another
seed (llm.corpus).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llm.chatbot import TextModel
from llm.corpus import EvalItem
from llm.facts import Facts
from llm.grounding import GroundingConfig, ground, states
from llm.prompt import BY_NAME, PLACEHOLDER, STOP, Detected


@dataclass(frozen=True)
class EvalConfig:
    max_new_tokens: int = 96
    """Longest answer generated per question."""
    max_perplexity_texts: int = 200
    """Held-out texts scored for perplexity (they are long; this bounds the time)."""
    grounding: GroundingConfig = field(default_factory=GroundingConfig)


@dataclass(frozen=True)
class EvalReport:
    n: int
    raw_fact_accuracy: float
    """The model's own answer (placeholders filled) states every asked fact correctly."""
    raw_grounded_rate: float
    """The model's own answer passed every grounding check."""
    fact_accuracy: float
    """The answer shown (after grounding and fallback) states every asked fact correctly."""
    fallback_rate: float
    perplexity: float | None
    per_intent: dict[str, dict[str, float]]
    examples: list[dict[str, Any]]
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False))


def fill_known(answer: str, facts: Facts) -> str:
    """The answer with the placeholders that name facts filled (unknown ones left as
    written), i.e. what the model itself claimed."""
    return PLACEHOLDER.sub(lambda m: facts[m[1]].text if m[1] in facts else m[0], answer)


def score(raw: str, item: EvalItem, config: GroundingConfig) -> dict[str, Any]:
    """One question's outcome: raw and grounded correctness, fallback, problems."""
    detected = Detected(BY_NAME[item.intent], item.assets)
    result = ground(raw, item.facts, detected, config)
    asked = [item.facts[k] for k in item.asked if k in item.facts]
    raw_text = fill_known(raw.strip(), item.facts)
    return {
        "question": item.question,
        "intent": item.intent,
        "raw": raw.strip(),
        "answer": result.text,
        "raw_correct": bool(asked) and all(states(raw_text, f) for f in asked),
        "raw_grounded": result.grounded,
        "correct": bool(asked) and all(states(result.text, f) for f in asked),
        "used_fallback": result.used_fallback,
        "problems": list(result.problems),
    }


def evaluate(
    model: TextModel,
    items: Sequence[EvalItem],
    heldout_texts: Sequence[str] = (),
    config: EvalConfig | None = None,
    *,
    provenance: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Generate an answer to every item (greedy), score it, and measure perplexity."""
    cfg = config or EvalConfig()
    rows = []
    for n, item in enumerate(items, 1):
        raw = model.generate(
            item.prompt, max_new_tokens=cfg.max_new_tokens, temperature=0.0, stop=STOP
        )
        rows.append(score(raw, item, cfg.grounding))
        if progress is not None:
            progress(n, len(items))
    texts = list(heldout_texts)[: cfg.max_perplexity_texts]
    perplexity = model.perplexity(texts) if texts and hasattr(model, "perplexity") else None
    return EvalReport(
        n=len(rows),
        raw_fact_accuracy=_mean(r["raw_correct"] for r in rows),
        raw_grounded_rate=_mean(r["raw_grounded"] for r in rows),
        fact_accuracy=_mean(r["correct"] for r in rows),
        fallback_rate=_mean(r["used_fallback"] for r in rows),
        perplexity=None if perplexity is None or not math.isfinite(perplexity) else perplexity,
        per_intent=_per_intent(rows),
        examples=rows[:40],
        provenance=dict(provenance or {}),
    )


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else math.nan


def _per_intent(rows: list[dict]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["intent"]].append(row)
    keys = ("raw_correct", "raw_grounded", "correct", "used_fallback")
    return {
        name: {"n": len(group)} | {k: _mean(r[k] for r in group) for k in keys}
        for name, group in sorted(groups.items())
    }


def print_report(report: EvalReport, console: Console) -> None:
    """The one-screen summary: overall rates, then per intent."""
    table = Table(title=f"Chatbot evaluation on {report.n} held-out questions")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = (
        ("fact accuracy, raw model", f"{report.raw_fact_accuracy:.1%}"),
        ("raw answers passing grounding", f"{report.raw_grounded_rate:.1%}"),
        ("fact accuracy after grounding", f"{report.fact_accuracy:.1%}"),
        ("fallback rate", f"{report.fallback_rate:.1%}"),
        ("held-out perplexity", "n/a" if report.perplexity is None else f"{report.perplexity:.3f}"),
    )
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    detail = Table(title="per intent")
    for column in ("intent", "n", "raw correct", "raw grounded", "correct", "fallback"):
        detail.add_column(column, justify="left" if column == "intent" else "right")
    for name, m in report.per_intent.items():
        detail.add_row(name, str(m["n"]), f"{m['raw_correct']:.0%}", f"{m['raw_grounded']:.0%}",
                       f"{m['correct']:.0%}", f"{m['used_fallback']:.0%}")
    console.print(detail)
