"""EnvConfig flattened into one float64 vector for the kernels (offsets named here)."""

from __future__ import annotations

import numpy as np

from envs.config import EnvConfig

P_TAKER_FEE = 0
P_MAKER_FEE = 1
P_IMPACT_K = 2
P_LIQ_FEE = 3
P_FUNDING_MULT = 4
P_MAX_LEVERAGE = 5
P_MAX_CONCENTRATION = 6
P_DAILY_LOSS = 7
P_MAX_DRAWDOWN = 8
P_REBALANCE = 9
P_FUNDING_WINDOW = 10
P_SL_LO = 11
P_SL_HI = 12
P_TP_LO = 13
P_TP_HI = 14
P_BARS_PER_STEP = 15
P_W_DRAWDOWN = 16
P_W_TURNOVER = 17
P_W_LEVERAGE = 18
P_REWARD_SCALE = 19
P_INITIAL = 20
P_EPISODE_STEPS = 21
P_REBALANCE_BAND = 22
P_MIN_HALF_SPREAD = 23
P_MAX_HALF_SPREAD = 24
P_STOPS = 25
N_PARAMS = 26


def pack_params(config: EnvConfig) -> np.ndarray:
    """The config as the kernels read it."""
    c, lim, ex, rw = config.costs, config.limits, config.execution, config.reward
    values = {
        P_TAKER_FEE: c.taker_fee,
        P_MAKER_FEE: c.maker_fee,
        P_IMPACT_K: c.impact_k,
        P_LIQ_FEE: config.margin.liquidation_fee,
        P_FUNDING_MULT: config.funding_multiplier,
        P_MAX_LEVERAGE: lim.max_leverage,
        P_MAX_CONCENTRATION: lim.max_concentration,
        P_DAILY_LOSS: lim.daily_loss_limit,
        P_MAX_DRAWDOWN: lim.max_drawdown,
        P_REBALANCE: ex.rebalance_threshold,
        P_REBALANCE_BAND: ex.rebalance_band,
        P_FUNDING_WINDOW: ex.funding_window_bars,
        P_SL_LO: ex.stop_loss_atr[0],
        P_SL_HI: ex.stop_loss_atr[1],
        P_TP_LO: ex.take_profit_atr[0],
        P_TP_HI: ex.take_profit_atr[1],
        P_BARS_PER_STEP: config.bars_per_step,
        P_W_DRAWDOWN: rw.drawdown,
        P_W_TURNOVER: rw.turnover,
        P_W_LEVERAGE: rw.leverage,
        P_REWARD_SCALE: rw.scale,
        P_INITIAL: config.initial_balance,
        P_EPISODE_STEPS: config.episode_steps,
        P_MIN_HALF_SPREAD: c.min_half_spread,
        P_MAX_HALF_SPREAD: c.max_half_spread,
        P_STOPS: float(ex.stops),
    }
    out = np.zeros(N_PARAMS, dtype=np.float64)
    for index, value in values.items():
        out[index] = value
    return out
