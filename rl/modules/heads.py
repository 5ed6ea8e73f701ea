"""The ordered action heads: trade decision, then size, then risk limits and execution.

Each head is a small MLP shared by all assets, applied to a per-asset input (B, A, E)
(the fused context next to the asset's own encoding) plus the choices already made:

- trade:               base
- size:                base, own decision (one-hot), every asset's decision
- risk and execution:  base, own decision, own size, every asset's signed size

so a size depends on the whole book of decisions, and stops and execution on the
direction and size they protect and work. Sampling runs the heads in that order;
training runs them once, conditioned on the batch's stored actions (see
rl.distribution for why that gives the right log-probabilities).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rl.distribution import ActionLayout, beta, beta_mean, clamp_unit, sample_categorical
from rl.modules.encoders import init_linear


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))
    init_linear(net[0])
    # small final weights: initial policy close to uniform (PPO implementation detail)
    init_linear(net[2], gain=0.01)
    return net


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def _start_small(layer: nn.Linear, size_mean: float) -> None:
    """Biases of the size head's final layer: the initial size is a Beta with mean
    ``size_mean`` and concentration 1.5 on its smaller side (concentrations are
    1 + softplus(raw), rl.distribution)."""
    lo = 1.5
    if size_mean <= 0.5:
        a, b = lo, lo * (1 - size_mean) / size_mean
    else:
        a, b = lo * size_mean / (1 - size_mean), lo
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([_inverse_softplus(a - 1), _inverse_softplus(b - 1)]))


class HierarchicalHeads(nn.Module):
    """Per-asset heads for the composite action (see module docstring).

    The initial sizes are small (``size_mean`` of the exposure budget), not uniform: a
    uniform Beta starts at half the budget (5x equity per asset at the defaults), whose
    random trades lose several percent a day and hit the daily loss limit, and that
    noise is what the first updates would learn from. Decisions start uniform: a
    mostly-flat start was tried and made the policy settle on flat before it found a
    planted signal.
    """

    def __init__(
        self, layout: ActionLayout, base_dim: int, hidden: int, size_mean: float = 0.5
    ) -> None:
        super().__init__()
        self.layout = layout
        a, s, h = layout.n_assets, layout.n_styles, layout.n_horizons
        self.trade = _mlp(base_dim, hidden, 3)
        self.size = _mlp(base_dim + 3 + 3 * a, hidden, 2)
        self.later = _mlp(base_dim + 3 + 1 + a, hidden, 4 + s + h)
        _start_small(self.size[2], size_mean)

    def _size_raw(self, base: torch.Tensor, trade: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(trade, 3).to(base.dtype)  # (B, A, 3)
        book = onehot.flatten(1).unsqueeze(1).expand(-1, base.shape[1], -1)
        return self.size(torch.cat([base, onehot, book], dim=-1))

    def _later_raw(
        self, base: torch.Tensor, trade: torch.Tensor, size: torch.Tensor
    ) -> torch.Tensor:
        onehot = F.one_hot(trade, 3).to(base.dtype)
        signed = (trade.to(base.dtype) - 1.0) * size  # -size short, 0 flat, +size long
        book = signed.unsqueeze(1).expand(-1, base.shape[1], -1)
        return self.later(torch.cat([base, onehot, size.unsqueeze(-1), book], dim=-1))

    def _flat(self, trade_raw, size_raw, later_raw) -> torch.Tensor:
        """Distribution inputs in the action Dict's sorted-key order (see ActionLayout)."""
        b = trade_raw.shape[0]
        execution = later_raw[..., 4:].reshape(b, -1)
        risk = later_raw[..., :4].reshape(b, -1)  # per asset [sl_a, sl_b, tp_a, tp_b]
        return torch.cat([execution, risk, size_raw.reshape(b, -1), trade_raw.reshape(b, -1)], -1)

    def inputs_given(self, base: torch.Tensor, actions: dict[str, torch.Tensor]) -> torch.Tensor:
        """Distribution inputs with every head conditioned on the given (stored) actions."""
        trade = actions["trade"].long()
        size = clamp_unit(actions["size"].to(base.dtype))
        return self._flat(
            self.trade(base), self._size_raw(base, trade), self._later_raw(base, trade, size)
        )

    def sample(
        self, base: torch.Tensor, deterministic: bool
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Sample (or take the mode/mean of) each head in order; returns actions, inputs."""
        s = self.layout.n_styles
        trade_raw = self.trade(base)
        trade = trade_raw.argmax(-1) if deterministic else sample_categorical(trade_raw)

        size_raw = self._size_raw(base, trade)
        size = beta_mean(size_raw) if deterministic else beta(size_raw).sample()
        size = clamp_unit(size)

        later_raw = self._later_raw(base, trade, size)
        risk_raw = later_raw[..., :4].reshape(base.shape[0], -1, 2)
        risk = beta_mean(risk_raw) if deterministic else beta(risk_raw).sample()
        style_logits, horizon_logits = later_raw[..., 4 : 4 + s], later_raw[..., 4 + s :]
        if deterministic:
            style, horizon = style_logits.argmax(-1), horizon_logits.argmax(-1)
        else:
            style = sample_categorical(style_logits)
            horizon = sample_categorical(horizon_logits)
        actions = {
            "execution": torch.stack([style, horizon], dim=-1).flatten(1),
            "risk": clamp_unit(risk),
            "size": size,
            "trade": trade,
        }
        return actions, self._flat(trade_raw, size_raw, later_raw)
