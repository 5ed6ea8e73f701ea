"""The parameter layout of the hierarchical policy's numba twin (backtest.fast_kernels).

The fast backtest (backtest.fast) runs the policy's per-step layers (cross-asset
attention, risk LSTM, fusion and the ordered heads) as plain numba loops, and the
market transformer in torch. The loops read the torch module's weights only through
this declaration, which is the one place that says, for each tensor they use:

- its ``state_dict`` key,
- its shape, in the module's own sizes (``d_model``, ``head_hidden``, assets...),
- the field the kernels read it by (``twin.heads.size_w1``, never a torch attribute),

plus the structure the loops hard-code (layer types, activations, LayerNorm eps, a
one-layer forward LSTM, the column blocks of each head's first layer) and the parts
left to torch (``TORCH_SIDE``).

``export_twin`` checks a module against it before handing the weights over: a
parameter or buffer the layout does not declare, a declared one the module lacks, a
shape that differs, a sublayer that was added, removed or changed type, or a changed
setting raises ``LayoutDrift`` naming each key. So a model change fails when the
backtest starts instead of the twin silently computing something else; after
changing the model, change this declaration and the kernels together. What a state
dict cannot show (the forward maths: the order of a concatenation, a residual) is
checked head by head by tests/unit/backtest/test_fast_policy_parity.py.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from rl.modules.encoders import AttentionPool, CrossAssetAttention, RiskLSTM
from rl.modules.heads import HierarchicalHeads


class TwinUnsupported(ValueError):
    """The module is not one the twin reproduces (the fast path does not apply)."""


class LayoutDrift(ValueError):
    """The module no longer matches the twin's declared layout (see the module docstring)."""


class Param(NamedTuple):
    """One tensor the twin reads: ``field`` of its group, from ``key``, of ``shape``
    (names of sizes in ``_sizes``)."""

    field: str
    key: str
    shape: tuple[str, ...]


class Group(NamedTuple):
    """The tensors (then the integer settings) of one kernel argument."""

    name: str
    params: tuple[Param, ...]
    ints: tuple[str, ...] = ()


# --- the declaration -------------------------------------------------------------------

