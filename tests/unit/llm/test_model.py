"""Tokenizer, base pretraining, LoRA fine-tune and inference on a tiny synthetic corpus.

One tiny base model and one adapter are built per module (a few seconds each) and shared
by the tests that only read them.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llm.model import LanguageModel
from llm.tokens import pair_examples
from llm.training import (
    BaseModelConfig,
    LoraConfigSpec,
    build_base,
    finetune_lora,
    train_tokenizer,
)

TINY = BaseModelConfig(
    vocab_size=512,
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=172,
    max_length=128,
    steps=150,
    batch_size=16,
    seq_len=64,
    lr=3e-3,
)
TINY_LORA = LoraConfigSpec(r=8, alpha=16, steps=120, batch_size=4, lr=1e-2)
PROMPT = "Q: where is BTC going?\nA:"
# Built from corpus words (tokens the tiny base has seen) in an order it never saw.
COMPLETION = " the trend is down with RSI 12.5 and BTC closed at 40000.0."


def _corpus(n: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(['BTC', 'ETH', 'SOL'])} closed at {rng.uniform(40000, 45000):.1f} "
        f"with RSI {rng.uniform(20, 80):.1f} and the trend is "
        f"{rng.choice(['up', 'down', 'flat'])}."
        for _ in range(n)
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, corpus: list[str]) -> tuple[Path, list]:
    """The tiny base model and the (step, total, loss) calls its build reported."""
    calls: list[tuple[int, int, float]] = []
    out = build_base(
        corpus,
        tmp_path_factory.mktemp("base"),
        TINY,
        provenance={"corpus": "synthetic-test"},
        progress=lambda step, total, loss: calls.append((step, total, loss)),
    )
    return out, calls


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, base: tuple[Path, list]) -> dict:
    """An adapter fine-tuned on one memorised pair, with base file hashes around it."""
    base_dir, _ = base
    before = {p.name: _sha256(p) for p in base_dir.iterdir()}
    out = finetune_lora(
        base_dir, [(PROMPT, COMPLETION)], tmp_path_factory.mktemp("lora"), TINY_LORA
    )
    after = {p.name: _sha256(p) for p in base_dir.iterdir()}
    return {"dir": out, "before": before, "after": after}


@pytest.fixture(scope="module")
def base_lm(base: tuple[Path, list]) -> LanguageModel:
    return LanguageModel.load(base[0], device="cpu")


@pytest.fixture(scope="module")
def tuned_lm(adapter: dict) -> LanguageModel:
    return LanguageModel.load(adapter["dir"], device="cpu")


# --- tokenizer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "BTC closed at 43120.5 with RSI 61.2 and the trend is up.",
        "  two leading spaces,\ttabs\nand newlines  ",
        "unseen bytes: é € 你好 🚀 \x00",
        "literal special tokens stay text: <s> </s> <pad>",
        "",
    ],
)
def test_tokenizer_round_trips_any_text_exactly(corpus: list[str], text: str) -> None:
    tokenizer = train_tokenizer(corpus, 512)

    ids = tokenizer.encode(text, add_special_tokens=False)

    assert tokenizer.decode(ids) == text
    assert not set(ids) & {tokenizer.bos_token_id, tokenizer.eos_token_id}


def test_tokenizer_prepends_bos_and_reloads_identically(corpus: list[str], tmp_path: Path) -> None:
    tokenizer = train_tokenizer(corpus, 512, out=tmp_path)
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    ids = tokenizer.encode(corpus[0])

    assert ids[0] == tokenizer.bos_token_id == reloaded.bos_token_id
    assert reloaded.encode(corpus[0]) == ids
    assert len(tokenizer) == 512
    assert (tokenizer.pad_token, tokenizer.eos_token) == ("<pad>", "</s>")


def test_tokenizer_rejects_a_vocab_smaller_than_the_byte_alphabet(corpus: list[str]) -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(corpus, 100)


# --- configs -----------------------------------------------------------------------


def test_configs_reject_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        BaseModelConfig(seq_len=1024, max_length=512)
    with pytest.raises(ValueError, match="divisible"):
        BaseModelConfig(hidden_size=250, num_heads=4)
    with pytest.raises(ValueError, match="steps"):
        LoraConfigSpec(steps=0)


# --- base pretraining --------------------------------------------------------------


def test_build_base_writes_model_tokenizer_and_provenance(
    base: tuple[Path, list], corpus: list[str]
) -> None:
    out, calls = base

    provenance = json.loads((out / "provenance.json").read_text())

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert provenance["corpus"] == "synthetic-test"
    assert provenance["config"]["hidden_size"] == TINY.hidden_size
    assert provenance["n_texts"] == len(corpus)
    assert len(provenance["texts_sha256"]) == 64
    assert provenance["steps"] == TINY.steps
    assert provenance["final_loss"] == pytest.approx(calls[-1][2])
    assert provenance["wall_seconds"] > 0
    assert set(provenance["versions"]) >= {"torch", "transformers", "peft", "tokenizers"}
    assert json.loads((out / "config.json").read_text())["max_position_embeddings"] == 128


def test_build_base_reports_every_step_and_the_loss_falls(base: tuple[Path, list]) -> None:
    _, calls = base

    assert [step for step, _, _ in calls] == list(range(1, TINY.steps + 1))
    assert {total for _, total, _ in calls} == {TINY.steps}
    first, last = calls[0][2], calls[-1][2]
    assert last < 0.5 * first


def test_build_base_is_deterministic_given_the_seed(corpus: list[str], tmp_path: Path) -> None:
    quick = replace(TINY, steps=3)

    a = build_base(corpus, tmp_path / "a", quick)
    b = build_base(corpus, tmp_path / "b", quick)
    c = build_base(corpus, tmp_path / "c", replace(quick, seed=1))

    weights = [load_file(p / "model.safetensors") for p in (a, b, c)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_build_base_records_the_precision_it_trained_in(
    corpus: list[str], tmp_path: Path, precision: str
) -> None:
    out = build_base(corpus, tmp_path, replace(TINY, steps=2, precision=precision))

    assert json.loads((out / "provenance.json").read_text())["precision"] == precision


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="precision"):
        BaseModelConfig(precision="float16")
    with pytest.raises(ValueError, match="precision"):
        LoraConfigSpec(precision="fp8")


# --- LoRA fine-tune ----------------------------------------------------------------


def test_pair_examples_learn_only_the_completion_as_generation_sees_it(
    base_lm: LanguageModel,
) -> None:
    tokenizer = base_lm.tokenizer
    prompt_ids = base_lm._prompt_ids(PROMPT, max_new_tokens=40)
    completion_ids = tokenizer.encode(COMPLETION, add_special_tokens=False)

    ids, labels, lengths = pair_examples(tokenizer, [(PROMPT, COMPLETION), ("a", "b")], 128)

    n = int(lengths[0])
    assert ids[0, :n].tolist() == [*prompt_ids, *completion_ids, tokenizer.eos_token_id]
    assert labels[0, : len(prompt_ids)].eq(-100).all()
    assert labels[0, len(prompt_ids) : n].tolist() == [*completion_ids, tokenizer.eos_token_id]
    assert labels[1, int(lengths[1]) :].eq(-100).all()
    assert ids[1, int(lengths[1]) :].eq(tokenizer.pad_token_id).all()


def test_pair_examples_cut_long_prompts_from_the_left_keeping_bos(
    base_lm: LanguageModel,
) -> None:
    tokenizer = base_lm.tokenizer
    long_prompt = " ".join(_corpus(10, seed=3)) + PROMPT

    ids, labels, lengths = pair_examples(tokenizer, [(long_prompt, COMPLETION)], 64)

    completion_ids = tokenizer.encode(COMPLETION, add_special_tokens=False)
    assert int(lengths[0]) == 64
    assert int(ids[0, 0]) == tokenizer.bos_token_id
    assert labels[0, -len(completion_ids) - 1 : -1].tolist() == completion_ids


def test_finetune_trains_only_the_adapter(adapter: dict) -> None:
    out = adapter["dir"]

    tensors = load_file(out / "adapter_model.safetensors")
    provenance = json.loads((out / "provenance.json").read_text())

    assert adapter["before"] == adapter["after"], "base model files changed"
    assert tensors and all("lora_" in name for name in tensors)
    assert provenance["n_trainable_params"] == sum(t.numel() for t in tensors.values())
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b), "lora_B starts at zero"


def test_adapter_config_names_the_base_by_absolute_path(
    adapter: dict, base: tuple[Path, list]
) -> None:
    config = json.loads((adapter["dir"] / "adapter_config.json").read_text())

    assert config["base_model_name_or_path"] == str(base[0].resolve())
    assert config["task_type"] == "CAUSAL_LM"
    assert (adapter["dir"] / "tokenizer.json").is_file()


def test_finetuned_adapter_reproduces_the_memorised_completion(tuned_lm: LanguageModel) -> None:
    assert tuned_lm.generate(PROMPT, max_new_tokens=40) == COMPLETION


def test_base_model_does_not_know_the_memorised_completion(base_lm: LanguageModel) -> None:
    assert base_lm.generate(PROMPT, max_new_tokens=40) != COMPLETION


def test_adapter_loads_with_an_explicit_base_model_too(
    adapter: dict, base: tuple[Path, list], tuned_lm: LanguageModel
) -> None:
    explicit = LanguageModel.load(adapter["dir"], base_model=base[0], device="cpu")

    assert explicit.generate(PROMPT, max_new_tokens=40) == tuned_lm.generate(
        PROMPT, max_new_tokens=40
    )


# --- inference ---------------------------------------------------------------------


@pytest.mark.parametrize("stop", [(), ("RSI",), ("12.5", "zzz")])
def test_stream_pieces_concatenate_to_generate(
    tuned_lm: LanguageModel, stop: tuple[str, ...]
) -> None:
    pieces = list(tuned_lm.stream(PROMPT, max_new_tokens=40, stop=stop))

    assert len(pieces) > 1
    assert "".join(pieces) == tuned_lm.generate(PROMPT, max_new_tokens=40, stop=stop)


def test_generate_cuts_at_the_first_stop_string(tuned_lm: LanguageModel) -> None:
    text = tuned_lm.generate(PROMPT, max_new_tokens=40, stop=["zzz", "RSI"])

    assert text == COMPLETION[: COMPLETION.index("RSI")]


def test_generate_respects_max_new_tokens(base_lm: LanguageModel) -> None:
    text = base_lm.generate("BTC closed at", max_new_tokens=3)

    assert 0 < base_lm.count_tokens(text) <= 3


def test_sampling_with_temperature_returns_text(base_lm: LanguageModel) -> None:
    text = base_lm.generate("BTC closed at", max_new_tokens=10, temperature=1.0)

    assert isinstance(text, str)
    assert base_lm.count_tokens(text) <= 10


def test_long_prompt_is_cut_from_the_left_to_fit(base_lm: LanguageModel) -> None:
    prompt = " ".join(_corpus(40, seed=1)) + " BTC closed at"
    assert base_lm.count_tokens(prompt) > base_lm.context_length

    ids = base_lm._prompt_ids(prompt, max_new_tokens=20)
    text = base_lm.generate(prompt, max_new_tokens=20)

    assert len(ids) == base_lm.context_length - 20 + 1  # <s> + all a caller may count
    assert ids[0] == base_lm.tokenizer.bos_token_id
    tail = base_lm.tokenizer.encode(prompt, add_special_tokens=False)[-50:]
    assert ids[-50:] == tail
    assert isinstance(text, str)


def test_a_prompt_within_the_counted_budget_is_not_cut(base_lm: LanguageModel) -> None:
    words = " ".join(_corpus(40, seed=2)).split(" ")
    prompt = ""
    while base_lm.count_tokens(prompt + " " + words[0]) <= base_lm.context_length - 20:
        prompt = f"{prompt} {words.pop(0)}"

    ids = base_lm._prompt_ids(prompt, max_new_tokens=20)

    assert ids[1:] == base_lm.tokenizer.encode(prompt, add_special_tokens=False)


def test_max_new_tokens_must_leave_room_for_the_prompt(base_lm: LanguageModel) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        base_lm.generate("BTC", max_new_tokens=base_lm.context_length)


def test_perplexity_is_lower_on_training_text_than_on_shuffled_tokens(
    base_lm: LanguageModel, corpus: list[str]
) -> None:
    rng = random.Random(0)
    shuffled = []
    for text in corpus[:20]:
        ids = base_lm.tokenizer.encode(text, add_special_tokens=False)
        rng.shuffle(ids)
        shuffled.append(base_lm.tokenizer.decode(ids))

    trained, scrambled = base_lm.perplexity(corpus[:20]), base_lm.perplexity(shuffled)

    assert 1.0 < trained < 0.2 * scrambled


def test_perplexity_of_no_tokens_is_an_error(base_lm: LanguageModel) -> None:
    with pytest.raises(ValueError, match="perplexity"):
        base_lm.perplexity([""])


def test_count_tokens_counts_no_special_tokens(base_lm: LanguageModel) -> None:
    assert base_lm.count_tokens("") == 0
    assert base_lm.count_tokens("BTC closed at") == len(
        base_lm.tokenizer.encode("BTC closed at", add_special_tokens=False)
    )


# --- loading errors ----------------------------------------------------------------


def test_load_of_a_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(FileNotFoundError, match="no-such-model"):
        LanguageModel.load(missing)


def test_load_of_a_directory_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")

    with pytest.raises(ValueError, match="not a model directory"):
        LanguageModel.load(tmp_path)


def test_load_of_an_adapter_whose_base_is_gone_names_the_base(
    adapter: dict, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="gone-base"):
        LanguageModel.load(adapter["dir"], base_model=tmp_path / "gone-base")


def test_load_of_an_adapter_whose_recorded_base_moved_says_to_pass_base_model(
    adapter: dict, tmp_path: Path
) -> None:
    moved = tmp_path / "adapter"
    moved.mkdir()
    for item in adapter["dir"].iterdir():
        (moved / item.name).write_bytes(item.read_bytes())
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "moved-away")
    (moved / "adapter_config.json").write_text(json.dumps(config))

    with pytest.raises(FileNotFoundError, match="pass base_model"):
        LanguageModel.load(moved)


def test_load_rejects_an_unknown_device(base: tuple[Path, list]) -> None:
    with pytest.raises(ValueError, match="device"):
        LanguageModel.load(base[0], device="tpu")
