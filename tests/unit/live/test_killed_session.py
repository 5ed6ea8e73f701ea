"""Crash safety against a real kill: the session runs in its own process, trading on the
fake binanceusdm over loopback HTTP, and the venue SIGKILLs it at an exact point of an
order's life (when the order arrives, so the venue never has it; or once the venue has
accepted it, so the sender never sees the answer), at a bar's first or a later order and
in the middle of a TWAP. A second process resumes from the session's folder: every order
the sessions meant to send exists exactly once at the venue, and the exchange agrees
with the book."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from envs.config import ExecStyle
from live.journal import Journal
from live.router import SENT
from tests.unit.live.exchange_harness import IDS, SYMBOLS
from tests.unit.live.fake_futures import FuturesVenue
from tests.unit.live.venue_server import serve

ROOT = Path(__file__).resolve().parents[3]
LAST = 2430  # bars 2400..2430: 15 decisions of 2 bars


def run_session(server, folder: Path, style: int) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.live.session_process", str(folder),
         str(server.server_address[1]), str(LAST), str(style)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.victim = process.pid
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


CASES = {  # the venue's faults, one per new order in order: the kill falls on the last
    "before the bar's first order reaches the venue": (["crash_before"], ExecStyle.MARKET),
    "after the venue accepted the bar's second order": (["", "crash_after"], ExecStyle.MARKET),
    "mid-TWAP, before the venue has the slice": ([""] * 7 + ["crash_before"], ExecStyle.TWAP),
    "mid-TWAP, after the venue accepted the slice": ([""] * 7 + ["crash_after"],
                                                     ExecStyle.TWAP),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_session_killed_at_each_point_of_an_order_resumes_with_every_order_once(tmp_path,
                                                                                 case):
    faults, style = CASES[case]
    venue = FuturesVenue(faults=list(faults))
    folder = tmp_path / "s"
    folder.mkdir()
    with serve(venue) as server:
        killed = run_session(server, folder, int(style))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert server.kills == 1 and not (tmp_path / "final_state.json").exists()
        held = {k: v for k, v in venue.orders.items()}

        resumed = run_session(server, folder, int(style))
        assert resumed.returncode == 0, resumed.stderr[-3000:]

    posted = [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
              for r in venue.received if r.method == "POST"]
    doubled = [c for c in set(posted) if posted.count(c) > 1]
    assert len(doubled) == (1 if faults[-1] == "crash_before" else 0)  # the lost try, again
    assert sorted(set(posted)) == sorted(venue.orders)  # every intent reached the venue once
    assert set(held) <= set(venue.orders)
    journal = Journal(folder)
    intents = [o["client_id"] for row in journal.rows("execution.jsonl") for o in row["orders"]]
    assert set(intents) == set(venue.orders)
    states = {json.loads(line)["client_id"]: json.loads(line)["state"]
              for line in (folder / "orders.jsonl").read_text().splitlines()}
    assert set(states.values()) == {SENT}
    state = json.loads((tmp_path / "final_state.json").read_text())
    assert state["bars_done"] == LAST - 2400 and state["kill"] is None
    reconciled = journal.rows("reconcile.jsonl")
    assert len(reconciled) == LAST - 2400 and all(r["differences"] == [] for r in reconciled)
    book = state["account"]["book"]
    last = [o for o in journal.rows("execution.jsonl")[-1]["orders"] if o["leg"] == "entry"]
    for a in SYMBOLS:  # the exchange = the book + the orders sent after the last bar
        pending = sum(o["amount"] * (1 if o["side"] == "buy" else -1) for o in last
                      if o["asset"] == a)
        assert venue.positions.get(IDS[a], 0.0) == pytest.approx(
            book[a]["quantity"] + pending, abs=1e-9)
