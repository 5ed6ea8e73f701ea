"""Headline encoding throughput: our Encoder against sentence-transformers, and the cache.

    .venv/bin/python benchmarks/news_encoder.py [--count 2000] [--batch-sizes 32 128]
        [--model-path DIR] [--threads N]

Generates `count` seeded crypto headlines (title plus a one-sentence summary, joined as
news.encode.headline_text does), then encodes them with news.encode.Encoder and with
sentence-transformers' own SentenceTransformer.encode on the same local model, the same
texts and the same token limit (both strictly from local files), at each batch size (one
warm-up batch first, then one timed pass each). It checks both give the same vectors
(max |diff|) and times the embedding cache: the first encode_frame (encode, score, write
parquet), re-opening the cache from disk, and a fully cached encode_frame (the lookup).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sentence_transformers import SentenceTransformer

from news.cache import EmbeddingCache
from news.encode import Encoder, EncoderConfig, headline_text
from news.schema import content_hash
from news.sentiment import SentimentScorer

_ASSETS = ("Bitcoin", "BTC", "Ethereum", "ETH", "Solana", "SOL", "XRP", "Dogecoin", "BNB")
_TITLES = (
    "{asset} surges {pct}% as ETF inflows accelerate",
    "{asset} slides {pct}% after ${size}M in long liquidations",
    "{venue} to delist {asset} perpetuals next week",
    "{asset} funding rates turn negative as traders turn bearish",
    "Analysts turn bullish on {asset} ahead of network upgrade",
    "{venue} hacked, ${size}M drained from hot wallet",
    "SEC lawsuit against {venue} weighs on {asset}",
    "{asset} open interest hits record ${size}M on {venue}",
    "{asset} developers delay upgrade to next quarter",
    "Whale moves ${size}M of {asset} to {venue}",
)
_SUMMARIES = (
    "Traders on {venue} point to rising open interest and positive funding.",
    "The move follows a week of thin liquidity across major venues.",
    "Analysts expect volatility to stay elevated into the weekly close.",
    "On-chain data show exchange outflows at a three-month high.",
    "",
)
_VENUES = ("Binance", "Bybit", "OKX", "Coinbase", "Kraken", "a DeFi bridge")


def generate_headlines(count: int, seed: int = 7) -> pd.DataFrame:
    """Seeded crypto headlines with the news schema's hash, title and summary columns."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        fields = {
            "asset": rng.choice(_ASSETS),
            "venue": rng.choice(_VENUES),
            "pct": rng.randint(2, 25),
            "size": rng.randint(5, 900),
        }
        title = rng.choice(_TITLES).format(**fields)
        summary = rng.choice(_SUMMARIES).format(**fields)
        rows.append((content_hash(title, summary), title, summary))
    return pd.DataFrame(rows, columns=["hash", "title", "summary"])


def _timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--model-path", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = EncoderConfig(**({"model_path": args.model_path} if args.model_path else {}))
    frame = generate_headlines(args.count)
    encoder, load_seconds = _timed(Encoder, config)
    pairs = zip(frame.title, frame.summary, strict=True)
    texts = [headline_text(title, summary, config.summary_chars) for title, summary in pairs]
    reference = SentenceTransformer(str(encoder.model_dir), device="cpu", local_files_only=True)
    reference.max_seq_length = encoder.max_tokens

    result: dict[str, object] = {
        "headlines": len(texts),
        "model": encoder.model_id,
        "dim": encoder.dim,
        "max_tokens": encoder.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "encoder_load_seconds": round(load_seconds, 3),
    }
    max_diff = 0.0
    for size in args.batch_sizes:
        encoder.encode(texts[:size], batch_size=size)
        reference.encode(texts[:size], batch_size=size, normalize_embeddings=True)
        ours, ours_seconds = _timed(encoder.encode, texts, batch_size=size)
        theirs, st_seconds = _timed(
            reference.encode, texts, batch_size=size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        max_diff = max(max_diff, float(np.abs(ours - theirs).max()))
        result[f"ours_headlines_per_s_batch{size}"] = round(len(texts) / ours_seconds, 1)
        result[f"sentence_transformers_headlines_per_s_batch{size}"] = round(
            len(texts) / st_seconds, 1
        )
    result["max_abs_diff_vs_sentence_transformers"] = max_diff

    scorer = SentimentScorer()
    _, sentiment_seconds = _timed(scorer.score, texts)
    result["sentiment_headlines_per_s"] = round(len(texts) / sentiment_seconds, 1)
    with tempfile.TemporaryDirectory() as root:
        cache = EmbeddingCache(root, encoder, scorer)
        _, cold_seconds = _timed(cache.encode_frame, frame)
        reopened, open_seconds = _timed(EmbeddingCache, root, encoder, scorer)
        _, cached_seconds = _timed(reopened.encode_frame, frame)
    result["unique_headlines"] = len(cache)
    result["cache_cold_headlines_per_s"] = round(len(texts) / cold_seconds, 1)
    result["cache_open_seconds"] = round(open_seconds, 4)
    result["cached_lookup_headlines_per_s"] = round(len(texts) / cached_seconds, 1)
    print(json.dumps(result))  # noqa: T201
    if max_diff > 1e-4:
        raise SystemExit(f"our vectors differ from sentence-transformers' by {max_diff}")


if __name__ == "__main__":
    main()
