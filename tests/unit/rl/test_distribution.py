"""The composite action distribution and the hierarchical heads, checked by hand."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from envs.config import EnvConfig, ExecutionConfig
from envs.spaces import action_space, observation_space
from rl.config import ModelConfig
from rl.distribution import ActionLayout, dist_class
from rl.modules.policy import ATTENTION, MODULES


def _log_softmax(logits, k):
    m = max(logits)
    return logits[k] - m - math.log(sum(math.exp(x - m) for x in logits))


def _softplus(x):
    return math.log1p(math.exp(x))


def _beta_logpdf(raw_a, raw_b, x):
    a, b = 1 + _softplus(raw_a), 1 + _softplus(raw_b)
    return (
        (a - 1) * math.log(x)
        + (b - 1) * math.log(1 - x)
        + math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
    )


def _tiny_module(kind="hierarchical", n_assets=2, text_dim=0):
    env_config = EnvConfig(window=4, risk_window=3, execution=ExecutionConfig(max_horizon=2))
    obs_space = observation_space(env_config, n_assets, 5)
    if text_dim:
        obs_space = spaces.Dict(
            {**obs_space.spaces, "text": spaces.Box(-1, 1, (3, text_dim), np.float32)}
        )
    model = ModelConfig(
        kind=kind, d_model=8, patch=2, heads=2, risk_hidden=4, text_dim=text_dim,
        text_hidden=4, fusion_hidden=8, head_hidden=8, mlp_hidden=(16,),
    )
    spec = RLModuleSpec(
        module_class=MODULES[kind],
        observation_space=obs_space,
        action_space=action_space(env_config, n_assets),
        model_config={"quantum": model.model_dump()},
    )
    torch.manual_seed(0)
    module = spec.build()
    # larger head weights than the near-uniform PPO init, so the hand computation is not trivial
    with torch.no_grad():
        for p in module.heads.parameters():
            p.normal_(0, 0.5)
    return module, obs_space


def _obs(space, batch):
    rng = np.random.default_rng(1)
    return {
        k: torch.tensor(rng.normal(size=(batch, *s.shape)), dtype=torch.float32)
        for k, s in space.spaces.items()
    }


def test_logp_of_a_sampled_action_equals_the_hand_computed_sum_over_conditioned_heads():
    module, space = _tiny_module()
    obs = _obs(space, 1)
    out = module.forward_exploration({Columns.OBS: obs})
    act = {k: v[0].detach().numpy() for k, v in out[Columns.ACTIONS].items()}

    # by hand: run each head on its own inputs, conditioned on the earlier choices
    base, _, _ = module.encode(obs)
    heads = module.heads
    trade = out[Columns.ACTIONS]["trade"]
    size = out[Columns.ACTIONS]["size"]
    trade_raw = heads.trade(base)[0].detach().numpy()
    size_raw = heads._size_raw(base, trade)[0].detach().numpy()
    later_raw = heads._later_raw(base, trade, size)[0].detach().numpy()
    expected = 0.0
    for a in range(2):
        expected += _log_softmax(trade_raw[a], act["trade"][a])
        expected += _beta_logpdf(size_raw[a, 0], size_raw[a, 1], act["size"][a])
        expected += _beta_logpdf(later_raw[a, 0], later_raw[a, 1], act["risk"][2 * a])
        expected += _beta_logpdf(later_raw[a, 2], later_raw[a, 3], act["risk"][2 * a + 1])
        styles, horizons = later_raw[a, 4:9], later_raw[a, 9:]
        expected += _log_softmax(styles, act["execution"][2 * a])
        expected += _log_softmax(horizons, act["execution"][2 * a + 1])

    assert out[Columns.ACTION_LOGP].item() == pytest.approx(expected, rel=1e-5)
    # the PPO loss path: inputs recomputed from the stored actions give the same log-prob
    train_out = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: out[Columns.ACTIONS]})
    dist = module.get_train_action_dist_cls().from_logits(train_out[Columns.ACTION_DIST_INPUTS])
    assert dist.logp(out[Columns.ACTIONS]).item() == pytest.approx(expected, rel=1e-5)


def test_later_heads_are_conditioned_on_the_earlier_choices():
    module, space = _tiny_module()
    obs = _obs(space, 1)
    base, _, _ = module.encode(obs)
    longs, shorts = torch.tensor([[2, 2]]), torch.tensor([[0, 0]])

    size_given_long = module.heads._size_raw(base, longs)
    size_given_short = module.heads._size_raw(base, shorts)
    later_small = module.heads._later_raw(base, longs, torch.tensor([[0.1, 0.1]]))
    later_large = module.heads._later_raw(base, longs, torch.tensor([[0.9, 0.9]]))

    assert not torch.allclose(size_given_long, size_given_short)
    assert not torch.allclose(later_small, later_large)


def test_joint_entropy_and_kl_are_sums_over_heads_and_entropy_is_per_dimension():
    layout = ActionLayout(n_assets=1, n_styles=5, n_horizons=2)
    cls = dist_class(layout)
    zeros = torch.zeros(1, layout.input_dim)
    uniform = cls.from_logits(zeros)
    # categorical parts uniform: ln 3 + ln 5 + ln 2; Beta(1 + ln 2, 1 + ln 2) parts by torch
    beta = torch.distributions.Beta(torch.tensor(1 + math.log(2)), torch.tensor(1 + math.log(2)))
    expected = math.log(3) + math.log(5) + math.log(2) + 3 * beta.entropy().item()
    assert uniform.joint_entropy().item() == pytest.approx(expected, rel=1e-6)
    assert uniform.entropy().item() == pytest.approx(expected / 6, rel=1e-6)

    assert uniform.kl(cls.from_logits(zeros)).item() == pytest.approx(0.0, abs=1e-7)
    shifted = zeros.clone()
    shifted[0, -3:] = torch.tensor([2.0, 0.0, 0.0])  # only the trade logits change
    p = torch.softmax(torch.zeros(3), 0)
    q = torch.softmax(torch.tensor([2.0, 0.0, 0.0]), 0)
    assert uniform.kl(cls.from_logits(shifted)).item() == pytest.approx(
        float((p * (p.log() - q.log())).sum()), rel=1e-5
    )


def test_the_distribution_refuses_to_sample_a_joint_action_on_its_own():
    cls = dist_class(ActionLayout(1, 5, 2))
    with pytest.raises(NotImplementedError, match="head by head"):
        cls.from_logits(torch.zeros(1, cls.layout.input_dim)).sample()


@pytest.mark.parametrize(
    ("kind", "text_dim"), [("hierarchical", 0), ("hierarchical", 6), ("mlp", 0)]
)
def test_modules_act_in_the_env_action_space_and_value_every_observation(kind, text_dim):
    module, space = _tiny_module(kind, n_assets=3, text_dim=text_dim)
    obs = _obs(space, 5)
    greedy = module.forward_inference({Columns.OBS: obs})
    sampled = module.forward_exploration({Columns.OBS: obs})
    values = module.compute_values({Columns.OBS: obs})

    for out in (greedy, sampled):
        for key, value in out[Columns.ACTIONS].items():
            part = module.action_space[key]
            for row in value.detach().numpy():
                assert part.contains(row.astype(part.dtype)), (key, row)
    assert values.shape == (5,) and torch.isfinite(values).all()
    if kind == "hierarchical":
        weights = greedy[ATTENTION]
        assert weights.shape == (5, 3, 3)
        assert torch.allclose(weights.sum(-1), torch.ones(5, 3), atol=1e-5)


def test_text_encoder_changes_the_policy_when_text_is_present():
    module, space = _tiny_module(text_dim=6)
    obs = _obs(space, 2)
    silent = {**obs, "text": torch.zeros_like(obs["text"])}
    _, with_text, _ = module.encode(obs)
    _, without, _ = module.encode(silent)
    assert not torch.allclose(with_text, without)


def test_text_dim_without_a_text_observation_is_an_error():
    env_config = EnvConfig(window=4, risk_window=3)
    spec = RLModuleSpec(
        module_class=MODULES["hierarchical"],
        observation_space=observation_space(env_config, 2, 5),
        action_space=action_space(env_config, 2),
        model_config={"quantum": ModelConfig(d_model=8, text_dim=6).model_dump()},
    )
    with pytest.raises(ValueError, match="'text' part"):
        spec.build()


def test_closed_form_entropy_and_kl_match_torch_distributions_on_random_inputs():
    layout = ActionLayout(n_assets=2, n_styles=5, n_horizons=3)
    cls = dist_class(layout)
    torch.manual_seed(3)
    p_in, q_in = torch.randn(4, layout.input_dim), torch.randn(4, layout.input_dim)
    p, q = cls.from_logits(p_in), cls.from_logits(q_in)

    def parts(inputs):
        execution, risk, size, trade = torch.split(inputs, layout.sizes, dim=-1)
        execution = execution.reshape(4, 2, 8)
        conc = 1 + torch.nn.functional.softplus(
            torch.cat([size.reshape(4, 2, 2), risk.reshape(4, 4, 2)], 1)
        )
        td = torch.distributions
        return [
            td.Categorical(logits=trade.reshape(4, 2, 3)),
            td.Categorical(logits=execution[..., :5]),
            td.Categorical(logits=execution[..., 5:]),
            td.Beta(conc[..., 0], conc[..., 1]),
        ]

    expected_entropy = sum(d.entropy().sum(-1) for d in parts(p_in))
    expected_kl = sum(
        torch.distributions.kl_divergence(a, b).sum(-1)
        for a, b in zip(parts(p_in), parts(q_in), strict=True)
    )
    torch.testing.assert_close(p.joint_entropy(), expected_entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p.entropy(), expected_entropy / 12, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p.kl(q), expected_kl, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size_mean", [0.05, 0.2, 0.7])
def test_the_initial_policy_sizes_positions_at_the_configured_mean(size_mean):
    from rl.modules.heads import HierarchicalHeads

    torch.manual_seed(0)
    heads = HierarchicalHeads(ActionLayout(3, 5, 8), base_dim=16, hidden=32, size_mean=size_mean)

    actions, _ = heads.sample(torch.randn(4000, 3, 16), deterministic=False)

    assert actions["size"].mean().item() == pytest.approx(size_mean, rel=0.1)
    assert (actions["trade"] == 1).float().mean().item() == pytest.approx(1 / 3, abs=0.05)


@pytest.mark.parametrize("kind", ["hierarchical", "mlp"])
def test_act_is_the_forward_pass_that_rollouts_and_serving_share(kind):
    module, space = _tiny_module(kind)
    module.eval()  # forward_inference's mode (the transformer's kernels differ by mode)
    obs = _obs(space, 5)
    with torch.no_grad():
        act = module.act(obs, deterministic=True)
        inference = module.forward_inference({Columns.OBS: obs})
        values = module.compute_values({Columns.OBS: obs})
        torch.manual_seed(3)
        explored = module.forward_exploration({Columns.OBS: obs})
        torch.manual_seed(3)
        sampled = module.act(obs, deterministic=False)

    for head, actions in inference[Columns.ACTIONS].items():
        assert torch.equal(act.actions[head], actions), head
        assert torch.equal(sampled.actions[head], explored[Columns.ACTIONS][head]), head
    assert torch.equal(act.inputs, inference[Columns.ACTION_DIST_INPUTS])
    assert torch.allclose(act.value, values)
    assert torch.equal(sampled.value, explored[Columns.VF_PREDS])
    assert (act.attention is None) == (kind == "mlp")
    if act.attention is not None:
        assert torch.equal(act.attention, inference[ATTENTION])
