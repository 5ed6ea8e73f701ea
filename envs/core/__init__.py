"""The simulator core: numba kernels over (n_envs, n_assets) float64 arrays.

Nothing here knows gymnasium or Ray. State lives in plain arrays whose field
offsets are named in `layout`; every function is a pure function of its inputs
(it mutates only the state arrays it is given), so the same core drives the
single env, the batched env and backtests.
"""

from pathlib import Path

from market.numba_cache import configure_numba_cache

configure_numba_cache(Path(__file__).parent.parent)  # envs/: every env kernel
