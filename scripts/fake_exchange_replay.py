"""A replayed testnet-style session on the test suite's stateful binanceusdm fake (no
network): synthetic BTC/ETH, bars 2400..2640, market orders filled 5 bps worse than the
venue's price. Writes the session's order, reconciliation and fill figures as JSON.

Usage: .venv/bin/python scripts/fake_exchange_replay.py [SESSION_DIR]
"""

from __future__ import annotations

import collections
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from live.executor import fill_report
from tests.unit.live.exchange_harness import replay_frame, session
from tests.unit.live.fake_futures import FuturesVenue


def main(folder: Path) -> dict:
    frame = replay_frame()
    venue = FuturesVenue(fill_slippage=0.0005)
    folder.mkdir(parents=True, exist_ok=True)
    run, feed = session(folder, venue, frame, 2640)
    state = run.run(feed.ticks, feed.start)
    planned = [o for row in run.journal.rows("execution.jsonl") for o in row["orders"]]
    states = run.executor.router.states()
    reconciled = run.journal.rows("reconcile.jsonl")
    posted = [r.params.get("newClientOrderId") or r.params.get("clientAlgoId")
              for r in venue.received if r.method == "POST"]
    return {
        "bars": state["bars_done"], "decisions": state["steps_done"], "status": state["status"],
        "orders": dict(collections.Counter(o["leg"] for o in planned)),
        "order_states": dict(collections.Counter(states[o["client_id"]]["state"]
                                                 for o in planned)),
        "reconciliations": len(reconciled),
        "with_position_differences": sum(bool(r["differences"]) for r in reconciled),
        "largest_equity_gap_before_adoption": max(abs(r["equity_gap"]) for r in reconciled),
        "exchange_equity": reconciled[-1]["exchange_equity"],
        "fills": fill_report(run.journal.rows("fills.jsonl"))["all"],
        "posts": len(posted), "distinct_client_ids": len(set(posted)),
        "cancels": sum(r.method == "DELETE" for r in venue.received),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "session"
    sys.stdout.write(json.dumps(main(target), indent=1) + "\n")