GROUPS: tuple[Group, ...] = (
    Group(
        "cross",  # rl.modules.encoders.CrossAssetAttention -> fast_kernels.cross_attention
        (
            Param("portfolio_w", "cross.portfolio.weight", ("d_model", "portfolio")),
            Param("portfolio_b", "cross.portfolio.bias", ("d_model",)),
            Param("asset", "cross.asset", ("assets", "d_model")),
            Param("norm1_w", "cross.norm1.weight", ("d_model",)),
            Param("norm1_b", "cross.norm1.bias", ("d_model",)),
            Param("qkv_w", "cross.attention.in_proj_weight", ("qkv", "d_model")),
            Param("qkv_b", "cross.attention.in_proj_bias", ("qkv",)),
            Param("out_w", "cross.attention.out_proj.weight", ("d_model", "d_model")),
            Param("out_b", "cross.attention.out_proj.bias", ("d_model",)),
            Param("norm2_w", "cross.norm2.weight", ("d_model",)),
            Param("norm2_b", "cross.norm2.bias", ("d_model",)),
            Param("ff1_w", "cross.ff.0.weight", ("cross_ff", "d_model")),
            Param("ff1_b", "cross.ff.0.bias", ("cross_ff",)),
            Param("ff2_w", "cross.ff.2.weight", ("d_model", "cross_ff")),
            Param("ff2_b", "cross.ff.2.bias", ("d_model",)),
        ),
        ("n_heads",),
    ),
    Group(
        "lstm",  # rl.modules.encoders.RiskLSTM -> fast_kernels.risk_lstm
        (
            Param("w_ih", "risk_lstm.lstm.weight_ih_l0", ("lstm_gates", "risk")),
            Param("w_hh", "risk_lstm.lstm.weight_hh_l0", ("lstm_gates", "risk_hidden")),
            Param("b_ih", "risk_lstm.lstm.bias_ih_l0", ("lstm_gates",)),
            Param("b_hh", "risk_lstm.lstm.bias_hh_l0", ("lstm_gates",)),
            Param("score_w", "risk_lstm.pool.score.weight", ("one", "risk_hidden")),
            Param("score_b", "risk_lstm.pool.score.bias", ("one",)),
        ),
    ),
    Group(
        "fusion",  # HierarchicalPPOModule.fusion: [assets' encodings, pooled risk] -> context
        (
            Param("w", "fusion.0.weight", ("fusion_hidden", "fusion_in")),
            Param("b", "fusion.0.bias", ("fusion_hidden",)),
        ),
    ),
    Group(
        "heads",  # rl.modules.heads.HierarchicalHeads -> fast_kernels.decide
        (
            Param("trade_w1", "heads.trade.0.weight", ("head_hidden", "trade_in")),
            Param("trade_b1", "heads.trade.0.bias", ("head_hidden",)),
            Param("trade_w2", "heads.trade.2.weight", ("trade_out", "head_hidden")),
            Param("trade_b2", "heads.trade.2.bias", ("trade_out",)),
            Param("size_w1", "heads.size.0.weight", ("head_hidden", "size_in")),
            Param("size_b1", "heads.size.0.bias", ("head_hidden",)),
            Param("size_w2", "heads.size.2.weight", ("size_out", "head_hidden")),
            Param("size_b2", "heads.size.2.bias", ("size_out",)),
            Param("later_w1", "heads.later.0.weight", ("head_hidden", "later_in")),
            Param("later_b1", "heads.later.0.bias", ("head_hidden",)),
            Param("later_w2", "heads.later.2.weight", ("later_out", "head_hidden")),
            Param("later_b2", "heads.later.2.bias", ("later_out",)),
        ),
        # column offsets of the first layers' choice blocks (HEAD_INPUTS) and the styles
        ("size_own_trade", "size_book", "later_own_trade", "later_own_size", "later_book",
         "n_styles"),
    ),
)

HEAD_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    # per head, its first layer's input blocks in order (block, width): HierarchicalHeads.
    # _size_raw / _later_raw concatenate them so; the twin adds the choice blocks as columns
    "trade": (("context", "fusion_hidden"), ("asset", "d_model")),
    "size": (("context", "fusion_hidden"), ("asset", "d_model"), ("own_trade", "trade_out"),
             ("book", "book_trades")),
    "later": (("context", "fusion_hidden"), ("asset", "d_model"), ("own_trade", "trade_out"),
              ("own_size", "one"), ("book", "assets")),
}
"""Outputs: trade [short, flat, long] logits; size one Beta's two raw concentrations;
later [stop a, stop b, take-profit a, take-profit b, style logits..., horizon logits...]."""

TORCH_SIDE: dict[str, str] = {
    "market": "the market transformer: runs in torch, batched over time (backtest.fast)",
    "value_head": "the value: a deterministic backtest does not use it",
}
"""Top-level submodules the twin does not read (any key under them is allowed)."""
TORCH_SIDE_KEYS: dict[str, str] = {
    "return_stats": "the value head's return statistics (rl.returns)",
}
"""Top-level parameters and buffers the twin does not read."""

