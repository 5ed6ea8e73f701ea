"""Headline encoding offline: the encoder, VADER sentiment with the crypto lexicon, and the
embedding cache keyed by content hash and model identity. The packaged all-MiniLM-L6-v2
is loaded once per module; other models are tiny or symlinked copies."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer, BertConfig, BertModel

from news.cache import CorruptCacheError, EmbeddingCache
from news.encode import Encoder, EncoderConfig, headline_text, packaged_model_path
from news.schema import content_hash
from news.sentiment import SentimentScorer

_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
HEADLINES = [
    "Bitcoin surges to record high",
    "BTC rallies to all-time high",
    "Ethereum developers delay upgrade",
    "Solana network suffers outage",
    "",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different (random, 32-dim) BERT saved as a plain Hugging Face directory."""
    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(packaged_model_path(), local_files_only=True).save_pretrained(
        path
    )
    return path


def _frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "hash": [content_hash(title, summary) for title, summary in pairs],
        "title": [title for title, _ in pairs],
        "summary": [summary for _, summary in pairs],
    })


def _count_texts(monkeypatch: pytest.MonkeyPatch, encoder: Encoder) -> list[int]:
    """Replace encoder.encode by a wrapper that records how many texts each call got."""
    calls: list[int] = []
    original = encoder.encode

    def counting(texts, batch_size=None):
        calls.append(len(texts))
        return original(texts, batch_size)

    monkeypatch.setattr(encoder, "encode", counting)
    return calls


PAIRS = [
    ("Bitcoin surges to record high", "Spot ETF inflows hit a new peak."),
    ("Exchange hacked, $100M stolen", "Withdrawals are paused."),
    ("Ethereum developers delay upgrade", ""),
]


# encoder


