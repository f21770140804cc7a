"""make load's and make batching's wrk client: the Lua mix, wrk's summary, errors counted."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.bench.load import mix_bodies, parse_env
from scripts.traffic import wrk


def test_mix_bodies_keep_the_weights_of_the_mix():
    pairs = mix_bodies({"single": 80, "batch": 20}, variants=4)
    by_kind = {"single": 0.0, "batch": 0.0}
    for body, weight in pairs:
        by_kind["batch" if "texts" in json.loads(body) else "single"] += weight
    assert by_kind == {"single": 80, "batch": 20}


def test_env_pairs_are_checked():
    assert parse_env(["COALESCE=0", "APP_THREADS=2"]) == {"COALESCE": "0", "APP_THREADS": "2"}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_env(["COALESCE"])


def test_summary_and_non_2xx_are_read_from_wrk_output():
    out = ("Running 1s test @ http://127.0.0.1:1\n  Non-2xx or 3xx responses: 7\n"
           '{"requests": 70, "duration_us": 1000000, "socket_errors": 1, '
           '"p50_us": 1500, "p95_us": 2500, "p99_us": 3000}\n')
    assert wrk.parse(out)["requests"] == 70
    assert wrk.non_2xx(out) == 7
    with pytest.raises(RuntimeError, match="no summary"):
        wrk.parse("wrk: connection refused\n")


class _Half(BaseHTTPRequestHandler):
    """Answers 200 to the single-sentence body, 503 to the batch: the errors wrk must count."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200 if "text" in body else 503)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_sends_the_mix_and_counts_what_failed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Half)
    server.protocol_version = "HTTP/1.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        row = wrk.run("127.0.0.1", server.server_port, 2, 1, mix_bodies({"single": 50, "batch": 50}, variants=2))
    finally:
        server.shutdown()
    assert row["requests"] > 20
    assert 0.2 < row["errors"] / row["requests"] < 0.8  # about half were the batch body, answered 503
    assert row["p50_ms"] <= row["p99_ms"]