STRUCTURE: dict[str, tuple[type, dict[str, Any]]] = {
    # every submodule of the parts the twin reproduces: exact type, settings the loops assume
    "cross": (CrossAssetAttention, {}),
    "cross.portfolio": (nn.Linear, {}),
    "cross.attention": (nn.MultiheadAttention, {
        "batch_first": True, "dropout": 0.0, "add_zero_attn": False, "bias_k": None,
        "_qkv_same_embed_dim": True,
    }),
    "cross.attention.out_proj": (nn.modules.linear.NonDynamicallyQuantizableLinear, {}),
    "cross.norm1": (nn.LayerNorm, {"eps": 1e-5, "elementwise_affine": True}),
    "cross.norm2": (nn.LayerNorm, {"eps": 1e-5, "elementwise_affine": True}),
    "cross.ff": (nn.Sequential, {}),
    "cross.ff.0": (nn.Linear, {}),
    "cross.ff.1": (nn.GELU, {"approximate": "none"}),
    "cross.ff.2": (nn.Linear, {}),
    "risk_lstm": (RiskLSTM, {}),
    "risk_lstm.lstm": (nn.LSTM, {
        "num_layers": 1, "bidirectional": False, "proj_size": 0, "bias": True,
        "batch_first": True,
    }),
    "risk_lstm.pool": (AttentionPool, {}),
    "risk_lstm.pool.score": (nn.Linear, {}),
    "fusion": (nn.Sequential, {}),
    "fusion.0": (nn.Linear, {}),
    "fusion.1": (nn.GELU, {"approximate": "none"}),
    "heads": (HierarchicalHeads, {}),
    **{
        f"heads.{head}{suffix}": kind
        for head in HEAD_INPUTS
        for suffix, kind in (
            ("", (nn.Sequential, {})), (".0", (nn.Linear, {})), (".1", (nn.Tanh, {})),
            (".2", (nn.Linear, {})),
        )
    },
}


# --- what the kernels receive ----------------------------------------------------------

TWIN_FIELDS = {g.name: tuple(p.field for p in g.params) + g.ints for g in GROUPS}
"""Field names of each group, as the kernels read them."""

CrossWeights = namedtuple("CrossWeights", TWIN_FIELDS["cross"])
LstmWeights = namedtuple("LstmWeights", TWIN_FIELDS["lstm"])
FusionWeights = namedtuple("FusionWeights", TWIN_FIELDS["fusion"])
HeadWeights = namedtuple("HeadWeights", TWIN_FIELDS["heads"])
TwinWeights = namedtuple("TwinWeights", [g.name for g in GROUPS])
"""The kernels' argument: float64 arrays (torch's layout, Linear (out, in)) and ints."""
_CLASSES = {"cross": CrossWeights, "lstm": LstmWeights, "fusion": FusionWeights,
            "heads": HeadWeights}


@dataclass(frozen=True)
class _Module:
    """The sizes the layout's shapes are written in (from the module's config and spaces,
    not from its tensors) and the integer settings the kernels receive."""

    sizes: dict[str, int]
    ints: dict[str, int]


if any(
    blocks[:2] != (("context", "fusion_hidden"), ("asset", "d_model"))
    for blocks in HEAD_INPUTS.values()
):  # a declaration error, not a module's: checked on import. The kernels compute the
    # context block (the fusion output's width) once per step, then add each asset's block
    raise LayoutDrift("every head's input must start with the context, then the asset block")


def twin_supports(module) -> bool:
    """Whether the twin reproduces this kind of module: the hierarchical one without text."""
    from rl.modules.policy import HierarchicalPPOModule

    return isinstance(module, HierarchicalPPOModule) and module.text is None


def _describe(module) -> _Module:
    cfg, layout = module.cfg, module.layout
    spaces = module.observation_space
    a, d = layout.n_assets, cfg.d_model
    sizes = {
        "one": 1, "assets": a, "d_model": d, "qkv": 3 * d, "cross_ff": 2 * d,
        "portfolio": spaces["portfolio"].shape[-1], "risk": spaces["risk"].shape[-1],
        "risk_hidden": cfg.risk_hidden, "lstm_gates": 4 * cfg.risk_hidden,
        "fusion_hidden": cfg.fusion_hidden, "fusion_in": a * d + cfg.risk_hidden,
        "head_hidden": cfg.head_hidden, "trade_out": 3, "size_out": 2,
        "later_out": 4 + layout.n_styles + layout.n_horizons, "book_trades": 3 * a,
    }
    ints = {"n_heads": cfg.heads, "n_styles": layout.n_styles}
    for head, blocks in HEAD_INPUTS.items():
        offset = 0
        for block, width in blocks:
            ints[f"{head}_{block}"] = offset
            offset += sizes[width]
        sizes[f"{head}_in"] = offset
    return _Module(sizes, ints)


