"""Feature-set throughput: the 'ta' engine vs the fast numba engine, side by side.

    .venv/bin/python benchmarks/features.py [--rows 1000000] [--assets 3] [--repeats 3]

Builds an aligned frame of `rows` 1-minute bars for `assets` assets from the
synthetic market, computes the full feature set with both engines (numba compile
time is measured separately and excluded from the fast engine's rate), checks the
engines agree to 1e-9 (rtol and atol) with identical NaN positions, and prints one
JSON object. rows/s counts bars of the whole multi-asset frame.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from market.features import compute_features
from market.loader import align_asset
from market.schema import perp_symbol
from market.synthetic import SyntheticConfig, generate_market


def aligned_frame(rows: int, assets: int, seed: int = 7) -> pd.DataFrame:
    names = ("BTC", "ETH", "SOL", "DOGE", "XRP", "ADA")[:assets]
    market = generate_market(SyntheticConfig(assets=names, days=rows / 1440, seed=seed))
    grid = market.ohlcv[perp_symbol(names[0])].index
    frames = {
        name: align_asset(
            market.ohlcv[perp_symbol(name)], market.mark[perp_symbol(name)],
            market.funding[perp_symbol(name)], grid, "1m",
        )
        for name in names
    }  # fmt: skip
    return pd.concat(frames, axis=1, names=["asset", "field"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    aligned = aligned_frame(args.rows, args.assets)

    start = time.perf_counter()
    compute_features(aligned.iloc[:5000], engine="fast")
    compile_seconds = time.perf_counter() - start

    fast_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = compute_features(aligned, engine="fast")
        fast_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    reference = compute_features(aligned, engine="ta")
    ta_seconds = time.perf_counter() - start

    a, b = fast.to_numpy(), reference.to_numpy()
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    finite = np.isfinite(a) & np.isfinite(b)
    max_abs = float(np.max(np.abs(a[finite] - b[finite])))
    agree = same_nan and bool(np.allclose(a[finite], b[finite], rtol=1e-9, atol=1e-9))
    fast_seconds = min(fast_times)
    rows = len(aligned)
    result = {
        "ta_rows_per_s": round(rows / ta_seconds),
        "fast_rows_per_s": round(rows / fast_seconds),
        "rows": rows,
        "assets": args.assets,
        "features_per_asset": fast.shape[1] // args.assets,
        "ta_seconds": round(ta_seconds, 3),
        "fast_seconds": round(fast_seconds, 3),
        "fast_compile_seconds": round(compile_seconds, 3),
        "speedup": round(ta_seconds / fast_seconds, 1),
        "max_abs_diff": max_abs,
        "agree_1e-9": agree,
    }
    print(json.dumps(result))  # noqa: T201
    if not agree:
        raise SystemExit("engines disagree beyond 1e-9")


if __name__ == "__main__":
    main()
