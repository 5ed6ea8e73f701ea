"""The evaluation separates what the model got right from what the fallback rescued."""

import json

import pandas as pd
import pytest
from rich.console import Console

from llm.corpus import EvalItem
from llm.eval import evaluate, fill_known, print_report
from llm.facts import Fact, Facts

T = pd.Timestamp("2024-03-01", tz="UTC")
FACTS = Facts((
    Fact("BTC.close", 43210.47, "price", T, "market"),
    Fact("BTC.change_24h", -1.5, "signed_pct", T, "market"),
    Fact("BTC.change_1h", 0.2, "signed_pct", T, "market"),
    Fact("BTC.rsi", 61.0, "number", T, "indicator"),
    Fact("BTC.rsi_state", "neutral", "text", T, "indicator"),
))
ITEMS = (
    EvalItem("price?", "price?", "price", ("BTC",), ("BTC.close",), FACTS),
    EvalItem("change?", "change?", "change", ("BTC",), ("BTC.change_24h",), FACTS),
    EvalItem("rsi?", "rsi?", "rsi", ("BTC",), ("BTC.rsi",), FACTS),
)


class ScriptedModel:
    context_length = 512

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompt, *, max_new_tokens, temperature, stop):
        return self.answers[prompt]

    def perplexity(self, texts):
        return 3.5


def test_a_model_that_writes_the_right_placeholders_needs_no_fallback():
    model = ScriptedModel({"price?": "BTC last traded at {BTC.close}.",
                           "change?": "BTC moved {BTC.change_24h} over 24 hours.",
                           "rsi?": "RSI for BTC is {BTC.rsi}."})
    report = evaluate(model, ITEMS, ["some held-out text"])
    assert report.raw_fact_accuracy == 1.0 and report.raw_grounded_rate == 1.0
    assert report.fact_accuracy == 1.0 and report.fallback_rate == 0.0
    assert report.perplexity == 3.5 and report.n == 3


def test_invented_numbers_count_as_raw_errors_and_are_replaced():
    model = ScriptedModel({"price?": "BTC last traded at 40,000 USDC.",
                           "change?": "BTC rose {BTC.change_24h} today.",
                           "rsi?": "RSI for BTC is {BTC.rsi}."})
    report = evaluate(model, ITEMS)
    assert report.raw_fact_accuracy == pytest.approx(2 / 3)  # the change was stated, wrongly
    assert report.raw_grounded_rate == pytest.approx(1 / 3)
    assert report.fallback_rate == pytest.approx(2 / 3)
    assert report.fact_accuracy == 1.0
    assert report.per_intent["price"]["used_fallback"] == 1.0
    assert report.perplexity is None


def test_report_is_printed_and_saved_as_json(tmp_path):
    model = ScriptedModel({k.prompt: "no idea" for k in ITEMS})
    report = evaluate(model, ITEMS, provenance={"model_path": "x"})
    assert report.raw_fact_accuracy == 0.0 and report.fact_accuracy == 1.0
    report.save(tmp_path / "eval.json")
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["fallback_rate"] == 1.0 and saved["provenance"] == {"model_path": "x"}
    console = Console(record=True, width=120)
    print_report(report, console)
    assert "fact accuracy after grounding" in console.export_text()


def test_fill_known_leaves_unknown_placeholders_visible():
    assert fill_known("{BTC.close} {BTC.nope}", FACTS) == "43,210.47 USDC {BTC.nope}"
