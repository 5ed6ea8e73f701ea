"""One-screen statistics of an aligned market frame (what `quantum data summary` shows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.schema import bars_per_year


def market_summary(aligned: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Per-asset statistics of an aligned frame, one row per asset.

    Volatility is annualised per bar (sqrt of bars per 365-day year), not with
    sqrt(252): crypto trades every minute of every day. Funding is annualised
    from the mean rate per event times events per year (3 a day).
    """
    rows = {}
    per_year = bars_per_year(timeframe)
    closes = aligned.xs("close", axis=1, level="field")
    log_ret = np.log(closes).diff()
    for asset in closes.columns:
        frame = aligned[asset]
        close = frame["close"]
        events = frame["funding_event"] > 0
        n_events = int(events.sum())
        mean_funding = float(frame.loc[events, "funding_rate"].mean()) if n_events else np.nan
        drawdown = close / close.cummax() - 1.0
        days = (aligned.index[-1] - aligned.index[0]) / pd.Timedelta(days=1) or np.nan
        rows[asset] = {
            "bars": len(close),
            "first_close": float(close.iloc[0]),
            "last_close": float(close.iloc[-1]),
            "return_pct": 100 * float(close.iloc[-1] / close.iloc[0] - 1.0),
            "ann_vol_pct": 100 * float(log_ret[asset].std() * np.sqrt(per_year)),
            "max_drawdown_pct": 100 * float(drawdown.min()),
            "daily_notional_musd": float((close * frame["volume"]).sum() / days / 1e6),
            "funding_events": n_events,
            "funding_ann_pct": 100 * mean_funding * 3 * 365,
            "mark_basis_bp": 1e4 * float((frame["mark"] / close - 1.0).abs().mean()),
            "filled_bars": int(frame["filled"].sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def correlation_matrix(aligned: pd.DataFrame) -> pd.DataFrame:
    """Correlation of bar log returns between assets."""
    closes = aligned.xs("close", axis=1, level="field")
    return np.log(closes).diff().corr()
