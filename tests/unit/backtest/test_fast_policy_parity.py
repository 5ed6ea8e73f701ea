"""The policy's numba twin (backtest.fast_kernels, reading weights only through
rl.modules.twin's declared layout) equals the torch module head by head, and the
layout refuses a module that drifted from it, naming what changed.

Parity runs the torch module in float64, so the two agree to rounding (1e-9) and any
difference in the maths (an input block in another order, a different activation or
normalisation) shows, not only large ones. Every head is compared: its distribution
inputs (logits / Beta concentrations, as forward_inference returns them) and its
deterministic action. The value head is torch-side (rl.modules.twin.TORCH_SIDE: a
deterministic backtest does not need it), so the twin has no value to compare.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from torch import nn

from backtest.fast import export_weights, run_hierarchical, supports
from backtest.fast_kernels import decide
from envs.config import EnvConfig
from envs.spaces import action_space, observation_space
from rl.algo import module_spec
from rl.config import TrainConfig
from rl.modules.twin import (
    GROUPS,
    TORCH_SIDE,
    TORCH_SIDE_KEYS,
    LayoutDrift,
    TwinUnsupported,
    TwinWeights,
    export_twin,
)

N_FEATURES = 7
BATCH = 96
TOL = {"rtol": 1e-9, "atol": 1e-9}

CONFIGS = {
    # the defaults (what training builds unless told otherwise)
    "default": ({}, 8),
    # every size different from the defaults and from each other, a window the patch does
    # not divide (24 bars, patches of 5), two transformer layers, 3 cross-asset heads
    "resized": (
        {"d_model": 12, "heads": 3, "layers": 2, "patch": 5, "ff_mult": 1, "risk_hidden": 5,
         "fusion_hidden": 20, "head_hidden": 10},
        3,
    ),
}
ASSETS = (1, 2, 5)
CASES = [(name, a) for name in CONFIGS for a in ASSETS]

HEADS = ("trade", "size", "stop_loss", "take_profit", "style", "horizon")
DISCRETE = {"trade", "style", "horizon"}


def build(config: str = "default", n_assets: int = 3, seed: int = 0, text_dim: int = 0,
          kind: str = "hierarchical"):
    """A fresh module of the named config for n_assets, its heads' weights redrawn larger so
    the random states below reach every decision and spread the Beta means (an untrained
    module's heads are nearly uniform, its sizes all near the initial size)."""
    overrides, horizon = CONFIGS[config]
    env_config = EnvConfig(execution={"max_horizon": horizon})
    model = {f"model.{k}": v for k, v in overrides.items()}
    model.update({"model.kind": kind, "model.text_dim": text_dim})
    torch.manual_seed(seed)
    spec = module_spec(TrainConfig().with_overrides(**model))
    spec.observation_space = observation_space(env_config, n_assets, N_FEATURES)
    if text_dim:
        from gymnasium import spaces

        spec.observation_space = spaces.Dict(
            {**spec.observation_space.spaces,
             "text": spaces.Box(-np.inf, np.inf, (4, text_dim), np.float32)}
        )
    spec.action_space = action_space(env_config, n_assets)
    module = spec.build()
    with torch.no_grad():
        for layer in module.heads.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, 2.0 / layer.in_features**0.5)
                layer.bias.normal_(0.0, 0.5)
    return module.eval()


