"""The composite action distribution of the hierarchical policy.

The action has four parts (gymnasium sorts the Dict keys, so the flat distribution
inputs follow that order): ``execution`` (per asset a style and a horizon,
categorical), ``risk`` (per asset stop-loss and take-profit distances in [0, 1],
Beta), ``size`` (per asset in [0, 1], Beta) and ``trade`` (per asset short/flat/long,
categorical).

The heads are hierarchical: the module computes the size inputs *given* the trade
decision, and the risk and execution inputs given both. A distribution object holds
inputs that were computed for one particular choice of the earlier heads, so

    log p(a) = log p(trade) + log p(size | trade) + log p(risk | trade, size)
               + log p(execution | trade, size)

is a plain sum over its parts, and so are its joint entropy (the conditional entropies
at those earlier choices: an unbiased one-sample estimate of the joint entropy) and its
KL. That is why the module computes the training inputs conditioned on the batch's
stored actions, and why this class cannot sample a joint action on its own (the
module samples head by head); ``sample`` raises instead of returning a wrong one.

``entropy()`` (what the PPO loss's bonus and the logged ``entropy`` read) is that joint
entropy divided by the number of action dimensions (6 per asset: trade, size, stop,
take-profit, style, horizon): nats per dimension. Summed, it grows with the number of
assets and is dominated by the execution heads (ln 5 + ln 8 of 4.8 nats per asset at
the start), so one entropy coefficient meant a different exploration pressure for 1
or 10 assets and drowned a small per-step reward; per dimension it means the same
thing for any number of assets. ``joint_entropy()`` is the plain sum.

Beta concentrations are ``1 + softplus(raw)``: unimodal, so the size and distance
heads never pile probability onto the interval's ends, and log-probabilities stay
finite at the values the env accepts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from ray.rllib.core.distribution.distribution import Distribution
from torch import distributions as td
from torch.nn import functional as F


class HeadByHeadOnly(NotImplementedError):
    """An operation this distribution refuses on purpose (see the module docstring): a
    joint action is sampled head by head by its module, never from one object's inputs."""


EPS = 1e-4
"""Beta samples are kept in [EPS, 1 - EPS]: float32 Beta samples can round to 0 or 1."""


@dataclass(frozen=True)
class ActionLayout:
    """Sizes of the action parts for A assets, S execution styles and H horizons."""

    n_assets: int
    n_styles: int
    n_horizons: int

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """Widths of the execution, risk, size and trade inputs (sorted-key order)."""
        a = self.n_assets
        return a * (self.n_styles + self.n_horizons), 4 * a, 2 * a, 3 * a

    @property
    def input_dim(self) -> int:
        return sum(self.sizes)

    @property
    def n_dims(self) -> int:
        """Action dimensions: per asset trade, size, stop, take-profit, style, horizon."""
        return 6 * self.n_assets


def beta(raw: torch.Tensor) -> td.Beta:
    """A Beta from raw (..., 2) inputs; concentrations in (1, inf)."""
    conc = 1.0 + F.softplus(raw)
    return td.Beta(conc[..., 0], conc[..., 1], validate_args=False)


def sample_categorical(logits: torch.Tensor) -> torch.Tensor:
    """Exact sample of Categorical(logits) by the Gumbel-max trick (no softmax/multinomial)."""
    return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)


def beta_mean(raw: torch.Tensor) -> torch.Tensor:
    conc = 1.0 + F.softplus(raw)
    return conc[..., 0] / conc.sum(-1)


