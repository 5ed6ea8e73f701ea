"""Tokenizer training and the step from strings to training tensors.

The tokenizer is byte-level BPE, so every string round-trips exactly (numbers, symbols,
any language). Pretraining texts become one packed token stream; instruction pairs
become padded rows whose labels mask the prompt, tokenized exactly as generation will
see them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llm.train_utils import IGNORE_INDEX

logger = logging.getLogger(__name__)

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, out: Path | None = None
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer, so any text (any bytes) round-trips exactly.

    ``<s>`` is prepended by the tokenizer itself (like Llama tokenizers), so inference
    code can treat this model and a downloaded one alike. Special-token strings typed in
    user text are split like ordinary text: a user cannot inject ``</s>``.
    """
    if vocab_size < 256 + 3:
        raise ValueError(f"vocab_size {vocab_size} is below 256 bytes plus 3 special tokens")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        add_bos_token=True,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        split_special_tokens=True,
    )
    if out is not None:
        tokenizer.save_pretrained(out)
    return tokenizer


def encode_texts(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without special tokens, batch-encoded in Rust (fast on big corpora)."""
    return [
        e.ids
        for e in tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ]


def pack_stream(
    tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], seq_len: int
) -> torch.Tensor:
    """All texts as one ``<s> text </s> <s> text </s> ...`` stream of token ids.

    Training windows are cut from this stream at random offsets, so no token is padding
    and documents of any length are used in full. A stream shorter than one window is
    repeated until it fills one.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pieces = [
        np.asarray([bos, *ids, eos], dtype=np.int64) for ids in encode_texts(tokenizer, texts)
    ]
    stream = np.concatenate(pieces)
    if len(stream) < seq_len + 1:
        stream = np.tile(stream, math.ceil((seq_len + 1) / len(stream)))
    return torch.from_numpy(stream)


def _cut_left(ids: list[int], labels: list[int], max_len: int, bos: int | None):
    """Keep the last ``max_len`` tokens, and ``<s>`` in front as generation does."""
    keep_bos = bos is not None and ids[0] == bos
    tail = max_len - 1 if keep_bos else max_len
    if keep_bos:
        return [bos, *ids[-tail:]], [IGNORE_INDEX, *labels[-tail:]]
    return ids[-tail:], labels[-tail:]


def pair_examples(
    tokenizer: PreTrainedTokenizerFast, pairs: Sequence[tuple[str, str]], max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ``(input_ids, labels, lengths)`` for ``<s> prompt completion </s>``.

    The prompt is encoded exactly as ``LanguageModel`` encodes it (with the tokenizer's
    own special prefix, ``<s>`` here), the completion separately and without specials,
    as generation produces it token by token; so training sees what inference sees, for
    this tokenizer or a downloaded one. Labels are -100 on the prompt, so only the
    completion and ``</s>`` are learned. Over-long examples lose prompt tokens from the
    left, as prompts do at generation.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; a completion could never end")
    pad = eos if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=True, verbose=False)["input_ids"]
    completions = tokenizer([c for _, c in pairs], add_special_tokens=False, verbose=False)[
        "input_ids"
    ]
    rows: list[tuple[list[int], list[int]]] = []
    n_cut = 0
    for prompt, completion in zip(prompts, completions, strict=True):
        ids = [*prompt, *completion, eos]
        labels = [IGNORE_INDEX] * len(prompt) + [*completion, eos]
        if len(ids) > max_len:
            n_cut += 1
            ids, labels = _cut_left(ids, labels, max_len, bos)
        rows.append((ids, labels))
    if n_cut:
        logger.warning(
            "%d of %d examples cut from the left to %d tokens", n_cut, len(rows), max_len
        )
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    label_ids = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        label_ids[i, : len(labels)] = torch.tensor(labels)
    lengths = torch.tensor([len(ids) for ids, _ in rows])
    return input_ids, label_ids, lengths
