"""Build the chatbot's language model locally: tokenizer, base pretraining, LoRA fine-tune.

No weights can be downloaded here, so the default chatbot model is trained from scratch
on generated market commentary (the texts come from the caller) and then adapted to
question/answer pairs with a LoRA adapter. Everything is a plain function over strings
and paths, deterministic given the seed, and leaves a ``provenance.json`` beside the
weights so a model on disk always says how it was made. Tokenization and tensor
preparation live in ``llm.tokens``, the shared training loop in ``llm.train_utils``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, TaskType, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from llm.model import quiet_hf
from llm.tokens import pack_stream, pair_examples, train_tokenizer
from llm.train_utils import (
    IGNORE_INDEX,
    Precision,
    Progress,
    autocast_context,
    check_precision,
    make_optimizer,
    resolve_precision,
    sha256_of,
    train_loop,
    write_provenance,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModelConfig:
    """Shape and pretraining schedule of the locally built base model.

    The defaults are the embedded default chatbot model (about 4.2M parameters with
    tied embeddings): small enough to pretrain on two CPU cores, big enough to learn the
    templated market commentary it is trained on.
    """

    vocab_size: int = 4096
    """Target BPE vocabulary size (the model uses the trained tokenizer's actual size)."""
    hidden_size: int = 256
    """Width of the residual stream."""
    num_layers: int = 4
    """Number of transformer decoder layers."""
    num_heads: int = 4
    """Attention heads per layer (hidden_size must divide evenly)."""
    intermediate_size: int = 688
    """Width of the SwiGLU feed-forward block."""
    max_length: int = 512
    """Context length in tokens (max_position_embeddings)."""
    steps: int = 2000
    """Optimiser steps of pretraining."""
    batch_size: int = 16
    """Packed sequences per step."""
    seq_len: int = 256
    """Tokens per packed training sequence (at most max_length)."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to a tenth)."""
    seed: int = 0
    """Seeds weight init and batch sampling: same seed, texts and precision, same model."""
    precision: Precision = "auto"
    """'float32', 'bfloat16' (autocast) or 'auto': bfloat16 where the CPU has native
    bf16 (about 1.6x faster at the default size), else float32."""

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        if not 2 <= self.seq_len <= self.max_length:
            raise ValueError(f"seq_len {self.seq_len} must be in [2, max_length={self.max_length}]")
        _check_positive(self, "vocab_size", "num_layers", "steps", "batch_size", "lr")


@dataclass(frozen=True)
class LoraConfigSpec:
    """LoRA fine-tune settings (peft ``LoraConfig`` plus the training schedule)."""

    r: int = 16
    """Rank of the low-rank update."""
    alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA input path."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Linear layers that get an adapter (attention projections by default)."""
    steps: int = 600
    """Optimiser steps of fine-tuning."""
    batch_size: int = 16
    """(prompt, completion) examples per step, sampled with replacement."""
    lr: float = 2e-3
    """Peak AdamW learning rate of the adapter weights."""
    seed: int = 0
    """Seeds adapter init, dropout and batch sampling."""
    precision: Precision = "auto"
    """'float32', 'bfloat16' (autocast) or 'auto' (as BaseModelConfig.precision)."""

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} must be in [0, 1)")
        _check_positive(self, "r", "alpha", "steps", "batch_size", "lr")


