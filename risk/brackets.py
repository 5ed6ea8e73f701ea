"""Binance's published USDT-M maintenance-margin brackets for BTC, ETH, SOL, BNB and XRP,
as recorded: ccxt ``fetch_leverage_tiers`` output whose ``info`` is Binance's raw
``GET /fapi/v1/leverageBracket`` answer, cached by freqtrade
(freqtrade/freqtrade, freqtrade/exchange/binance_leverage_tiers.json, updated 2023-09-28 in
56a85690b42a5211a26a5a0aac06acc8272b9755), the recording nearest to the real sample in
../shared/realdata (2023-07/08). Binance changes these tables from time to time; a
collected store records the exchange's own at collection time (market.tiers).
"""

from __future__ import annotations

RECORDED: dict[str, tuple[tuple[float, float, int, float], ...]] = {
    "BTC": (
        (0.0, 0.004, 125, 0.0),
        (50000.0, 0.005, 100, 50.0),
        (250000.0, 0.01, 50, 1300.0),
        (3000000.0, 0.025, 20, 46300.0),
        (20000000.0, 0.05, 10, 546300.0),
        (40000000.0, 0.1, 5, 2546300.0),
        (100000000.0, 0.125, 4, 5046300.0),
        (120000000.0, 0.15, 3, 8046300.0),
        (200000000.0, 0.25, 2, 28046300.0),
        (300000000.0, 0.5, 1, 103046300.0),
    ),
    "ETH": (
        (0.0, 0.005, 100, 0.0),
        (100000.0, 0.0065, 75, 150.0),
        (250000.0, 0.01, 50, 1025.0),
        (2000000.0, 0.02, 20, 21025.0),
        (15000000.0, 0.05, 10, 471025.0),
        (30000000.0, 0.1, 5, 1971025.0),
        (60000000.0, 0.125, 4, 3471025.0),
        (80000000.0, 0.15, 3, 5471025.0),
        (100000000.0, 0.25, 2, 15471025.0),
        (150000000.0, 0.5, 1, 52971025.0),
    ),
    "SOL": (
        (0.0, 0.01, 50, 0.0),
        (50000.0, 0.012, 40, 100.0),
        (100000.0, 0.02, 25, 900.0),
        (200000.0, 0.025, 20, 1900.0),
        (1000000.0, 0.05, 10, 26900.0),
        (2000000.0, 0.1, 5, 126900.0),
        (4800000.0, 0.125, 4, 246900.0),
        (6000000.0, 0.25, 2, 996900.0),
        (18000000.0, 0.5, 1, 5496900.0),
    ),
    "BNB": (
        (0.0, 0.005, 75, 0.0),
        (5000.0, 0.006, 50, 5.0),
        (10000.0, 0.01, 40, 45.0),
        (50000.0, 0.02, 25, 545.0),
        (250000.0, 0.05, 10, 8045.0),
        (1000000.0, 0.1, 5, 58045.0),
        (5000000.0, 0.125, 4, 183045.0),
        (10000000.0, 0.15, 3, 433045.0),
        (20000000.0, 0.25, 2, 2433045.0),
        (30000000.0, 0.5, 1, 9933045.0),
    ),
    "XRP": (
        (0.0, 0.005, 75, 0.0),
        (5000.0, 0.006, 50, 5.0),
        (10000.0, 0.01, 40, 45.0),
        (50000.0, 0.02, 25, 545.0),
        (750000.0, 0.05, 10, 23045.0),
        (3000000.0, 0.1, 5, 173045.0),
        (10000000.0, 0.125, 4, 423045.0),
        (12000000.0, 0.15, 3, 723045.0),
        (20000000.0, 0.25, 2, 2723045.0),
        (30000000.0, 0.5, 1, 10223045.0),
    ),
}
"""Per asset: (notional floor, maintenance margin rate, max initial leverage, cum) per
bracket, ascending; ``cum`` is Binance's maintenance amount (our allowance)."""

PUBLISHED_BRACKETS: dict[str, tuple[tuple[float, float], ...]] = {
    asset: tuple((floor, rate) for floor, rate, _, _ in rows) for asset, rows in RECORDED.items()
}
"""(notional floor, maintenance rate) per bracket: what envs.config.MarginConfig reads."""

PUBLISHED_LEVERAGE: dict[str, tuple[float, ...]] = {
    asset: tuple(float(level) for _, _, level, _ in rows) for asset, rows in RECORDED.items()
}
"""Max initial leverage per bracket (envs.config.MarginConfig.asset_leverage)."""
