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
P_SHIELD = 26
"""1.0 when the risk shield is on; its settings follow (envs.config.ShieldConfig)."""
P_VT_TARGET = 27
P_VT_MAX_LEV = 28
P_CORR_THRESHOLD = 29
P_CORR_MAX_GROUP = 30
P_MAX_GROSS = 31
P_VAR_Z = 32
P_ES_K = 33
P_MAX_VAR = 34
P_MAX_ES = 35
P_MAX_MARGIN = 36
P_REGIME_VOL = 37
"""4 multipliers, by volatility regime code (unknown, low, normal, high)."""
P_REGIME_TREND = 41
"""4 multipliers, by trend regime code (unknown, down, sideways, up)."""
P_DD_LEVEL = 45
"""MAX_DRAWDOWN_STEPS drawdown levels (inf past the schedule's last), then as many
multipliers."""
P_DD_MULT = 49
P_TIME_STOP = 53
"""Bars a position may be held (0: no time stop)."""
P_TRAIL_ATR = 54
"""Trailing stop distance in ATRs (0: off)."""
P_BREAK_EVEN_ATR = 55
"""Profit in ATRs that moves the stop to the entry price (0: off)."""
N_PARAMS = 56
P_ASSET_CAP = N_PARAMS
"""Per-asset position caps follow the settings when pack_params is given the assets."""


def pack_params(config: EnvConfig, assets: tuple[str, ...] | list[str] = ()) -> np.ndarray:
    """The config as the kernels read it; with ``assets``, followed by each asset's position
    cap (P_ASSET_CAP + a: MarginConfig.position_cap at the account's leverage)."""
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
        P_TIME_STOP: ex.time_stop_bars or 0,
        P_TRAIL_ATR: ex.trailing_stop_atr or 0.0,
        P_BREAK_EVEN_ATR: ex.break_even_atr or 0.0,
    }
    out = np.zeros(N_PARAMS + len(assets), dtype=np.float64)
    for index, value in values.items():
        out[index] = value
    _pack_shield(config, out)
    for a, asset in enumerate(assets):
        out[P_ASSET_CAP + a] = config.margin.position_cap(asset, lim.max_leverage)
    return out


def _pack_shield(config: EnvConfig, out: np.ndarray) -> None:
    """The shield's settings; a disabled limit (None) reads as infinite."""
    from statistics import NormalDist

    from envs.config import MAX_DRAWDOWN_STEPS
    from risk.regimes import TREND_LABELS, VOL_LABELS

    shield = config.shield
    sizing = shield.sizing
    z = NormalDist().inv_cdf(shield.var_confidence)
    out[P_SHIELD] = float(shield.enabled)
    out[P_VT_TARGET] = sizing.vol_target.target_vol
    out[P_VT_MAX_LEV] = sizing.vol_target.max_leverage
    out[P_CORR_THRESHOLD] = sizing.correlation.threshold
    out[P_CORR_MAX_GROUP] = sizing.correlation.max_group_exposure
    out[P_MAX_GROSS] = sizing.max_gross_leverage
    out[P_VAR_Z] = z
    out[P_ES_K] = NormalDist().pdf(z) / (1.0 - shield.var_confidence)
    for slot, limit in ((P_MAX_VAR, shield.max_var), (P_MAX_ES, shield.max_es),
                        (P_MAX_MARGIN, shield.max_margin_ratio)):
        out[slot] = np.inf if limit is None else limit
    multipliers = sizing.regime.multipliers
    for k, label in enumerate(VOL_LABELS):
        out[P_REGIME_VOL + k] = multipliers.get(label, 1.0)
    for k, label in enumerate(TREND_LABELS):
        out[P_REGIME_TREND + k] = multipliers.get(label, 1.0)
    out[P_DD_LEVEL : P_DD_LEVEL + MAX_DRAWDOWN_STEPS] = np.inf
    out[P_DD_MULT : P_DD_MULT + MAX_DRAWDOWN_STEPS] = 1.0
    for k, (level, mult) in enumerate(sizing.drawdown.steps):
        out[P_DD_LEVEL + k] = level
        out[P_DD_MULT + k] = mult
