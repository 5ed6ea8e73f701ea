"""A live session's files: its state after the last processed bar, and its append-only logs.

Layout of a session folder::

    session.json   everything needed to resume: settings, account, last bar, kill state
    ledger.jsonl   one line per ledger row (envs.ledger columns), in bar order
    steps.jsonl    one line per finished step (equity, exposure, costs, positions)
    signals.jsonl  one line per decision (the action taken at a bar's close)
    reconcile.jsonl, execution.jsonl, fills.jsonl  testnet/live only: each bar's
                   reconciliation with the exchange, the orders it sent and the exchange's
                   fills beside the simulator's (orders.jsonl, the order router's
                   own journal, is written before each order leaves and never cut)
    stop           present: `quantum live stop` asked the loop to stop
    flatten        present: `quantum live flatten` asked the loop to trip its kill switch

The write discipline is the store's: ``session.json`` is replaced atomically (temporary
file, fsync, rename, fsync of the folder) after a bar's log lines are written and
fsynced. Every line carries its bar's time. A crash between the two leaves lines of a bar
the state does not include; :meth:`Journal.open` cuts them (and any torn last line), so
a restart processes that bar again, once: no bar is processed twice or skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from market.store import fsync_dir, write_json_atomic

STATE = "session.json"
LOGS = ("ledger.jsonl", "steps.jsonl", "signals.jsonl", "reconcile.jsonl", "execution.jsonl",
        "fills.jsonl")
STOP = "stop"
FLATTEN = "flatten"
LOCK = ".lock"


class JournalError(ValueError):
    """A session folder that cannot be used (unreadable state, held by another loop)."""


def read_json(path: Path, what: str = "file", hint: str = "") -> dict[str, Any]:
    """A file written by write_json_atomic; JournalError (naming ``what``, then ``hint``)
    when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise JournalError(f"{path}: unreadable {what} ({err}){hint}") from err


def read_state(folder: Path) -> dict[str, Any] | None:
    """The session's last committed state, None when it has none yet."""
    path = Path(folder) / STATE
    if not path.exists():
        return None
    return read_json(path, "session state", "; the logs beside it hold every processed bar")


class Journal:
    """One session folder, held by one loop at a time (an exclusive lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = None

    @contextmanager
    def held(self) -> Iterator[Journal]:
        """Lock the folder for this process; another loop on it is an error."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = (self.folder / LOCK).open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            lock.close()
            raise JournalError(f"{self.folder}: another live loop runs this session") from err
        self._lock = lock
        try:
            yield self
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
            self._lock = None

    def open(self) -> dict[str, Any] | None:
        """The committed state; log lines past it (an interrupted bar) are cut."""
        for leftover in self.folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        state = read_state(self.folder)
        last = state["last_bar"] if state else None
        for name in LOGS:
            self._cut(self.folder / name, last)
        return state

    def _cut(self, path: Path, last: int | None) -> None:
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # torn by a crash mid-write
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if last is None or row["bar_time"] > last:
                break
            keep.append(line)
        text = "".join(keep)
        if text != path.read_text():
            tmp = path.with_name(f".{path.name}.cut.tmp")
            tmp.write_text(text)
            tmp.replace(path)
            fsync_dir(self.folder)

    def commit(self, state: Mapping[str, Any], lines: Mapping[str, list[dict]]) -> None:
        """Append this bar's log lines (fsynced), then replace the state."""
        for name, rows in lines.items():
            if not rows:
                continue
            with (self.folder / name).open("a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
        write_json_atomic(self.folder / STATE, state)

    def rows(self, name: str) -> list[dict]:
        path = self.folder / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop_requested(self) -> bool:
        return (self.folder / STOP).exists()

    def request_stop(self) -> None:
        (self.folder / STOP).write_text("stop\n")

    def clear_stop(self) -> None:
        (self.folder / STOP).unlink(missing_ok=True)

    def flatten_requested(self) -> bool:
        return (self.folder / FLATTEN).exists()

    def request_flatten(self) -> None:
        """Ask the loop to trip its kill switch at its next bar: flatten the book with the
        normal execution model and stop trading (`quantum live flatten`)."""
        (self.folder / FLATTEN).write_text("flatten\n")

    def clear_flatten(self) -> None:
        (self.folder / FLATTEN).unlink(missing_ok=True)