def _check_structure(module) -> list[str]:
    problems = []
    children = {name for name, _ in module.named_children()}
    twin_parts = {k for k in STRUCTURE if "." not in k}
    expected = twin_parts | TORCH_SIDE.keys()
    problems += [f"undeclared submodule {name!r}" for name in sorted(children - expected)]
    problems += [f"missing submodule {name!r}" for name in sorted(expected - children)]
    found = {
        name: m for name, m in module.named_modules() if name.split(".")[0] in twin_parts
    }
    for name in sorted(found.keys() - STRUCTURE.keys()):
        problems.append(f"undeclared layer {name!r} ({type(found[name]).__name__})")
    for name, (kind, settings) in STRUCTURE.items():
        if name not in found:
            if name.split(".")[0] in children:
                problems.append(f"missing layer {name!r} ({kind.__name__})")
            continue
        layer = found[name]
        if type(layer) is not kind:
            problems.append(
                f"layer {name!r} is a {type(layer).__name__}, the twin computes a {kind.__name__}"
            )
            continue
        for attr, want in settings.items():
            got = getattr(layer, attr, "<absent>")
            if got != want:
                problems.append(f"layer {name!r} has {attr}={got!r}, the twin assumes {want!r}")
    return problems


def _check_keys(state: dict[str, torch.Tensor], sizes: dict[str, int]) -> list[str]:
    problems = []
    declared = {p.key: p for g in GROUPS for p in g.params}
    torch_side = tuple(f"{name}." for name in TORCH_SIDE)
    for key in sorted(state):
        if key not in declared and key not in TORCH_SIDE_KEYS and not key.startswith(torch_side):
            problems.append(f"unexpected key {key!r} {tuple(state[key].shape)}")
    for key, param in declared.items():
        if key not in state:
            problems.append(f"missing key {key!r}")
            continue
        want = tuple(sizes[s] for s in param.shape)
        got = tuple(state[key].shape)
        if got != want:
            names = ", ".join(param.shape)
            problems.append(f"key {key!r} has shape {got}, the layout expects ({names}) = {want}")
    return problems


def export_twin(module) -> TwinWeights:
    """The twin's weights: the declared tensors of ``module`` as float64 numpy arrays, and
    its integer settings, grouped as the kernels read them. Raises ``TwinUnsupported``
    for a module the twin does not reproduce and ``LayoutDrift`` (naming every offending
    key or layer) for one that no longer matches the declaration."""
    if not twin_supports(module):
        raise TwinUnsupported(
            "the fast path needs the hierarchical module without a text encoder, got "
            f"{type(module).__name__}" + (" with text" if getattr(module, "text", None) else "")
        )
    described = _describe(module)
    state = module.state_dict()
    problems = _check_structure(module) + _check_keys(state, described.sizes)
    if module.cross.attention.num_heads != described.ints["n_heads"]:
        problems.append(
            f"cross.attention has {module.cross.attention.num_heads} heads, "
            f"model.heads is {described.ints['n_heads']}"
        )
    if problems:
        raise LayoutDrift(
            f"{type(module).__name__} does not match the numba twin's layout "
            "(rl.modules.twin; update it and backtest.fast_kernels together):\n  "
            + "\n  ".join(problems)
        )
    groups = {}
    for g in GROUPS:
        arrays = {
            p.field: np.ascontiguousarray(state[p.key].detach().cpu().numpy(), dtype=np.float64)
            for p in g.params
        }
        groups[g.name] = _CLASSES[g.name](
            **arrays, **{name: int(described.ints[name]) for name in g.ints}
        )
    return TwinWeights(**groups)
