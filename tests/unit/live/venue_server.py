"""The fake binanceusdm served over loopback HTTP, so a session in another process trades
on it and can be killed with SIGKILL at an exact point of an order's life: the venue's
`crash_before` fault kills the sender when its order arrives (the venue never has it),
`crash_after` once the venue has accepted it (the sender never sees the answer).

The child side: `loopback_exchange(port)` is ccxt's real binanceusdm whose requests go to
the server; `POST /fake/tick` trades a bar through the venue's resting stops, pays funding and sets
the venue's prices (the harness's replay clock), which no real venue has."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

import ccxt
import requests

from market.exchanges import make_exchange
from tests.unit.live.exchange_harness import KEYS, Bars, Tick, venue_tick
from tests.unit.live.fake_futures import Crash, FuturesVenue
from tests.unit.market.ccxt_fakes import NOW


class VenueServer(HTTPServer):
    venue: FuturesVenue
    victim: int | None = None
    """The pid killed by a crash fault (the session process)."""
    kills: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: VenueServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path == "/fake/tick":
            sent = json.loads(body or b"{}")
            venue_tick(self.server.venue)(sent["prices"], [tuple(f) for f in sent["funding"]],
                                          sent.get("bars"))
            return self._send(200, {})
        try:
            status, payload = self.server.venue.handle(self.command, "http://venue" + self.path,
                                                       dict(self.headers), body)
        except Crash:
            assert self.server.victim is not None, "a crash fault with no process to kill"
            os.kill(self.server.victim, signal.SIGKILL)
            self.server.kills += 1
            self.close_connection = True
            return None
        return self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the venue records every request itself."""


@contextlib.contextmanager
def serve(venue: FuturesVenue) -> Iterator[VenueServer]:
    """`venue` on 127.0.0.1 (a free port) for the duration of the block."""
    server = VenueServer(("127.0.0.1", 0), _Handler)
    server.venue = venue
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Loopback(requests.Session):
    """Sends ccxt's requests to the server, same method, path, query, headers and body."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        return super().request(method, f"http://127.0.0.1:{self.port}{parts.path}{query}",
                               **kwargs)


def loopback_exchange(port: int) -> tuple[ccxt.Exchange, Tick]:
    """ccxt's binanceusdm on the server at `port`, and the tick that prices its venue."""
    exchange = make_exchange("binanceusdm", env=KEYS, enable_rate_limit=False)
    exchange.session = _Loopback(port)
    exchange.milliseconds = lambda: NOW

    def tick(prices: dict[str, float], funding: list[tuple[str, float, float]],
             bars: Bars | None = None) -> None:
        requests.post(f"http://127.0.0.1:{port}/fake/tick", timeout=10,
                      json={"prices": prices, "funding": funding,
                            "bars": bars}).raise_for_status()

    return exchange, tick
