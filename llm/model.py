"""Load a local causal LM (optionally with a LoRA adapter) and generate, stream, score.

One class for the locally built default model and any Hugging Face model the user has
on disk (e.g. a Llama-3-8B-Instruct plus adapter): everything is loaded with
``local_files_only`` so nothing is ever fetched from a hub. Decoding is a plain token
loop over the KV cache, so ``generate`` and ``stream`` are the same code and stop
strings are honoured while streaming.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

logger = logging.getLogger(__name__)

_PERPLEXITY_BATCH = 8
_REPLACEMENT = "\ufffd"


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence transformers' tqdm bars and peft's deprecation noise while loading/saving.

    Callers draw their own progress (the CLI's rich bars); stray tqdm lines ("Loading
    weights", "Writing model shards") would garble them. peft 0.21 reads a property that
    transformers 5 deprecated; the warning is not actionable by our users. Previous
    settings are restored afterwards.
    """
    enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
            )
            yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


def _adapter_base(adapter_dir: Path, base_model: str | Path | None) -> Path:
    """The base model directory of an adapter: the explicit one, else the recorded one."""
    if base_model is not None:
        return Path(base_model)
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get(
        "base_model_name_or_path"
    )
    if not recorded:
        raise ValueError(f"adapter {adapter_dir} names no base model; pass base_model")
    path = Path(recorded)
    if not path.is_absolute() and (adapter_dir / path).is_dir():
        path = adapter_dir / path
    if not path.is_dir():
        raise FileNotFoundError(
            f"adapter {adapter_dir} names base model {recorded}, which is not a local "
            "directory here; pass base_model"
        )
    return path


def _check_model_dir(path: Path, marker: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist")
    if not (path / marker).is_file():
        raise ValueError(
            f"{path} is not a model directory (no {marker}); expected a saved causal LM "
            "(config.json) or a LoRA adapter (adapter_config.json)"
        )


def _stop_holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class LanguageModel:
    """A tokenizer plus a causal LM in eval mode, ready for chat-style completion."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        positions = getattr(model.config, "max_position_embeddings", None)
        self.context_length: int = int(positions or tokenizer.model_max_length)
        self._eos_ids = self._collect_eos_ids()
        self._generator = torch.Generator(device=device).manual_seed(0)

    @classmethod
    def load(
        cls, model_path: str | Path, base_model: str | Path | None = None, device: str = "auto"
    ) -> LanguageModel:
        """Load a model directory or a LoRA adapter directory, from local files only.

        An adapter is merged into its base weights after loading: inference then runs
        at base-model speed, and the files on disk are not touched.
        """
        path = Path(model_path)
        torch_device = _resolve_device(device)
        dtype: Any = "auto" if torch_device.type == "cuda" else torch.float32
        is_adapter = (path / "adapter_config.json").is_file()
        if not is_adapter:
            _check_model_dir(path, "config.json")
            if base_model is not None:
                raise ValueError(f"{path} is a full model, not an adapter; drop base_model")
        base = _adapter_base(path, base_model) if is_adapter else path
        _check_model_dir(base, "config.json")
        with quiet_hf():
            model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=dtype)
            if is_adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, path, local_files_only=True)
                model = model.merge_and_unload()
        has_tokenizer = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model"))
        tokenizer = AutoTokenizer.from_pretrained(
            path if has_tokenizer else base, local_files_only=True
        )
        logger.info("loaded %s (base %s) on %s", path, base, torch_device)
        return cls(model.to(torch_device), tokenizer, torch_device)

    def _collect_eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return frozenset(ids)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` alone (no special tokens): what it costs in the context."""
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def _prompt_ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        """Prompt ids (with the tokenizer's own ``<s>``), cut from the left to fit.

        The last new token is never fed back, so prompt plus ``max_new_tokens - 1``
        positions must fit: a prompt of ``count_tokens(prompt) <= context_length -
        max_new_tokens`` is never cut, ``<s>`` included.
        """
        if not 0 < max_new_tokens < self.context_length:
            raise ValueError(
                f"max_new_tokens must be in [1, {self.context_length - 1}], got {max_new_tokens}"
            )
        ids = self.tokenizer.encode(prompt, add_special_tokens=True, verbose=False)
        budget = self.context_length - max_new_tokens + 1
        if len(ids) <= budget:
            return ids
        logger.debug("prompt of %d tokens cut from the left to %d", len(ids), budget)
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids[0] == bos:
            return [bos, *ids[len(ids) - budget + 1 :]]
        return ids[-budget:]

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        """The completion of ``prompt`` (new text only), greedy when temperature is 0."""
        return "".join(
            self.stream(prompt, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        )

    def stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Yield the completion in pieces as tokens are produced.

        Text that might be the start of a stop string, or an incomplete UTF-8 character,
        is held back until it is decided, so the pieces never contain a stop string.
        Arguments are checked here, not at the first ``next()``.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        stops = [s for s in stop if s]
        ids = self._prompt_ids(prompt, max_new_tokens)
        return self._decode_pieces(self._tokens(ids, max_new_tokens, temperature), stops)

    def _decode_pieces(self, tokens: Iterator[int], stops: Sequence[str]) -> Iterator[str]:
        new_ids: list[int] = []
        emitted = 0
        for token in tokens:
            new_ids.append(token)
            text = self.tokenizer.decode(
                new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                if cut > emitted:
                    yield text[emitted:cut]
                return
            safe = len(text) - _stop_holdback(text, stops)
            while safe > emitted and text[safe - 1] == _REPLACEMENT:
                safe -= 1
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        text = self.tokenizer.decode(
            new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        if len(text) > emitted:
            yield text[emitted:]

    @torch.inference_mode()
    def _tokens(self, ids: list[int], max_new_tokens: int, temperature: float) -> Iterator[int]:
        """New token ids, one forward pass each over the KV cache; stops before eos."""
        inputs = torch.tensor([ids], device=self.device)
        past = None
        for _ in range(max_new_tokens):
            output = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = output.past_key_values
            logits = output.logits[0, -1].float()
            if temperature == 0:
                token = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=self._generator))
            if token in self._eos_ids:
                return
            yield token
            inputs = torch.tensor([[token]], device=self.device)

    def _windows(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text as ``<s> text`` in context-sized windows overlapping by one token,
        so every token after the first is predicted exactly once, with full context."""
        windows: list[list[int]] = []
        for text in texts:
            ids = self.tokenizer.encode(text, add_special_tokens=True, verbose=False)
            start = 0
            while start < len(ids) - 1:
                windows.append(ids[start : start + self.context_length])
                start += self.context_length - 1
        return windows

    @torch.inference_mode()
    def perplexity(self, texts: Sequence[str]) -> float:
        """exp of the mean negative log-likelihood per predicted token over all texts."""
        windows = self._windows(texts)
        if not windows:
            raise ValueError("perplexity needs at least one text with a token to predict")
        pad = self.tokenizer.pad_token_id or 0
        total, count = 0.0, 0
        for i in range(0, len(windows), _PERPLEXITY_BATCH):
            batch = windows[i : i + _PERPLEXITY_BATCH]
            width = max(len(w) for w in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, window in enumerate(batch):
                ids[row, : len(window)] = torch.tensor(window)
                labels[row, : len(window)] = torch.tensor(window)
            mask = (labels != -100).long()
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits.float()
            targets = labels[:, 1:].to(self.device)
            total += float(
                F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]),
                    targets.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                )
            )
            count += int((targets != -100).sum())
        return float(torch.exp(torch.tensor(total / count)))