def random_obs(module, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    spaces = module.observation_space
    return {
        k: torch.from_numpy(rng.standard_normal((BATCH, *spaces[k].shape)))
        for k in ("market", "risk", "portfolio")
    }


@functools.cache
def outputs(config: str, n_assets: int):
    """Torch's and the twin's (distribution inputs, actions) on the same random states."""
    module = build(config, n_assets).double()
    obs = random_obs(module, np.random.default_rng(n_assets))
    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: obs})
        encoded = module.market(obs["market"]).numpy()  # the torch side of the fast path
    torch_inputs = out[Columns.ACTION_DIST_INPUTS].numpy()
    torch_actions = {k: v.numpy() for k, v in out[Columns.ACTIONS].items()}

    twin = export_weights(module)
    a = n_assets
    inputs = np.full((BATCH, module.layout.input_dim), np.nan)
    trade, size = np.zeros((BATCH, a), np.int64), np.zeros((BATCH, a))
    limits, execution = np.zeros((BATCH, a, 2)), np.zeros((BATCH, a, 2), np.int64)
    for i in range(BATCH):
        decide(encoded[i], obs["risk"][i].numpy(), obs["portfolio"][i].numpy(), twin, trade[i],
               size[i], limits[i], execution[i], inputs[i])
    twin_actions = {"trade": trade, "size": size, "risk": limits.reshape(BATCH, -1),
                    "execution": execution.reshape(BATCH, -1)}
    return module.layout, (torch_inputs, torch_actions), (inputs, twin_actions)


def by_head(layout, inputs: np.ndarray, actions: dict[str, np.ndarray]) -> dict:
    """Per head: (distribution inputs (B, A, k), deterministic action (B, A))."""
    a, s = layout.n_assets, layout.n_styles
    execution, risk, size, trade = np.split(inputs, np.cumsum(layout.sizes)[:-1], axis=-1)
    execution, risk = execution.reshape(-1, a, s + layout.n_horizons), risk.reshape(-1, a, 4)
    return {
        "trade": (trade.reshape(-1, a, 3), actions["trade"]),
        "size": (size.reshape(-1, a, 2), actions["size"]),
        "stop_loss": (risk[..., :2], actions["risk"][:, 0::2]),
        "take_profit": (risk[..., 2:], actions["risk"][:, 1::2]),
        "style": (execution[..., :s], actions["execution"][:, 0::2]),
        "horizon": (execution[..., s:], actions["execution"][:, 1::2]),
    }


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize(("config", "n_assets"), CASES)
def test_every_head_of_the_twin_equals_torch(config, n_assets, head):
    layout, (t_inputs, t_actions), (n_inputs, n_actions) = outputs(config, n_assets)
    t_raw, t_act = by_head(layout, t_inputs, t_actions)[head]
    n_raw, n_act = by_head(layout, n_inputs, n_actions)[head]

    np.testing.assert_allclose(n_raw, t_raw, **TOL, err_msg=f"{head} distribution inputs")
    if head in DISCRETE:
        np.testing.assert_array_equal(n_act, t_act, err_msg=f"{head} action")
        assert len(np.unique(t_act)) > 1  # the states exercise more than one choice
    else:
        np.testing.assert_allclose(n_act, t_act, **TOL, err_msg=f"{head} action")
        assert t_act.std() > 1e-3


@pytest.mark.parametrize(("config", "n_assets"), CASES)
def test_twin_writes_the_whole_distribution_input_vector_in_torch_order(config, n_assets):
    _, (t_inputs, _), (n_inputs, _) = outputs(config, n_assets)
    assert not np.isnan(n_inputs).any()  # every entry written
    np.testing.assert_allclose(n_inputs, t_inputs, **TOL)


def test_every_trade_decision_is_reached():
    _, (_, t_actions), _ = outputs("default", 5)
    assert set(np.unique(t_actions["trade"])) == {0, 1, 2}


# --- the layout ----------------------------------------------------------------------


def test_export_reads_exactly_the_declared_keys():
    module = build()
    twin = export_twin(module)
    assert isinstance(twin, TwinWeights)
    state = module.state_dict()
    declared = {p.key for g in GROUPS for p in g.params}
    torch_side = {k for k in state if k.split(".")[0] in TORCH_SIDE or k in TORCH_SIDE_KEYS}
    assert declared | torch_side == set(state)
    assert not declared & torch_side
    for g in GROUPS:
        group = getattr(twin, g.name)
        for p in g.params:
            value = getattr(group, p.field)
            assert value.dtype == np.float64 and value.flags.c_contiguous
            np.testing.assert_array_equal(value, state[p.key].numpy())
    assert twin.cross.n_heads == module.cfg.heads
    assert twin.heads.n_styles == module.layout.n_styles


