"""The perpetual-futures simulator and its gymnasium environments (no RL framework here)."""

from envs.config import EnvConfig, ExecStyle
from envs.data import MarketArrays
from envs.single import PerpetualEnv
from envs.vector import PerpetualVectorEnv

__all__ = ["EnvConfig", "ExecStyle", "MarketArrays", "PerpetualEnv", "PerpetualVectorEnv"]
