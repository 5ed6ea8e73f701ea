"""A session trading on the loopback venue, run as its own process so a test can kill it
with SIGKILL: `python -m tests.unit.live.session_process FOLDER PORT LAST STYLE`.
Its final state goes to final_state.json beside FOLDER when it ends on its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.unit.live.exchange_harness import replay_frame, session
from tests.unit.live.venue_server import loopback_exchange


def main(folder: Path, port: int, last: int, style: int) -> None:
    exchange, tick = loopback_exchange(port)
    run, feed = session(folder, None, replay_frame(), last, style=style, exchange=exchange,
                        tick=tick)
    state = run.run(feed.ticks, feed.start)
    (folder.parent / "final_state.json").write_text(json.dumps(state, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
