"""Year-long backtests of the hierarchical policy: market encoding batched over time,
then one numba loop that runs the per-step policy and the simulator together.

The market transformer reads only the observation's market window, which does not
depend on the account, so every decision bar's encoding is computed in large torch
batches (no look-ahead: step k's encoding uses bars up to its own decision bar). A
background thread encodes chunk after chunk while the loop consumes the ones ready
(the loop releases the GIL), so on two cores encoding and simulation overlap.
Cross-asset attention, the risk LSTM, fusion and the heads depend on the account and
run per step in ``backtest.fast_kernels``, which get the module's weights only as
``rl.modules.twin.export_twin`` lays them out (a module that drifted from that layout
raises there, before the run). Deterministic actions only (the mode of each head, as
``forward_inference``); other modules use ``engine.run_policy``.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from numba import njit

from backtest.engine import Account, _outputs, backtest_config, record_step, span_steps
from backtest.fast_kernels import decide
from backtest.result import BacktestResult
from envs.config import EnvConfig
from envs.core.step import step_batch
from envs.data import MarketArrays


def supports(module) -> bool:
    """Whether the fast path reproduces this kind of module (the hierarchical one without
    text: rl.modules.twin.twin_supports). A supported module that no longer matches the
    twin's layout is not quietly sent to the slow path: ``export_weights`` raises."""
    from rl.modules.twin import twin_supports

    return twin_supports(module)


def export_weights(module):
    """The per-step layers' weights as the kernels read them (rl.modules.twin.export_twin):
    raises TwinUnsupported for another kind of module, LayoutDrift (naming the keys) for
    one whose parameters or layers differ from the twin's declared layout."""
    from rl.modules.twin import export_twin

    return export_twin(module)


