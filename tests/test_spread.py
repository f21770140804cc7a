"""The load make scale sends during a rolling update and a node loss: spread, failover, bounded."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scripts.traffic.latency import free_port
from scripts.traffic.spread import SpreadLoad


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_replica_going_away_costs_retries_not_failures():
    first, second = _serve(), _serve()
    urls = [f"http://127.0.0.1:{s.server_port}" for s in (first, second)]
    with SpreadLoad(urls, clients=2) as load:
        time.sleep(0.5)
        first.shutdown()
        first.server_close()  # its port now refuses: requests sent there go on to the other replica
        time.sleep(0.5)
    second.shutdown()
    summary = load.summary()
    assert summary["requests"] > 20
    assert summary["failed"] == 0
    assert summary["retried"] > 0


def test_no_replica_answering_is_counted_as_failed_and_bounded():
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    started = time.monotonic()
    with SpreadLoad(urls, clients=2, max_seconds=1, max_requests=10_000) as load:
        time.sleep(3)  # longer than max_seconds: the clients must have stopped on their own
    assert time.monotonic() - started < 3 + 2
    summary = load.summary()
    assert summary["failed"] > 0 and summary["failed"] == summary["requests"]
    assert summary["p99_ms"] is None
