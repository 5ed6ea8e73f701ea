"""Field offsets of the state arrays, and the codes used in them.

State is a struct of arrays, so numba can fuse one step for N envs in a loop:

- ``acct``  (n_envs, N_ACCT)          account-level values
- ``book``  (n_envs, n_assets, N_BOOK) per-asset position, working order and stops
- ``events`` (n_envs, capacity, N_EVENT) this step's ledger events (see EV_*)

Module-level ints are compile-time constants to numba.
"""

# acct: account
WALLET = 0
"""Cash: initial + realised - fees - funding - spread - impact - liquidation fees + bad debt."""
PEAK = 1
DAY_START = 2
DAY = 3
BAD_DEBT = 4
FEES = 5
FUNDING = 6
SPREAD = 7
IMPACT = 8
REALIZED = 9
LIQ_FEES = 10
EQUITY = 11
TRADED = 12
"""Notional traded during the current step (turnover numerator)."""
LIQUIDATED = 13
MAINT = 14
"""Maintenance margin at the last mark."""
EWVAR = 15
"""Exponentially weighted variance of step log returns (a running risk estimate)."""
HIST_HEAD = 16
"""Next row to write in the ring buffer of risk vectors."""
EP_STEPS = 17
"""Episode totals from here on (envs.episode_stats reads them at the episode's end):
decisions taken so far."""
EP_REWARD = 18
EP_SQ_RETURN = 19
"""Sum of squared step log returns (for the episode's Sharpe ratio)."""
EP_MAX_DRAWDOWN = 20
EP_TERMS = 21
"""First of the per-term sums of the reward terms (log_return, drawdown, turnover,
leverage: 4 slots)."""
N_ACCT = 25

# book: per asset
QTY = 0
ENTRY = 1
REMAIN = 2
"""Signed quantity of the working order still to execute."""
BARS_LEFT = 3
STYLE = 4
LIMIT_PX = 5
CLIP = 6
SL_PX = 7
TP_PX = 8
OPENED_AT = 9
"""Bar index at which the current position was opened (for time-in-position)."""
SHIELD_SCALE = 10
"""|target after the risk shield| / |target the policy asked| at the last decision (1: the
shield left it alone or there was no target)."""
SHIELD_RULES = 11
"""Bitmask of the shield rules that cut the last decision's target (SHIELD_RULE_NAMES)."""
N_BOOK = 12

# risk shield rules (bits of SHIELD_RULES), in the order they apply
R_VOL_TARGET = 1
R_REGIME = 2
R_DRAWDOWN = 4
R_CORRELATION = 8
R_GROSS = 16
R_VAR = 32
R_ES = 64
R_MARGIN = 128
SHIELD_RULE_NAMES = ("vol_target", "regime", "drawdown", "correlation", "gross", "var", "es",
                     "margin")

# events: one ledger row
EV_BAR = 0
EV_ASSET = 1
EV_KIND = 2
EV_QTY = 3
EV_PRICE = 4
EV_FEE = 5
EV_SPREAD = 6
EV_IMPACT = 7
EV_FUNDING = 8
EV_REALIZED = 9
EV_BAD_DEBT = 10
N_EVENT = 11

# event kinds
K_FILL = 0
K_STOP_LOSS = 1
K_TAKE_PROFIT = 2
K_FUNDING = 3
K_LIQUIDATION = 4
K_CANCEL = 5
K_TIME_STOP = 6
EVENT_KINDS = ("fill", "stop_loss", "take_profit", "funding", "liquidation", "cancel",
               "time_stop")

# market arrays stacked on the last axis of `mkt` (n_bars, n_assets, N_MKT)
M_OPEN = 0
M_HIGH = 1
M_LOW = 2
M_CLOSE = 3
M_MARK = 4
M_VOLUME = 5
M_FUNDING = 6
M_EVENT = 7
M_ATR = 8
M_HALF_SPREAD = 9
M_DAILY_VOL = 10
M_DAILY_NOTIONAL = 11
M_AVG_VOLUME = 12
M_FUNDING_LAST = 13
M_NEXT_EVENT = 14
"""Bars until the next funding event (from the public schedule of event times)."""
M_VOL_CODE = 15
"""The asset's volatility regime (risk.regimes codes: 0 unknown, 1 low, 2 normal, 3 high)."""
M_TREND_CODE = 16
"""The asset's trend regime (0 unknown, 1 down, 2 sideways, 3 up)."""
M_COV = 17
"""First of n_assets slots: row a of the one-day covariance matrix of log returns (from
the trailing day of bars), so mkt's last axis is N_MKT + n_assets wide."""
N_MKT = 17
