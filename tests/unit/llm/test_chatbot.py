"""The chatbot: history limits, the backtest cut-off, and a real tiny model end to end
(chat, stream, reset, signal updates, and the CLI driven through a pipe)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from llm.chatbot import ChatConfig, MarketChatbot, load_market_chatbot
from llm.corpus import CorpusConfig, build_corpus
from llm.training import BaseModelConfig, LoraConfigSpec, build_base, finetune_lora

START = pd.Timestamp("2024-03-01", tz="UTC")
ROOT = Path(__file__).resolve().parents[3]


def hourly_bars(n: int = 72) -> pd.DataFrame:
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": close, "high": close + 1.0, "low": close - 1.0, "close": close,
         "volume": np.full(n, 10.0)},
        index=pd.date_range(START, periods=n, freq="1h"),
    )


def signals(decision: str, stamp: str = "2024-03-03T23:00:00+00:00") -> dict:
    probs = {"short": 0.1, "flat": 0.2, "long": 0.7}
    if decision == "short":
        probs = {"short": 0.6, "flat": 0.3, "long": 0.1}
    return {"model_id": "run@1", "data_timestamp": stamp, "value": 0.1, "signals": [{
        "asset": "BTC", "decision": decision, "size": 0.5, "target_exposure": 1.0,
        "stop_loss_atr": 2.0, "take_profit_atr": 4.0, "execution_style": "market",
        "execution_horizon_bars": 1, "probabilities": {"trade": probs, "style": {}},
    }]}


class FakeModel:
    """Counts words as tokens and records every prompt it is given."""

    def __init__(self, answer: str = "BTC last traded at {BTC.close}.", context_length=400):
        self.answer, self.context_length, self.prompts = answer, context_length, []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompt, *, max_new_tokens, temperature, stop):
        self.prompts.append(prompt)
        return self.answer


def fake_bot(model: FakeModel, max_history: int = 5) -> MarketChatbot:
    bot = MarketChatbot(model, ChatConfig(max_history=max_history, max_new_tokens=20))
    bot.update_market_data(hourly_bars())
    return bot


def test_history_is_capped_at_max_history_pairs():
    model = FakeModel()
    bot = fake_bot(model, max_history=2)
    for n in range(4):
        bot.chat(f"what is the BTC price? ({n})")
    bot.chat("what is the BTC price? (last)")
    prompt = model.prompts[-1]
    assert "(0)" not in prompt and "(1)" not in prompt
    assert "(2)" in prompt and "(3)" in prompt and "(last)" in prompt
    assert len(bot.history) == 5


def test_history_is_trimmed_oldest_first_to_the_context_length():
    model = FakeModel(context_length=90)
    bot = fake_bot(model, max_history=5)
    for n in range(6):
        bot.chat(f"what is the BTC price? ({n})")
    prompt = model.prompts[-1]
    kept = [n for n in range(5) if f"({n})" in prompt]
    assert model.count_tokens(prompt) <= 90 - 20
    assert kept and kept == list(range(kept[0], 5)) and kept[0] > 0  # a suffix, oldest gone
    assert "BTC.close = 171.00 USDC" in prompt and "(5)" in prompt


def test_facts_and_question_always_fit_a_tiny_context():
    model = FakeModel(context_length=50)
    bot = fake_bot(model)
    bot.chat("what is the BTC price? " + "please " * 40)
    assert model.count_tokens(model.prompts[-1]) <= 50 - 20
    assert "BTC.close = 171.00 USDC" in model.prompts[-1]
    assert "User: what is the BTC price? please" in model.prompts[-1]


def test_a_backtest_question_sees_no_fact_after_the_backtest_end():
    model = FakeModel(answer="The backtest returned {backtest.total_return}.")
    bot = fake_bot(model)
    end = START + pd.Timedelta(hours=40)
    bot.update_signals(signals("long"))  # stamped after the backtest
    bot.update_backtest({"total_return": 0.05, "sharpe": 1.2, "max_drawdown": 0.1}, end=end)
    reply = bot.reply("how did the backtest perform?")
    assert reply.grounded and reply.text == "The backtest returned +5.00%."
    cut = bot.facts(as_of=end)
    assert max(f.timestamp for f in cut) == end
    assert cut["BTC.close"].value == 140.0 and "signal.BTC.decision" not in cut
    stamps = [pd.Timestamp(s, tz="UTC") for s in re_stamps(model.prompts[-1])]
    assert stamps and max(stamps) <= end


def re_stamps(prompt: str) -> list[str]:
    import re

    return re.findall(r"as of (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", prompt)


def test_missing_data_is_said_without_asking_the_model():
    model = FakeModel()
    bot = fake_bot(model)
    reply = bot.reply("what is the policy's signal for BTC?")
    assert reply.used_fallback and model.prompts == []
    assert reply.text.startswith("No policy signal for BTC is loaded")


def test_a_given_conversation_is_used_and_the_own_history_left_alone():
    model = FakeModel()
    bot = fake_bot(model)
    conversation = [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "Hi."},
    ]
    bot.reply("what is the BTC price?", conversation=conversation)
    assert "User: hello there\nAssistant: Hi.<end>" in model.prompts[-1]
    assert bot.history == ()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real (tiny) base model and LoRA adapter built with llm.training."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: threads only contend (25x slower on a busy box)
    try:
        out = tmp_path_factory.mktemp("tiny_llm")
        corpus = build_corpus(CorpusConfig(days=4, snapshots=40, eval_snapshots=2, risk_reports=4))
        base = BaseModelConfig(
            vocab_size=1024, hidden_size=64, num_layers=2, num_heads=2,
            intermediate_size=172, steps=150, batch_size=8, seq_len=256,
        )
        build_base(list(corpus.pretrain), out / "base", base)
        lora = LoraConfigSpec(r=8, alpha=16, steps=150, batch_size=8)
        finetune_lora(out / "base", list(corpus.pairs), out / "adapter", lora)
        yield out / "adapter"
    finally:
        torch.set_num_threads(threads)


@pytest.fixture()
def bot(tiny_model):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    chatbot = load_market_chatbot(tiny_model, device="cpu")
    chatbot.update_market_data(hourly_bars())
    yield chatbot
    torch.set_num_threads(threads)


def test_real_model_answers_with_the_facts(bot):
    reply = bot.reply("what is the BTC price?")
    assert reply.intent == "price" and reply.text
    assert "171.00 USDC" in reply.text  # the model's placeholder or the fallback's
    assert reply.grounded != reply.used_fallback
    assert "BTC.close" in {f.key for f in reply.facts_used}


def test_stream_joins_to_what_chat_returns(bot):
    first = bot.chat("what is the RSI of BTC?")
    bot.reset_conversation()
    pieces = list(bot.stream("what is the RSI of BTC?"))
    assert len(pieces) > 1 and "".join(pieces) == first


def test_reset_clears_the_conversation(bot):
    bot.chat("what is the BTC price?")
    bot.chat("and its RSI?")
    assert len(bot.history) == 2
    bot.reset_conversation()
    assert bot.history == ()


def test_update_signals_changes_the_facts_of_the_answer(bot):
    bot.update_signals(signals("long"))
    first = bot.reply("what is the policy's signal for BTC?")
    bot.update_signals(signals("short"))
    second = bot.reply("what is the policy's signal for BTC?")
    decision = {f.key: f.value for f in first.facts_used}.get("signal.BTC.decision")
    later = {f.key: f.value for f in second.facts_used}.get("signal.BTC.decision")
    assert (decision, later) == ("long", "short")
    assert "long" in first.text and "short" in second.text


def test_cli_through_a_pipe(tiny_model, tmp_path):
    csv = tmp_path / "bars.csv"
    hourly_bars().rename_axis("timestamp").reset_index().to_csv(csv, index=False)
    signal_file = tmp_path / "signals.json"
    signal_file.write_text(json.dumps(signals("long")))
    command = [sys.executable, "-m", "llm.cli", "--model-path", str(tiny_model),
               "--market-data", str(csv), "--trading-signals", str(signal_file),
               "--max-history", "3", "--device", "cpu"]
    done = subprocess.run(
        command, input="what is the BTC price?\n/reset\n/quit\nnever answered\n",
        capture_output=True, text=True, cwd=ROOT, timeout=240,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "171.00 USDC" in lines[0]
    assert "\x1b[" not in done.stdout
    assert "conversation reset" in done.stderr


def test_a_backtest_that_ends_before_the_bars_begin_leaves_no_market_facts():
    model = FakeModel(answer="The backtest returned {backtest.total_return}.")
    bot = fake_bot(model)
    bot.update_backtest({"total_return": -0.05}, end=START - pd.Timedelta(days=1))
    reply = bot.reply("what return did the backtest make?")
    assert reply.text == "The backtest returned -5.00%."
    assert "BTC.close" not in bot.facts(as_of=START - pd.Timedelta(days=1))


def test_the_chatbot_library_does_not_import_the_cli():
    """llm.cli imports llm.chatbot; the library never imports the CLI back (no cycle)."""
    import ast

    import llm.chatbot

    tree = ast.parse(Path(llm.chatbot.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"llm.cli", "typer", "rich", "quantum.cli"}


def test_a_news_sentiment_answer_cites_the_headlines_behind_it_and_only_those_seen_by_then():
    seen = START + pd.Timedelta(hours=60)
    headlines = pd.DataFrame({
        "first_seen": [seen, seen + pd.Timedelta(hours=5), seen + pd.Timedelta(hours=30),
                       seen - pd.Timedelta(hours=30)],
        "title": ["Bitcoin surges on ETF approval hopes", "Bitcoin developers schedule an upgrade",
                  "Bitcoin crashes through support on panic selling", "Bitcoin plunges on hack"],
        "summary": ["", "", "", ""], "source": ["coindesk"] * 4,
        "assets": [["BTC"], ["BTC"], ["BTC"], ["BTC"]]})
    model = FakeModel("News sentiment on BTC is {news.BTC.tone} ({news.BTC.sentiment}), "
                      "from {news.BTC.headline_1}.")
    bot = fake_bot(model)
    bot.update_news(headlines)

    reply = bot.reply("What is the news sentiment on bitcoin?")

    assert reply.intent == "news" and reply.grounded
    assert reply.text.startswith("News sentiment on BTC is bullish (")
    assert '"Bitcoin surges on ETF approval hopes" (coindesk, 2024-03-03 12:00 UTC)' in reply.text
    facts = bot.facts()
    assert facts["news.BTC.count"].value == 2  # at the last bar's close: 2 of 4 (1 later, 1 old)
    assert "crashes" not in " ".join(f.text for f in facts)  # first seen after the last bar
    assert facts["news.BTC.sentiment"].value > 0.05
    with pytest.raises(ValueError, match="lack columns"):
        bot.update_news(headlines.drop(columns=["first_seen"]))
