"""A hierarchical module with decisive heads, built without Ray, for backtest tests."""

import torch

from envs.vector import PerpetualVectorEnv
from rl.algo import module_spec
from rl.config import TrainConfig


def decisive_module(env: PerpetualVectorEnv, seed: int = 0, scale: float = 30.0):
    """A freshly initialised hierarchical module whose heads' weights are scaled up: an
    untrained module's heads are nearly uniform (small final layers), and a backtest of
    one that trades, stops and changes its mind exercises more of the code."""
    torch.manual_seed(seed)
    spec = module_spec(TrainConfig())
    spec.observation_space = env.single_observation_space
    spec.action_space = env.single_action_space
    module = spec.build()
    with torch.no_grad():
        for p in module.heads.parameters():
            p.mul_(scale)
    module.eval()
    return module
