"""The PPO RLModules: the hierarchical actor-critic and its MLP baseline.

Both are RLlib new-API-stack ``TorchRLModule``s with the ``ValueFunctionAPI`` and the
same interface: a Dict observation (``market``, ``risk``, ``portfolio``, optional
``text``) in, the composite Dict action out, through the same ordered heads
(rl.modules.heads) and action distribution (rl.distribution). They differ only in
the encoder that turns the observation into the heads' per-asset inputs.

Their settings arrive as ``model_config={"quantum": ModelConfig.model_dump()}``
(see ``rl.algo``): a typed config inside, RLlib's plain dict only at the boundary.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from rl.config import ModelConfig
from rl.distribution import ActionLayout, dist_class
from rl.modules.encoders import (
    CrossAssetAttention,
    MarketTransformer,
    MLPEncoder,
    RiskLSTM,
    TextEncoder,
    init_linear,
)
from rl.modules.heads import HierarchicalHeads
from rl.returns import RETURN_STATS, new_stats

ATTENTION = "cross_asset_attention"
"""Extra forward output: (B, A, A) weights of each asset's decision over the assets."""


class Act(NamedTuple):
    """One forward pass of the policy (see _PolicyModule.act)."""

    actions: dict[str, torch.Tensor]
    inputs: torch.Tensor
    """Action-distribution inputs (the heads' logits and size parameters)."""
    value: torch.Tensor
    attention: torch.Tensor | None
    """Cross-asset attention weights (B, A, A), or None for models without them."""


def layout_of(action_space) -> ActionLayout:
    """The ActionLayout of the env's Dict action space."""
    nvec = action_space["execution"].nvec
    return ActionLayout(len(action_space["trade"].nvec), int(nvec[0]), int(nvec[1]))