def _extra_head_layer(m):
    m.heads.trade.append(nn.Linear(3, 3))


def _renamed_head(m):
    m.heads.stop = m.heads.later
    del m.heads.later


def _extra_parameter(m):
    m.cross.gate = nn.Parameter(torch.ones(m.cfg.d_model))


def _extra_buffer(m):
    m.risk_lstm.register_buffer("scale", torch.ones(1))


def _new_top_level_layer(m):
    m.post = nn.Linear(4, 4)


def _wider_head(m):
    m.heads.size[0] = nn.Linear(m.heads.size[0].in_features, 7)
    m.heads.size[2] = nn.Linear(7, 2)


def _no_bias(m):
    m.fusion[0] = nn.Linear(m.fusion[0].in_features, m.fusion[0].out_features, bias=False)


def _other_activation(m):
    m.heads.later[1] = nn.ReLU()


def _approximate_gelu(m):
    m.fusion[1] = nn.GELU(approximate="tanh")


def _other_norm_eps(m):
    m.cross.norm1.eps = 1e-6


def _two_layer_lstm(m):
    lstm = m.risk_lstm.lstm
    m.risk_lstm.lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, 2, batch_first=True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_extra_head_layer, ["undeclared layer 'heads.trade.3'",
                             "unexpected key 'heads.trade.3.weight'"]),
        (_renamed_head, ["missing key 'heads.later.0.weight'",
                         "unexpected key 'heads.stop.0.weight'", "undeclared layer 'heads.stop'"]),
        (_extra_parameter, ["unexpected key 'cross.gate'"]),
        (_extra_buffer, ["unexpected key 'risk_lstm.scale'"]),
        (_new_top_level_layer, ["undeclared submodule 'post'", "unexpected key 'post.weight'"]),
        (_wider_head, ["key 'heads.size.0.weight' has shape (7,",
                       "key 'heads.size.2.weight' has shape (2, 7)"]),
        (_no_bias, ["missing key 'fusion.0.bias'"]),
        (_other_activation, ["layer 'heads.later.1' is a ReLU"]),
        (_approximate_gelu, ["layer 'fusion.1' has approximate='tanh'"]),
        (_other_norm_eps, ["layer 'cross.norm1' has eps=1e-06"]),
        (_two_layer_lstm, ["num_layers=2", "unexpected key 'risk_lstm.lstm.weight_ih_l1'"]),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_a_module_that_drifted_from_the_layout_fails_export_naming_the_key(change, named):
    module = build()
    change(module)
    with pytest.raises(LayoutDrift) as err:
        export_twin(module)
    for text in named:
        assert text in str(err.value)


def test_torch_side_parts_may_change_freely():
    """The market transformer runs in torch and the value head is not used: the twin
    reads neither, so their changes are not drift."""
    module = build()
    module.value_head.append(nn.Linear(1, 1))
    module.market.extra = nn.Parameter(torch.ones(3))
    export_twin(module)


def test_a_drifted_module_stops_the_fast_backtest_instead_of_running_it():
    from envs.registry import market_for

    data = market_for({"synthetic_days": 3, "synthetic_seed": 5})
    env_config = EnvConfig()
    module = build(n_assets=data.n_assets)
    module.heads.later[1] = nn.ReLU()
    assert supports(module)  # the kind is supported: no silent fallback to the torch loop
    with pytest.raises(LayoutDrift, match=r"heads\.later\.1"):
        run_hierarchical(module, data, env_config, data.first_valid, data.first_valid + 50, "x")


@pytest.mark.parametrize("kind", ["mlp", "text"])
def test_modules_the_twin_does_not_reproduce_are_refused(kind):
    module = build(kind="mlp") if kind == "mlp" else build(text_dim=6)
    assert not supports(module)
    with pytest.raises(TwinUnsupported, match="hierarchical"):
        export_twin(module)