def clamp_unit(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(EPS, 1.0 - EPS)


class HierarchicalActionDist(Distribution):
    """Joint distribution of one action given its (already conditioned) head inputs.

    The maths is written out on tensors (log-softmax for the categorical parts, the
    Beta density, entropy and KL in closed form, all Betas in one tensor) rather than
    built from torch.distributions objects: the PPO loss builds two of these per
    minibatch, and the objects' Python overhead was a fifth of a small update.
    Values are computed lazily, so the unused "previous" distribution of a loss
    without a KL term costs nothing.
    """

    layout: ActionLayout

    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs
        self._cache: dict[str, torch.Tensor] = {}

    def _get(self, name: str) -> torch.Tensor:
        if not self._cache:
            lay = self.layout
            a, s = lay.n_assets, lay.n_styles
            execution, risk, size, trade = torch.split(self.inputs, lay.sizes, dim=-1)
            lead = self.inputs.shape[:-1]
            execution = execution.reshape(*lead, a, -1)
            self._cache["style"] = F.log_softmax(execution[..., :s], -1)
            self._cache["horizon"] = F.log_softmax(execution[..., s:], -1)
            self._cache["trade"] = F.log_softmax(trade.reshape(*lead, a, 3), -1)
            # Betas of size (A) then risk (2A): one tensor of concentrations (..., 3A, 2)
            raw = torch.cat([size.reshape(*lead, a, 2), risk.reshape(*lead, 2 * a, 2)], -2)
            conc = 1.0 + F.softplus(raw)
            self._cache["alpha"], self._cache["beta"] = conc[..., 0], conc[..., 1]
            self._cache["lbeta"] = torch.lgamma(conc).sum(-1) - torch.lgamma(conc.sum(-1))
        return self._cache[name]

    def probabilities(self, head: str) -> torch.Tensor:
        """(..., A, choices) probabilities of a categorical head: 'trade', 'style' or
        'horizon' (given the earlier heads' choices these inputs were computed with)."""
        if head not in ("trade", "style", "horizon"):
            raise ValueError(f"{head!r} is not a categorical head")
        return self._get(head).exp()

    def _categoricals(self):
        return (self._get("trade"), self._get("style"), self._get("horizon"))

    @classmethod
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> HierarchicalActionDist:
        return cls(logits)

    @staticmethod
    def required_input_dim(space, **kwargs) -> int:
        raise HeadByHeadOnly("the input size depends on the layout: use ActionLayout.input_dim")

    def logp(self, value: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        a = self.layout.n_assets
        execution = value["execution"].long().reshape(*value["execution"].shape[:-1], a, 2)
        picks = (value["trade"].long(), execution[..., 0], execution[..., 1])
        total = sum(
            lsm.gather(-1, k.unsqueeze(-1)).squeeze(-1).sum(-1)
            for lsm, k in zip(self._categoricals(), picks, strict=True)
        )
        alpha, beta_, lbeta = self._get("alpha"), self._get("beta"), self._get("lbeta")
        x = clamp_unit(torch.cat([value["size"], value["risk"]], -1).to(alpha.dtype))
        density = (alpha - 1) * torch.log(x) + (beta_ - 1) * torch.log1p(-x) - lbeta
        return total + density.sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy per action dimension (module docstring): joint entropy / (6 * assets)."""
        return self.joint_entropy() / self.layout.n_dims

    def joint_entropy(self) -> torch.Tensor:
        """The joint entropy: the sum over every head and asset (nats)."""
        total = sum(-(lsm.exp() * lsm).sum((-2, -1)) for lsm in self._categoricals())
        alpha, beta_, lbeta = self._get("alpha"), self._get("beta"), self._get("lbeta")
        ent = (
            lbeta
            - (alpha - 1) * torch.digamma(alpha)
            - (beta_ - 1) * torch.digamma(beta_)
            + (alpha + beta_ - 2) * torch.digamma(alpha + beta_)
        )
        return total + ent.sum(-1)

    def kl(self, other: HierarchicalActionDist) -> torch.Tensor:
        total = sum(
            (p.exp() * (p - q)).sum((-2, -1))
            for p, q in zip(self._categoricals(), other._categoricals(), strict=True)
        )
        a1, b1, lb1 = self._get("alpha"), self._get("beta"), self._get("lbeta")
        a2, b2, lb2 = other._get("alpha"), other._get("beta"), other._get("lbeta")
        beta_kl = (
            lb2
            - lb1
            + (a1 - a2) * torch.digamma(a1)
            + (b1 - b2) * torch.digamma(b1)
            + (a2 - a1 + b2 - b1) * torch.digamma(a1 + b1)
        )
        return total + beta_kl.sum(-1)

    def sample(self, *, sample_shape=None, **kwargs):
        raise HeadByHeadOnly(
            "a hierarchical action is sampled head by head by its module "
            "(HierarchicalHeads.sample); these inputs are conditioned on earlier choices"
        )

    def rsample(self, *, sample_shape=None, **kwargs):
        raise HeadByHeadOnly("the action has discrete parts: no reparameterised sample")

    def to_deterministic(self) -> Distribution:
        raise HeadByHeadOnly(
            "deterministic actions come from the module's forward_inference (head by head)"
        )


@functools.cache
def dist_class(layout: ActionLayout) -> type[HierarchicalActionDist]:
    """The distribution class for one layout (cached: one class object per layout)."""
    name = f"HierarchicalActionDist_{layout.n_assets}_{layout.n_styles}_{layout.n_horizons}"
    return type(name, (HierarchicalActionDist,), {"layout": layout})
