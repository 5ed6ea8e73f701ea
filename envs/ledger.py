"""The per-episode ledger: every fill, fee, funding payment, stop, cancel and liquidation.

Rows come from the kernels' event buffers; `reconcile` checks the identity

    final equity = initial + realised + unrealised - fees - funding - spread
                   - impact - liquidation fees + bad debt
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.core.layout import (
    BAD_DEBT,
    EQUITY,
    EV_ASSET,
    EV_BAD_DEBT,
    EV_BAR,
    EV_FEE,
    EV_FUNDING,
    EV_IMPACT,
    EV_KIND,
    EV_PRICE,
    EV_QTY,
    EV_REALIZED,
    EV_SPREAD,
    EVENT_KINDS,
    FEES,
    FUNDING,
    IMPACT,
    K_LIQUIDATION,
    LIQ_FEES,
    N_EVENT,
    REALIZED,
    SPREAD,
    WALLET,
)

LEDGER_COLUMNS = (
    "timestamp", "bar", "asset", "kind", "qty", "price", "notional", "fee", "spread",
    "impact", "funding", "realized_pnl", "liquidation_fee", "bad_debt",
)


def ledger_frame(rows: np.ndarray, timestamps: np.ndarray, assets: tuple[str, ...]) -> pd.DataFrame:
    """Event rows (k, N_EVENT) as a DataFrame; liquidation fees get their own column."""
    rows = rows.reshape(-1, N_EVENT)
    bars = rows[:, EV_BAR].astype(np.int64)
    kinds = rows[:, EV_KIND].astype(np.int64)
    asset_idx = rows[:, EV_ASSET].astype(np.int64)
    liquidation = kinds == K_LIQUIDATION
    fees = rows[:, EV_FEE]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(timestamps[bars], utc=True),
            "bar": bars,
            "asset": [assets[i] if i >= 0 else "" for i in asset_idx],
            "kind": [EVENT_KINDS[k] for k in kinds],
            "qty": rows[:, EV_QTY],
            "price": rows[:, EV_PRICE],
            "notional": np.abs(rows[:, EV_QTY]) * rows[:, EV_PRICE],
            "fee": np.where(liquidation, 0.0, fees),
            "spread": rows[:, EV_SPREAD],
            "impact": rows[:, EV_IMPACT],
            "funding": rows[:, EV_FUNDING],
            "realized_pnl": rows[:, EV_REALIZED],
            "liquidation_fee": np.where(liquidation, fees, 0.0),
            "bad_debt": rows[:, EV_BAD_DEBT],
        },
        columns=list(LEDGER_COLUMNS),
    )


def reconcile(ledger: pd.DataFrame, initial: float, unrealized: float) -> float:
    """Equity implied by the ledger: initial + realised + unrealised - every cost + bad debt."""
    return (
        initial
        + ledger["realized_pnl"].sum()
        + unrealized
        - ledger["fee"].sum()
        - ledger["funding"].sum()
        - ledger["spread"].sum()
        - ledger["impact"].sum()
        - ledger["liquidation_fee"].sum()
        + ledger["bad_debt"].sum()
    )


def account_totals(acct: np.ndarray) -> dict[str, float]:
    """The running totals the kernels keep for one account."""
    return {
        "equity": float(acct[EQUITY]),
        "wallet": float(acct[WALLET]),
        "realized_pnl": float(acct[REALIZED]),
        "fees": float(acct[FEES]),
        "funding": float(acct[FUNDING]),
        "spread": float(acct[SPREAD]),
        "impact": float(acct[IMPACT]),
        "liquidation_fees": float(acct[LIQ_FEES]),
        "bad_debt": float(acct[BAD_DEBT]),
    }
