"""The training loop and bookkeeping shared by base pretraining and LoRA fine-tuning.

Kept apart from ``llm.training`` so the model-building code reads as "what is trained on
what", while the how (schedule, clipping, mixed precision, provenance) lives here once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import platform
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, get_args

import torch

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label value that cross-entropy skips (masked prompt tokens and padding)."""

Progress = Callable[[int, int, float], None]
"""``progress(step, total_steps, loss)``, called after every optimiser step."""

_CLIP_NORM = 1.0
_PACKAGES = ("torch", "transformers", "peft", "tokenizers")


Precision = Literal["auto", "float32", "bfloat16"]
"""Training arithmetic: 'auto' picks bfloat16 autocast where the CPU is fast at it."""
PRECISIONS: tuple[str, ...] = get_args(Precision)


@cache
def cpu_has_fast_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX).

    There, bf16 autocast makes a default-size training step about 1.6x faster (matmuls
    run about 3x faster); elsewhere bf16 is emulated and slower than float32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def resolve_precision(precision: str) -> str:
    """'auto' means bfloat16 where the CPU is fast at it, else float32."""
    check_precision(precision)
    if precision == "auto":
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    return precision


def autocast_context(precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast of the forward pass for a resolved 'bfloat16', else a no-op.

    Weights, gradients and optimiser state stay float32; only matmul inputs are cast.
    """
    if precision == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """AdamW with the usual small-LM betas; a light weight decay keeps norms in check."""
    return torch.optim.AdamW(list(params), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)


def warmup_cosine(steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over 5% of steps (at most 100), cosine down to 0.1."""
    warmup = max(1, min(100, steps // 20))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[], torch.Tensor],
    steps: int,
    progress: Progress | None,
) -> list[float]:
    """Run ``steps`` optimiser steps of ``loss_fn`` (which draws its own batch).

    Returns the loss of every step. Fails fast on a non-finite loss: a diverged model
    must not be saved as if it had trained.
    """
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    losses: list[float] = []
    model.train()
    for step in range(1, steps + 1):
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, _CLIP_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {step}; lower lr")
        losses.append(value)
        if progress is not None:
            progress(step, steps, value)
    model.eval()
    return losses


def sha256_of(texts: Sequence[str]) -> str:
    """Digest of an ordered list of strings (each followed by a NUL, so splits count)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide what a saved model is."""
    return {"python": platform.python_version(), **{name: version(name) for name in _PACKAGES}}


def write_provenance(out: Path, extra: dict[str, Any] | None, **facts: Any) -> Path:
    """Write ``out/provenance.json``: the caller's dict plus the measured facts.

    Facts win over caller keys of the same name: they describe what really happened.
    """
    record = {
        **(extra or {}),
        **facts,
        "versions": package_versions(),
    }
    path = Path(out) / "provenance.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %s", path)
    return path
