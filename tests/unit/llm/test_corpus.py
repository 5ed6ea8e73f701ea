"""The corpus: deterministic for a seed, grounded in the market's facts, held-out split apart."""

import re

import pytest

from llm.corpus import QUESTIONS, CorpusConfig, build_corpus
from llm.grounding import DEFAULT_IGNORE
from llm.prompt import ALIASES, END, PLACEHOLDER, detect, instantiate

SMALL = CorpusConfig(days=4, snapshots=30, eval_snapshots=8, risk_reports=5)


@pytest.fixture(scope="module")
def corpus():
    return build_corpus(SMALL)


def _questions(split: int) -> set[str]:
    names = ["BTC", "ETH", "SOL", "btc", "eth", "sol", *ALIASES]
    out = set()
    for pair in QUESTIONS.values():
        for template in pair[split].split("|"):
            for name in names:
                text = instantiate(template.strip(), name)
                out |= {text, text[0].upper() + text[1:]}
    return out


def _asked(prompt: str) -> str:
    return re.findall(r"User: (.*)\nAssistant:", prompt)[-1]


def test_same_seed_same_corpus_and_another_seed_differs(corpus):
    again = build_corpus(SMALL)
    assert again.provenance["sha256"] == corpus.provenance["sha256"]
    assert again.pairs == corpus.pairs
    other = build_corpus(SMALL.model_copy(update={"seed": 1}))
    assert other.provenance["sha256"]["pairs"] != corpus.provenance["sha256"]["pairs"]


def test_counts_and_provenance(corpus):
    counts = corpus.provenance["counts"]
    assert counts["pairs"] == len(corpus.pairs) == 30 * SMALL.pairs_per_snapshot
    assert counts["eval_items"] == len(corpus.eval_items) == 8 * SMALL.eval_per_snapshot
    assert corpus.provenance["train_market"]["seed"] == 0
    assert corpus.provenance["eval_market"]["seed"] == 1


def test_held_out_questions_are_never_trained_on(corpus):
    train, held_out = _questions(0), _questions(1)
    assert not train & held_out
    trained = {_asked(prompt) for prompt, _ in corpus.pairs}
    assert trained <= train
    assert {item.question for item in corpus.eval_items} <= held_out
    pretrained = {q for text in corpus.pretrain for q in re.findall(r"User: (.*)\n", text)}
    assert pretrained and not pretrained & held_out


def test_every_question_template_is_recognised_as_its_intent():
    for name, (train, held_out) in QUESTIONS.items():
        for template in (train + "|" + held_out).split("|"):
            question = instantiate(template.strip(), "ETH")
            assert detect(question, ("BTC", "ETH", "SOL")).intent.name == name, question


def test_answers_only_name_facts_their_prompt_carries(corpus):
    for prompt, completion in corpus.pairs:
        shown = set(re.findall(r"^([\w.]+) = ", prompt, re.MULTILINE))
        facts_block = prompt.split("</facts>")[0]
        keys = set(PLACEHOLDER.findall(completion))
        assert keys <= set(re.findall(r"^([\w.]+) = ", facts_block, re.MULTILINE)) <= shown
        assert completion.endswith(END)
        prose = PLACEHOLDER.sub("", completion)
        for pattern in DEFAULT_IGNORE:
            prose = re.sub(pattern, "", prose, flags=re.IGNORECASE)
        assert not re.search(r"\d", prose), completion  # every number is a placeholder


def test_pretraining_has_literal_and_placeholder_forms(corpus):
    assert any(PLACEHOLDER.search(t) and "<facts>" in t for t in corpus.pretrain)
    literal = [t for t in corpus.pretrain if " note, " in t]
    assert literal and not any(PLACEHOLDER.search(t) for t in literal)


def test_eval_items_ask_for_facts_in_their_context(corpus):
    for item in corpus.eval_items:
        assert item.asked and all(key in item.facts for key in item.asked), item.question
        assert item.prompt.startswith("<facts>") and item.prompt.endswith("Assistant:")