def encode_market(
    module,
    data: MarketArrays,
    window: int,
    bars: np.ndarray,
    chunk: int = 8192,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Market encodings (n, A, d) of the observation windows ending at ``bars``."""
    view = np.lib.stride_tricks.sliding_window_view(data.feats, window, axis=0)  # (n-W+1,A,F,W)
    if out is None:
        out = np.empty((len(bars), data.n_assets, module.cfg.d_model))
    with torch.inference_mode():
        for lo in range(0, len(bars), chunk):
            idx = bars[lo : lo + chunk] - (window - 1)
            x = torch.from_numpy(np.ascontiguousarray(view[idx].transpose(0, 3, 1, 2)))
            out[lo : lo + len(idx)] = module.market(x).double().numpy()
    return out


class _Encoder:
    """Encodes the decision bars chunk by chunk in a background thread; ``ready`` says how
    many leading encodings are done. Errors in the thread are raised by ``wait``."""

    def __init__(self, module, data: MarketArrays, window: int, bars: np.ndarray,
                 chunk: int = 16_384) -> None:
        self.encoded = np.empty((len(bars), data.n_assets, module.cfg.d_model))
        self.ready = 0
        self._args = (module, data, window, bars, chunk)
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="market-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        module, data, window, bars, chunk = self._args
        try:
            for lo in range(0, len(bars), chunk):
                if self._stop:
                    return
                hi = min(lo + chunk, len(bars))
                encode_market(module, data, window, bars[lo:hi], chunk, self.encoded[lo:hi])
                with self._cond:
                    self.ready = hi
                    self._cond.notify_all()
        except BaseException as err:  # handed to the consumer, which raises it
            with self._cond:
                self._error = err
                self._cond.notify_all()

    def wait(self, count: int) -> int:
        """Block until at least ``count`` encodings are ready; returns how many are."""
        with self._cond:
            self._cond.wait_for(lambda: self.ready >= count or self._error is not None)
            if self._error is not None:
                raise RuntimeError("market encoding failed") from self._error
            return self.ready

    def close(self) -> None:
        self._stop = True
        self._thread.join()


@njit(cache=True, nogil=True)
def _drive(mkt, feats, days, params, floors, rates, allowances, acct, book, hist, t, steps,
           active, encoded, weights, step_events, counts, rewards, terms, terminated,
           truncated, obs_market, obs_risk, obs_portfolio, record, positions, shield, bars,
           events, n_events, k_from, k_to):
    """Steps k_from..k_to-1 (1-based step numbers k_from..); stops early when the event
    buffer could overflow. Returns (next step, events kept, terminated). ``weights`` is
    rl.modules.twin.TwinWeights."""
    n_assets = book.shape[1]
    inputs = np.empty(n_assets * (weights.heads.later_b2.shape[0] + 5))  # dist inputs: unused
    trade = np.zeros((1, n_assets), dtype=np.int64)
    size = np.zeros((1, n_assets))
    limits = np.zeros((1, n_assets, 2))
    execution = np.zeros((1, n_assets, 2), dtype=np.int64)
    risk = np.empty(obs_risk.shape[1:])
    portfolio = np.empty(obs_portfolio.shape[1:])
    capacity = step_events.shape[1]
    k = k_from
    while k < k_to:
        if n_events + capacity > events.shape[0]:
            return k, n_events, False
        risk[:] = obs_risk[0]
        portfolio[:] = obs_portfolio[0]
        decide(encoded[k - 1], risk, portfolio, weights, trade[0], size[0], limits[0],
               execution[0], inputs)
        step_batch(mkt, feats, days, params, floors, rates, allowances, acct, book, hist, t,
                   steps, active, trade, size, limits, execution, step_events, counts, rewards,
                   terms, terminated, truncated, obs_market, obs_risk, obs_portfolio)
        for i in range(counts[0]):
            events[n_events + i] = step_events[0, i]
        n_events += counts[0]
        record_step(acct[0], book[0], mkt, t[0], k, record, positions, shield)
        bars[k] = t[0]
        k += 1
        if terminated[0] or truncated[0]:
            return k, n_events, terminated[0]
    return k, n_events, False


def run_hierarchical(
    module,
    data: MarketArrays,
    config: EnvConfig,
    start_bar: int,
    end_bar: int,
    name: str,
    meta: dict | None = None,
) -> BacktestResult:
    """``engine.run_policy(module_policy(module))``, fast (see module docstring)."""
    if not supports(module):
        raise ValueError("the fast path needs the hierarchical module without a text encoder")
    weights = export_weights(module)  # first: a module that drifted from the twin fails here
    n_steps = span_steps(data, config, start_bar, end_bar)
    cfg = backtest_config(config, n_steps)
    account = Account(data, cfg, start_bar, n_steps)
    # decision k (1-based) is taken after bar start + (k - 1) * bars_per_step; if the run ends
    # early the later encodings are simply unused
    decision_bars = start_bar + np.arange(n_steps, dtype=np.int64) * cfg.bars_per_step
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1))  # one core runs the loop
    encoder = _Encoder(module, data, cfg.window, decision_bars)
    try:
        terminated = _loop(account, encoder, weights, n_steps)
    finally:
        encoder.close()
        torch.set_num_threads(threads)
    account.finish(terminated)
    return account.result(name, meta)


def _loop(account: Account, encoder: _Encoder, weights, n_steps: int) -> bool:
    """Run the numba loop over the encodings as they become ready; True if terminated."""
    out = _outputs()
    obs = account.obs
    k, terminated = 1, False
    while k <= n_steps and not terminated:
        ready = encoder.wait(k)  # step k reads encoding k - 1
        k, account.n_events, terminated = _drive(
            *account.kernel_args(), encoder.encoded, weights, account.step_events,
            account.counts, *out, obs["market"], obs["risk"], obs["portfolio"], account.record,
            account.positions, account.shield, account.bars, account.events, account.n_events, k,
            min(n_steps, ready) + 1,
        )
        account.done_steps = k - 1
        if out[3][0]:
            break
        if account.n_events + account.step_events.shape[1] > len(account.events):
            grown = np.zeros((2 * len(account.events), account.events.shape[1]))
            grown[: account.n_events] = account.events[: account.n_events]
            account.events = grown
    return bool(terminated)