def test_embeddings_are_unit_norm_float32_of_the_model_dimension(encoder: Encoder) -> None:
    vectors = encoder.encode(HEADLINES)

    assert vectors.shape == (len(HEADLINES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic_and_independent_of_batching(encoder: Encoder) -> None:
    together = encoder.encode(HEADLINES)
    again = encoder.encode(HEADLINES)
    one_by_one = np.vstack([encoder.encode([text]) for text in HEADLINES])

    np.testing.assert_array_equal(together, again)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(HEADLINES, batch_size=2), together, atol=1e-5)


def test_same_story_in_other_words_is_closer_than_an_unrelated_one(encoder: Encoder) -> None:
    record, rally, delay = encoder.encode(HEADLINES[:3])

    assert record @ rally > record @ delay + 0.3
    assert record @ rally > rally @ delay + 0.3


def test_pooling_equals_sentence_transformers_on_the_packaged_model(encoder: Encoder) -> None:
    long_text = "Bitcoin funding rates climb as leveraged longs pile in. " * 30
    texts = [*HEADLINES, long_text]
    reference = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    reference.max_seq_length = encoder.max_tokens

    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    np.testing.assert_allclose(encoder.encode(texts), expected, atol=1e-5)


def test_plain_hf_directory_mean_pools_to_the_same_vectors(
    encoder: Encoder, tmp_path: Path
) -> None:
    for item in packaged_model_path().iterdir():
        if item.is_file() and item.name not in _ST_FILES:
            (tmp_path / item.name).symlink_to(item)

    plain = Encoder(EncoderConfig(model_path=tmp_path))

    assert plain.pooling == "mean"
    np.testing.assert_allclose(plain.encode(HEADLINES), encoder.encode(HEADLINES), atol=1e-6)


def test_missing_model_path_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "finbert-not-here"
    with pytest.raises(FileNotFoundError, match="finbert-not-here"):
        Encoder(EncoderConfig(model_path=missing))
    with pytest.raises(FileNotFoundError, match="sentence-transformers/all-MiniLM-L6-v2"):
        Encoder(EncoderConfig(model_path=Path("sentence-transformers/all-MiniLM-L6-v2")))
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        Encoder(EncoderConfig(model_path=tmp_path))


def test_loading_and_encoding_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def blocked(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by test")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)

    vectors = Encoder().encode(HEADLINES[:2])

    assert attempts == []
    assert vectors.shape == (2, 384)


def test_config_is_frozen_and_rejects_unknown_keys() -> None:
    config = EncoderConfig()
    with pytest.raises(ValidationError):
        EncoderConfig(batchsize=8)
    with pytest.raises(ValidationError):
        config.batch_size = 8  # type: ignore[misc]


def test_headline_text_is_title_then_summary_cut_at_a_word() -> None:
    text = headline_text("BTC hits 100k", "Traders cheer the milestone loudly", summary_chars=20)

    assert text == "BTC hits 100k. Traders cheer the"
    assert headline_text("Is BTC back?", "Yes.") == "Is BTC back? Yes."
    assert headline_text("Title only", "") == "Title only"
    assert headline_text("Title", "summary", summary_chars=0) == "Title"


# sentiment

POSITIVE = [
    "Bitcoin surges to record high",
    "BTC rallies to all-time high as ETF inflows jump",
    "SEC approves spot bitcoin ETF",
]
NEGATIVE = [
    "Exchange hacked, $100M stolen",
    "Bridge exploit drains DeFi protocol",
    "$500M in longs liquidated as BTC plunges",
    "Binance to delist three tokens",
]


def test_sentiment_signs_on_clear_headlines_within_bounds_and_deterministic() -> None:
    scorer = SentimentScorer()

    positive, negative = scorer.score(POSITIVE), scorer.score(NEGATIVE)

    assert (positive > 0.3).all(), positive
    assert (negative < -0.3).all(), negative
    assert positive.dtype == np.float32
    np.testing.assert_array_equal(scorer.score(POSITIVE), positive)
    assert scorer.score(["Ethereum developers schedule a call"])[0] == 0.0


def test_crypto_lexicon_moves_scores_that_plain_vader_misses() -> None:
    crypto, plain = SentimentScorer(), SentimentScorer({})
    texts = [
        "Analysts turn bullish on Solana",
        "Analysts turn bearish on Solana",
        "Binance to delist three tokens",
        "Bitcoin ETF approval expected this week",
        "SEC lawsuit hits Coinbase",
        "Token pump and dump scheme exposed",
    ]

    with_lexicon, without = crypto.score(texts), plain.score(texts)

    assert with_lexicon[0] > 0.3 and without[0] == 0.0
    assert with_lexicon[1] < -0.3 and without[1] == 0.0
    assert with_lexicon[2] < -0.3 and without[2] == 0.0
    assert with_lexicon[3] > without[3] + 0.05
    assert with_lexicon[4] < without[4] - 0.05
    assert with_lexicon[5] < without[5] - 0.05
    assert crypto.score(["Analysts are not bullish on Solana"])[0] < 0
    assert crypto.identity != plain.identity


def test_lexicon_valences_outside_vaders_scale_are_rejected() -> None:
    with pytest.raises(ValueError, match="moon"):
        SentimentScorer({"moon": 9.0})


# cache


def test_cache_encodes_each_hash_once_across_calls_and_restarts(
    encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame([*PAIRS, PAIRS[0]])
    calls = _count_texts(monkeypatch, encoder)

    embeddings, sentiment = EmbeddingCache(tmp_path, encoder).encode_frame(frame)
    first_calls = sum(calls)
    reloaded = EmbeddingCache(tmp_path, encoder)
    again, again_sentiment = reloaded.encode_frame(frame)
    after_reload = sum(calls)
    reloaded.encode_frame(_frame([*PAIRS, ("SOL rebounds after outage", "")]))

    assert first_calls == 3
    assert after_reload == 3
    assert sum(calls) == 4
    expected = encoder.encode([headline_text(t, s) for t, s in frame[["title", "summary"]].values])
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)
    np.testing.assert_array_equal(again, embeddings)
    np.testing.assert_array_equal(again_sentiment, sentiment)
    assert sentiment[1] < 0 < sentiment[0]


def test_cache_writes_one_part_per_chunk_and_leaves_no_temp_files(
    encoder: Encoder, tmp_path: Path
) -> None:
    frame = _frame([(f"Headline number {i}", "") for i in range(5)])

    cache = EmbeddingCache(tmp_path, encoder, chunk_size=2)
    cache.encode_frame(frame)

    names = sorted(path.name for path in cache.directory.iterdir())
    assert cache.directory.parent.name == "news_embeddings"
    assert cache.directory.name.startswith("model=all-MiniLM-L6-v2-")
    assert len([name for name in names if name.startswith("part-")]) == 3
    assert [name for name in names if not name.startswith("part-")] == ["identity.json"]
    assert len(EmbeddingCache(tmp_path, encoder)) == 5


def test_another_model_or_lexicon_never_reuses_cached_vectors(
    encoder: Encoder, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame(PAIRS)
    default = EmbeddingCache(tmp_path, encoder)
    default.encode_frame(frame)
    tiny = Encoder(EncoderConfig(model_path=tiny_model_dir))
    tiny_calls = _count_texts(monkeypatch, tiny)
    other_lexicon_calls = _count_texts(monkeypatch, encoder)

    tiny_cache = EmbeddingCache(tmp_path, tiny)
    tiny_vectors, _ = tiny_cache.encode_frame(frame)
    EmbeddingCache(tmp_path, encoder, SentimentScorer({})).encode_frame(frame)

    assert tiny_calls == [3]
    assert other_lexicon_calls == [3]
    assert tiny_vectors.shape == (3, 32)
    assert tiny_cache.directory != default.directory
    assert len(list((tmp_path / "news_embeddings").iterdir())) == 3


def test_corrupt_cache_file_is_an_error_naming_it(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, encoder)
    cache.encode_frame(_frame(PAIRS))
    part = next(cache.directory.glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:100])

    with pytest.raises(CorruptCacheError, match=part.name):
        EmbeddingCache(tmp_path, encoder)


def test_cache_file_with_another_dimension_is_an_error_naming_it(
    encoder: Encoder, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path, encoder)
    cache.encode_frame(_frame(PAIRS))
    part = next(cache.directory.glob("part-*.parquet"))
    pd.DataFrame({"hash": ["x"], "embedding": [[0.0, 1.0]], "sentiment": [0.0]}).to_parquet(part)

    with pytest.raises(CorruptCacheError, match=part.name):
        EmbeddingCache(tmp_path, encoder)


def test_row_whose_hash_does_not_match_its_text_is_refused(
    encoder: Encoder, tmp_path: Path
) -> None:
    frame = _frame(PAIRS)
    frame.loc[0, "title"] = "A different headline"

    with pytest.raises(ValueError, match=frame.loc[0, "hash"]):
        EmbeddingCache(tmp_path, encoder).encode_frame(frame)
