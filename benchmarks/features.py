"""Feature-set throughput: the 'ta' engine against the fast numba engine, side by side.

    .venv/bin/python benchmarks/features.py [--rows 1000000] [--assets 3] [--repeats 5]

Builds a seeded random-walk aligned frame (market.features.make_aligned_frame:
1-minute OHLCV bars at BTC-, ETH- and small-coin price scales, mark prices and
funding events), compiles the fast engine on a small slice (timed separately as
fast_compile_seconds: numba loads its on-disk cache when the kernels are
unchanged), then times compute_features with both engines on the whole frame:
the best of `repeats` runs for the fast engine (the first runs also pay for
the machine mapping fresh memory), one run of 'ta'. It checks the engines agree
to 1e-9 (rtol and atol) with identical NaN positions and prints one JSON
object; rows/s counts bars of the whole multi-asset frame (all assets at once).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from market.features import compute_features, make_aligned_frame

_NAMES = ("BTC", "ETH", "SOL", "DOGE", "XRP", "ADA")
_PRICES = (40_000.0, 2_500.0, 1.0, 0.1, 0.5, 0.4)


def _timed(frame: pd.DataFrame, engine: str) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    features = compute_features(frame, engine=engine)  # type: ignore[arg-type]
    return features, time.perf_counter() - start


def _agreement(fast: pd.DataFrame, reference: pd.DataFrame) -> tuple[bool, float]:
    """Whether the engines agree to 1e-9 with equal NaNs, and their largest difference."""
    a, b = fast.to_numpy(), reference.to_numpy()
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    finite = ~np.isnan(a) & ~np.isnan(b)
    diff = np.abs(a[finite] - b[finite])
    close = bool(np.all(diff <= 1e-9 + 1e-9 * np.abs(b[finite])))
    return same_nan and close, float(diff.max(initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=3, choices=range(1, len(_NAMES) + 1))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frame = make_aligned_frame(args.rows, _NAMES[: args.assets], _PRICES[: args.assets], seed=7)

    _, compile_seconds = _timed(frame.iloc[:5000], "fast")
    fast_times = []
    for _ in range(args.repeats):
        fast = None  # free the last run's 0.7 GB first: its pages are reused, not new ones
        fast, seconds = _timed(frame, "fast")
        fast_times.append(seconds)
    fast_seconds = min(fast_times)
    reference, ta_seconds = _timed(frame, "ta")
    agree, max_abs_diff = _agreement(fast, reference)

    rows = len(frame)
    result = {
        "ta_rows_per_s": round(rows / ta_seconds),
        "fast_rows_per_s": round(rows / fast_seconds),
        "rows": rows,
        "assets": args.assets,
        "features_per_asset": fast.shape[1] // args.assets,
        "ta_seconds": round(ta_seconds, 3),
        "fast_seconds": round(fast_seconds, 3),
        "fast_seconds_all_runs": [round(seconds, 3) for seconds in fast_times],
        "fast_compile_seconds": round(compile_seconds, 3),
        "max_abs_diff": max_abs_diff,
        "agree_1e-9": agree,
        "speedup": round(ta_seconds / fast_seconds, 1),
    }
    print(json.dumps(result))  # noqa: T201
    if not agree:
        raise SystemExit("the engines disagree beyond 1e-9")


if __name__ == "__main__":
    main()
