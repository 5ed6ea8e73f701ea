"""One decision step cut at its bar boundaries, for drivers that receive bars one at a time.

``step_batch`` runs a whole step at once because training and backtests hold every bar.
Paper and live trading decide at a bar's close and only then see the next bars, so they
run the same step in three calls: :func:`open_step` at the decision bar,
:func:`advance_bar` at each following bar's close, :func:`close_step` after the step's
last bar. Each is the very helper ``step_batch`` inlines (``begin_step``, ``run_bar``,
``finish_step``), so a driver that makes these calls over stored bars reproduces a
backtest's ledger and equity bit for bit.

State arrays are one account's: ``acct`` (N_ACCT,), ``book`` (assets, N_BOOK), ``hist``
(risk_window, N_RISK); the action arrays are one env's rows of ``step_batch``'s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from envs.core.accounting import mark_to_market
from envs.core.layout import ENTRY, M_MARK, OPENED_AT, QTY
from envs.core.observe import record_risk
from envs.core.step import begin_step, finish_step, reset_account, run_bar


@njit(cache=True)
def open_step(acct, book, mkt, params, floors, rates, allowances, t, trade, size, risk,
              execution):
    """The decision at bar t becomes working orders."""
    n = book.shape[0]
    begin_step(acct, book, mkt, params, floors, rates, allowances, t, trade, size, risk,
               execution, np.empty((3, n)), np.empty(n, np.bool_))


@njit(cache=True)
def advance_bar(acct, book, mkt, days, params, floors, rates, allowances, b, events):
    """Everything that happens in bar b (see step.run_bar); returns (events written, ended)."""
    return run_bar(acct, book, mkt, days, params, floors, rates, allowances, b, events, 0)


@njit(cache=True)
def close_step(acct, book, hist, mkt, params, b, before, drawdown_before, terms):
    """The step's accounting after its last bar b; returns the reward (see step.finish_step)."""
    return finish_step(acct, book, hist, mkt, params, b, before, drawdown_before, terms)


@njit(cache=True)
def reset_into_book(acct, book, hist, mkt, params, floors, rates, allowances, b, day, equity,
                    qty):
    """An episode's first state, but holding ``qty`` (base units per asset) entered at bar
    b's marks with ``equity``: what a client that knows only its positions and equity
    stands for (nothing held long enough to have a history). The risk vector is recorded
    as reset_batch records it, on this book."""
    reset_account(acct, book, hist, b, day, equity)
    gross = 0.0
    for a in range(book.shape[0]):
        if qty[a] != 0.0:
            book[a, QTY] = qty[a]
            book[a, ENTRY] = mkt[b, a, M_MARK]
            book[a, OPENED_AT] = b
            gross += abs(qty[a]) * mkt[b, a, M_MARK]
    mark_to_market(acct, book, mkt, b, floors, rates, allowances)
    record_risk(acct, hist, params, 0.0, gross)