def _check_positive(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be > 0")


def _llama_config(config: BaseModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def build_base(
    texts: Sequence[str],
    out: Path,
    config: BaseModelConfig = BaseModelConfig(),
    *,
    provenance: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train tokenizer and a Llama-style causal LM on ``texts``; save both into ``out``.

    Pretraining is next-token prediction on random ``seq_len`` windows of the packed
    token stream. ``progress(step, total, loss)`` is called after every step.
    """
    if not texts:
        raise ValueError("build_base needs at least one text")
    start = time.perf_counter()
    out = Path(out)
    tokenizer = train_tokenizer(texts, config.vocab_size)
    tokenizer.model_max_length = config.max_length
    stream = pack_stream(tokenizer, texts, config.seq_len)
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(_llama_config(config, tokenizer))
    generator = torch.Generator().manual_seed(config.seed)
    offsets = torch.arange(config.seq_len + 1)
    vocab = model.config.vocab_size
    precision = resolve_precision(config.precision)

    def loss_fn() -> torch.Tensor:
        starts = torch.randint(
            0, len(stream) - config.seq_len, (config.batch_size, 1), generator=generator
        )
        window = stream[starts + offsets]
        with autocast_context(precision):
            logits = model(input_ids=window[:, :-1]).logits
        return F.cross_entropy(logits.float().reshape(-1, vocab), window[:, 1:].reshape(-1))

    optimizer = make_optimizer(model.parameters(), config.lr)
    logger.info(
        "pretraining %d params on %d tokens for %d steps",
        model.num_parameters(),
        len(stream),
        config.steps,
    )
    losses = train_loop(model, optimizer, loss_fn, config.steps, progress)
    _save(model, tokenizer, out)
    write_provenance(
        out,
        provenance,
        kind="base",
        config=asdict(config),
        n_texts=len(texts),
        texts_sha256=sha256_of(texts),
        n_tokens=len(stream),
        n_params=model.num_parameters(),
        vocab_size=len(tokenizer),
        precision=precision,
        steps=config.steps,
        first_loss=losses[0],
        final_loss=losses[-1],
        wall_seconds=time.perf_counter() - start,
    )
    return out


def finetune_lora(
    base: Path,
    pairs: Sequence[tuple[str, str]],
    out: Path,
    config: LoraConfigSpec = LoraConfigSpec(),
    *,
    provenance: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fine-tune a LoRA adapter on (prompt, completion) pairs; save adapter and tokenizer.

    Only the adapter weights train; the base model on disk is untouched and the saved
    ``adapter_config.json`` names the base by absolute path, so the adapter directory
    alone is enough to load the fine-tuned model.
    """
    if not pairs:
        raise ValueError("finetune_lora needs at least one (prompt, completion) pair")
    start = time.perf_counter()
    base, out = Path(base).resolve(), Path(out)
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"no base model (config.json) in {base}")
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    with quiet_hf():
        model = AutoModelForCausalLM.from_pretrained(
            base, local_files_only=True, dtype=torch.float32
        )
    input_ids, labels, lengths = pair_examples(
        tokenizer, pairs, model.config.max_position_embeddings
    )
    torch.manual_seed(config.seed)
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        base_model_name_or_path=str(base),
    )
    with quiet_hf():
        peft_model = get_peft_model(model, lora)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(config.seed)
    vocab = model.config.vocab_size
    precision = resolve_precision(config.precision)

    def loss_fn() -> torch.Tensor:
        rows = torch.randint(0, len(pairs), (config.batch_size,), generator=generator)
        width = int(lengths[rows].max())
        ids, targets = input_ids[rows, :width], labels[rows, :width]
        mask = (torch.arange(width) < lengths[rows, None]).long()
        with autocast_context(precision):
            logits = peft_model(input_ids=ids, attention_mask=mask).logits
        return F.cross_entropy(
            logits[:, :-1].float().reshape(-1, vocab),
            targets[:, 1:].reshape(-1),
            ignore_index=IGNORE_INDEX,
        )

    optimizer = make_optimizer(trainable, config.lr)
    n_trainable = sum(p.numel() for p in trainable)
    logger.info("LoRA fine-tune of %d params on %d pairs", n_trainable, len(pairs))
    losses = train_loop(peft_model, optimizer, loss_fn, config.steps, progress)
    _save(peft_model, tokenizer, out)
    write_provenance(
        out,
        provenance,
        kind="lora",
        base_model=str(base),
        base_provenance=_read_json(base / "provenance.json"),
        config={**asdict(config), "target_modules": list(config.target_modules)},
        n_pairs=len(pairs),
        pairs_sha256=sha256_of([s for pair in pairs for s in pair]),
        n_trainable_params=n_trainable,
        precision=precision,
        steps=config.steps,
        first_loss=losses[0],
        final_loss=losses[-1],
        wall_seconds=time.perf_counter() - start,
    )
    return out


def _save(model: Any, tokenizer: PreTrainedTokenizerFast, out: Path) -> None:
    """save_pretrained for the model (or adapter) and its tokenizer, side by side."""
    out.mkdir(parents=True, exist_ok=True)
    with quiet_hf():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = [
    "BaseModelConfig",
    "LoraConfigSpec",
    "build_base",
    "finetune_lora",
    "train_tokenizer",
]
