"""No look-ahead: what happens at or before bar c cannot depend on data after c."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.config import EnvConfig
from envs.core.layout import M_EVENT, M_NEXT_EVENT
from envs.single import PerpetualEnv
from tests.unit.envs.market import action, build, random_market

START = 100
STEPS = 30


def run(data, actions):
    env = PerpetualEnv(data, EnvConfig(window=6, risk_window=3))
    obs, _ = env.reset(options={"start": START})
    seen = [obs]
    for act in actions:
        obs, _, terminated, truncated, _ = env.step(act)
        seen.append(obs)
        if terminated or truncated:
            break
    return seen, env.ledger()


def perturb_after(data, cut, seed):
    """Scramble every input after bar `cut` except the public funding schedule."""
    rng = np.random.default_rng(seed)
    mkt = data.mkt.copy()
    keep = mkt[:, :, [M_EVENT, M_NEXT_EVENT]].copy()
    mkt[cut + 1 :] *= rng.uniform(0.5, 1.5, size=mkt[cut + 1 :].shape)
    mkt[:, :, [M_EVENT, M_NEXT_EVENT]] = keep
    out = build(mkt, n_features=data.feats.shape[2])
    feats = out.feats.copy()
    feats[: cut + 1] = data.feats[: cut + 1]
    feats[cut + 1 :] = rng.normal(size=feats[cut + 1 :].shape)
    return type(data)(**{**out.__dict__, "feats": feats})


@settings(max_examples=25, deadline=None)
@given(cut_step=st.integers(0, STEPS - 2), seed=st.integers(0, 10_000))
def test_observations_and_fills_up_to_bar_c_ignore_data_after_c(cut_step, seed):
    data = random_market(n_bars=400, n_assets=2, seed=3)
    rng = np.random.default_rng(seed)
    actions = [
        action(n_assets=2, trade=int(rng.integers(0, 3)), size=float(rng.uniform()),
               sl=float(rng.uniform()), tp=float(rng.uniform()),
               style=int(rng.integers(0, 5)), horizon=int(rng.integers(1, 5)))
        for _ in range(STEPS)
    ]
    cut = START + cut_step + 1  # the bar where the decision at START + cut_step fills

    seen, ledger = run(data, actions)
    seen_p, ledger_p = run(perturb_after(data, cut, seed), actions)

    assert len(seen_p) >= min(len(seen), cut_step + 1)
    for k in range(min(len(seen), cut_step + 1)):  # observations at decision bars START..cut-1
        for key in ("market", "risk", "portfolio"):
            np.testing.assert_array_equal(seen[k][key], seen_p[k][key])
    pd.testing.assert_frame_equal(
        ledger[ledger["bar"] <= cut].reset_index(drop=True),
        ledger_p[ledger_p["bar"] <= cut].reset_index(drop=True),
    )