class _PolicyModule(TorchRLModule, ValueFunctionAPI):
    """Shared glue: sampling, training inputs and values around an encoder."""

    def setup(self) -> None:
        self.cfg = ModelConfig(**self.model_config["quantum"])
        self.layout = layout_of(self.action_space)
        spaces = self.observation_space
        self.text_width = spaces["text"].shape[-1] if "text" in spaces.spaces else 0
        if self.cfg.text_dim and self.cfg.text_dim != self.text_width:
            raise ValueError(
                f"model.text_dim {self.cfg.text_dim} needs a 'text' part of that width in "
                f"the observation space, which has {self.text_width or 'none'}")
        self.window, self.n_assets, self.n_features = spaces["market"].shape
        self.base_dim, self.context_dim = self._build_encoder()
        self.heads = HierarchicalHeads(
            self.layout, self.base_dim, self.cfg.head_hidden, size_mean=self.cfg.initial_size
        )
        self.value_head = nn.Sequential(
            nn.Linear(self.context_dim, self.cfg.head_hidden), nn.Tanh(),
            nn.Linear(self.cfg.head_hidden, 1),
        )
        init_linear(self.value_head[0])
        init_linear(self.value_head[2], gain=1.0)
        self._dist_cls = dist_class(self.layout)
        # running std of the discounted return (rl.returns): the value head's units
        self.register_buffer(RETURN_STATS, new_stats())
        if self.cfg.value_only:  # recalibration: gradients reach the value head only
            for name, param in self.named_parameters():
                param.requires_grad_(name.startswith("value_head."))

    @abc.abstractmethod
    def _build_encoder(self) -> tuple[int, int]:
        """Create the encoder's layers; return (per-asset base width, context width)."""

    @abc.abstractmethod
    def encode(
        self, obs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per-asset head inputs (B, A, base), context (B, C), cross-asset weights or None."""

    def act(self, obs: dict[str, torch.Tensor], deterministic: bool) -> Act:
        """One encoding of ``obs`` gives the actions, their distribution inputs, the value
        of the state and the cross-asset weights: the single forward pass that rollouts
        (forward_inference/forward_exploration) and serving (serving.inference) share, so
        a served decision is computed by the code that trained it."""
        base, context, weights = self.encode(obs)
        actions, inputs = self.heads.sample(base, deterministic)
        return Act(actions, inputs, self.value_head(context).squeeze(-1), weights)

    def _sample(self, batch: dict[str, Any], deterministic: bool) -> dict[str, Any]:
        act = self.act(batch[Columns.OBS], deterministic)
        out = {Columns.ACTIONS: act.actions, Columns.ACTION_DIST_INPUTS: act.inputs}
        if not deterministic:
            out[Columns.ACTION_LOGP] = self._dist_cls(act.inputs).logp(act.actions)
            # the value of the sampled state, for GAE (rl.gae): free here, a second pass
            # over the whole batch in the learner otherwise
            out[Columns.VF_PREDS] = act.value
        if act.attention is not None:
            out[ATTENTION] = act.attention
        return out

    # TorchRLModule switches train/eval mode around every forward call, recursing through all
    # submodules (a sixth of a small PPO update). These modules have no dropout or batch
    # norm, so the mode only changes which kernels run: switch only when it differs.
    def forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.training:
            self.eval()
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.training:
            self.eval()
        return self._forward_exploration(batch, **kwargs)

    def forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.inference_only:
            raise RuntimeError("forward_train on an inference-only module")
        if not self.training:
            self.train()
        return self._forward_train(batch, **kwargs)

    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._sample(batch, deterministic=True)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._sample(batch, deterministic=False)

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        base, context, _ = self.encode(batch[Columns.OBS])
        inputs = self.heads.inputs_given(base, batch[Columns.ACTIONS])
        return {Columns.ACTION_DIST_INPUTS: inputs, Columns.EMBEDDINGS: context}

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Value estimates. With ``embeddings`` (from forward_train: the PPO loss) they carry
        gradients; without, they are targets (GAE, serving) and are computed without an
        autograd graph: RLlib's GAE connector calls this on the whole train batch outside
        no_grad, which cost a third of an iteration for the hierarchical model."""
        if embeddings is None:
            with torch.no_grad():
                _, embeddings, _ = self.encode(batch[Columns.OBS])
                return self.value_head(embeddings).squeeze(-1)
        return self.value_head(embeddings).squeeze(-1)

    def get_train_action_dist_cls(self):
        return self._dist_cls

    def get_exploration_action_dist_cls(self):
        return self._dist_cls

    def get_inference_action_dist_cls(self):
        return self._dist_cls


class HierarchicalPPOModule(_PolicyModule):
    """Market transformer per asset, cross-asset attention, risk LSTM, optional text
    encoder, a fusion layer, then the ordered heads and a value head."""

    def _build_encoder(self) -> tuple[int, int]:
        cfg, spaces = self.cfg, self.observation_space
        self.market = MarketTransformer(cfg, self.window, self.n_features)
        self.cross = CrossAssetAttention(cfg, self.n_assets, spaces["portfolio"].shape[-1])
        self.risk_lstm = RiskLSTM(cfg, spaces["risk"].shape[-1])
        text = self.text_width > 0
        self.text = TextEncoder(cfg, self.text_width, self.n_assets) if text else None
        fused_in = self.n_assets * cfg.d_model + cfg.risk_hidden
        fused_in += (1 + self.n_assets) * cfg.text_hidden if text else 0
        self.fusion = nn.Sequential(nn.Linear(fused_in, cfg.fusion_hidden), nn.GELU())
        return cfg.fusion_hidden + cfg.d_model + (cfg.text_hidden if text else 0), \
            cfg.fusion_hidden

    def encode(self, obs):
        assets, weights = self.cross(self.market(obs["market"]), obs["portfolio"])
        parts = [assets.flatten(1), self.risk_lstm(obs["risk"])]
        own = [assets]
        if self.text is not None:
            market_news, asset_news = self.text(obs["text"])
            parts += [market_news, asset_news.flatten(1)]  # the value head sees every asset's
            own.append(asset_news)  # each asset's heads read the news about it
        context = self.fusion(torch.cat(parts, dim=-1))
        base = torch.cat([context.unsqueeze(1).expand(-1, self.n_assets, -1), *own], -1)
        return base, context, weights


class MLPPPOModule(_PolicyModule):
    """The baseline: one MLP over the flattened observation, then the same heads."""

    def _build_encoder(self) -> tuple[int, int]:
        spaces = self.observation_space
        keys = ["market", "risk", "portfolio"] + (["text"] if self.text_width else [])
        self.keys = keys
        sizes = [int(torch.tensor(spaces[k].shape).prod()) for k in keys]
        self.mlp = MLPEncoder(sizes, self.cfg.mlp_hidden)
        init_linear(self.mlp)
        self.asset = nn.Parameter(torch.randn(self.n_assets, 8) * 0.1)
        return self.mlp.out_dim + 8, self.mlp.out_dim

    def encode(self, obs):
        context = self.mlp([obs[k] for k in self.keys])
        b = context.shape[0]
        base = torch.cat(
            [context.unsqueeze(1).expand(-1, self.n_assets, -1), self.asset.expand(b, -1, -1)], -1
        )
        return base, context, None


MODULES = {"hierarchical": HierarchicalPPOModule, "mlp": MLPPPOModule}
