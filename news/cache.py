"""Embedding and sentiment cache for headlines, keyed by content hash and model identity.

Layout: ``ROOT/news_embeddings/model=<model id>/part-*.parquet`` with columns ``hash``
(string), ``embedding`` (fixed-size list of float32) and ``sentiment`` (float32), plus an
``identity.json`` that says which model, settings and lexicon made the vectors. The model id
is the encoder's name and a fingerprint of its files, its settings and the sentiment
lexicon, so a different model (or the same one fine-tuned in place, or another lexicon)
never reads another's vectors.

Each batch of new headlines is one new part, written to a hidden temp file, fsynced, then
renamed with ``os.replace``: a reader sees a whole part or none, and a crash leaves only a
hidden temp file that readers ignore. Parts are append-only, so two writers never clobber
each other (at worst both encode the same headline; the first copy wins on read).

A part that cannot be read, or has the wrong columns, dimension or non-finite values, is an
error that names the file, not something skipped and rebuilt: parts are written atomically,
so a damaged one means something outside this code changed the cache (disk fault, hand
edit, a foreign file), and quietly re-encoding would hide that (corrupt data is worse than
no data). Deleting the named file is always safe; its headlines are encoded again.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from news.encode import Encoder, headline_text
from news.schema import content_hash
from news.sentiment import SentimentScorer

CACHE_DIR = "news_embeddings"
_REQUIRED = ("hash", "title", "summary")


class CorruptCacheError(ValueError):
    """A cache file that cannot be trusted; the message names it and what to do."""


class EmbeddingCache:
    """Embeddings and sentiment per headline, computed once per content hash and model.

    All cached rows are held in memory (384 float32 per headline: about 1.5 GB per million
    headlines); ``encode_frame`` encodes only hashes not seen before, in chunks of
    ``chunk_size`` (each chunk is written as soon as it is done, so an interrupted run keeps
    its work).
    """

    def __init__(
        self,
        root: Path | str,
        encoder: Encoder,
        scorer: SentimentScorer | None = None,
        chunk_size: int = 4096,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.encoder = encoder
        self.scorer = scorer or SentimentScorer()
        self.chunk_size = chunk_size
        self.model_id = f"{encoder.model_id}-{self.scorer.identity[:8]}"
        self.directory = Path(root) / CACHE_DIR / f"model={self.model_id}"
        self._index: dict[str, int] = {}
        self._embeddings = np.empty((0, encoder.dim), dtype=np.float32)
        self._sentiment = np.empty(0, dtype=np.float32)
        files = sorted(self.directory.glob("part-*.parquet"))
        parts = [_read_part(path, encoder.dim) for path in files]
        if parts:
            keys = [key for part_keys, _, _ in parts for key in part_keys]
            self._append(
                keys,
                np.concatenate([embeddings for _, embeddings, _ in parts]),
                np.concatenate([sentiment for _, _, sentiment in parts]),
            )

    def __len__(self) -> int:
        return len(self._index)

    def encode_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings ``[n, dim]`` float32 and sentiment ``[n]`` float32 for the frame's
        rows, in row order; ``frame`` needs the news schema's hash, title and summary."""
        missing = [column for column in _REQUIRED if column not in frame.columns]
        if missing:
            raise KeyError(f"encode_frame needs columns {list(_REQUIRED)}; missing {missing}")
        hashes = frame["hash"].tolist()
        if any(not isinstance(key, str) or not key for key in hashes):
            raise ValueError("every row needs a non-empty string 'hash' (news.schema)")
        new: dict[str, int] = {}
        for position, key in enumerate(hashes):
            if key not in self._index and key not in new:
                new[key] = position
        if new:
            self._encode_new(frame, list(new), list(new.values()))
        rows = np.fromiter((self._index[key] for key in hashes), dtype=np.int64, count=len(hashes))
        return self._embeddings[rows], self._sentiment[rows]

    def _encode_new(self, frame: pd.DataFrame, keys: list[str], positions: list[int]) -> None:
        titles = frame["title"].iloc[positions].tolist()
        summaries = frame["summary"].iloc[positions].fillna("").tolist()
        for key, title, summary in zip(keys, titles, summaries, strict=True):
            if content_hash(title, summary) != key:
                raise ValueError(
                    f"row with hash {key} does not match its title/summary "
                    "(news.schema.content_hash): refusing to cache vectors under a wrong key"
                )
        chars = self.encoder.config.summary_chars
        texts = [headline_text(t, s, chars) for t, s in zip(titles, summaries, strict=True)]
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_identity()
        for start in range(0, len(keys), self.chunk_size):
            chunk = slice(start, start + self.chunk_size)
            embeddings = self.encoder.encode(texts[chunk])
            sentiment = self.scorer.score(texts[chunk])
            self._write_part(keys[chunk], embeddings, sentiment)
            self._append(keys[chunk], embeddings, sentiment)

    def _append(self, keys: Sequence[str], embeddings: np.ndarray, sentiment: np.ndarray) -> None:
        """Add rows to memory; a hash already present (written twice by two concurrent
        writers) keeps its first copy."""
        fresh: list[int] = []
        for i, key in enumerate(keys):
            if key not in self._index:
                self._index[key] = len(self._index)
                fresh.append(i)
        self._embeddings = np.concatenate([self._embeddings, embeddings[fresh]])
        self._sentiment = np.concatenate([self._sentiment, sentiment[fresh]])

    def _write_part(
        self, keys: Sequence[str], embeddings: np.ndarray, sentiment: np.ndarray
    ) -> None:
        flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).ravel(), pa.float32())
        table = pa.table({
            "hash": pa.array(keys, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, self.encoder.dim),
            "sentiment": pa.array(sentiment, pa.float32()),
        })
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_write(self.directory / name, lambda handle: pq.write_table(table, handle))

    def _write_identity(self) -> None:
        path = self.directory / "identity.json"
        if path.exists():
            return
        identity = {
            "model_id": self.model_id,
            "model": self.encoder.name,
            "model_path": str(self.encoder.model_dir),
            "model_fingerprint": self.encoder.fingerprint,
            "dim": self.encoder.dim,
            "pooling": self.encoder.pooling,
            "max_tokens": self.encoder.max_tokens,
            "summary_chars": self.encoder.config.summary_chars,
            "sentiment_identity": self.scorer.identity,
        }
        payload = json.dumps(identity, indent=2).encode()
        _atomic_write(path, lambda handle: handle.write(payload))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a hidden temp file in the same folder, fsync, then rename into place."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def _read_part(path: Path, dim: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One part's hashes, embeddings and sentiment, or CorruptCacheError naming the file."""
    advice = "delete it (its headlines will be encoded again)"
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise CorruptCacheError(
            f"news embedding cache file {path} is unreadable ({exc}); {advice}"
        ) from exc
    expected = pa.schema([
        pa.field("hash", pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("sentiment", pa.float32()),
    ])
    if not table.schema.remove_metadata().equals(expected, check_metadata=False):
        raise CorruptCacheError(
            f"news embedding cache file {path} has schema {table.schema.to_string()!r}, "
            f"expected hash, embedding (list<float32>[{dim}]), sentiment; {advice}"
        )
    embedding_column = table.column("embedding").combine_chunks()
    nulls = sum(table.column(name).null_count for name in expected.names)
    if nulls or embedding_column.values.null_count:
        raise CorruptCacheError(f"news embedding cache file {path} has null values; {advice}")
    embeddings = embedding_column.flatten().to_numpy().reshape(-1, dim)
    sentiment = table.column("sentiment").to_numpy()
    if not (np.isfinite(embeddings).all() and np.isfinite(sentiment).all()):
        raise CorruptCacheError(f"news embedding cache file {path} has NaN/inf values; {advice}")
    return table.column("hash").to_pylist(), embeddings, sentiment
