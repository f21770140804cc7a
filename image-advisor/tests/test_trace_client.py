"""trace_client.py, the program the trace runs inside the container, run here against a local server
the way the trace runs it: `python -I -c <its text> <job>`, its answer the last line it prints."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from image_advisor.trace import CLIENT_SOURCE


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(201 if body == {"text": "a|b"} else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def client(port: int, requests: list, wait_s: float = 2) -> dict:
    job = json.dumps({"port": port, "wait_s": wait_s, "requests": requests})
    out = subprocess.run([sys.executable, "-I", "-c", CLIENT_SOURCE.read_text(), job], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_once_the_first_request_is_answered_every_request_is_sent(server):
    answers = client(server, [["GET", "/ok", None], ["POST", "/x", '{"text": "a|b"}'], ["GET", "/missing", None]])
    assert answers == {"ready": True, "answers": [200, 201, 404]}


def test_no_answer_names_the_ports_something_listens_on(server):
    with socket.socket() as spare:  # a port nothing listens on
        spare.bind(("127.0.0.1", 0))
        unused = spare.getsockname()[1]
    result = client(unused, [["GET", "/ok", None]], wait_s=0.5)
    assert result["ready"] is False
    if sys.platform == "linux":  # read from /proc/net/tcp, as inside a container
        assert server in result["listening"] and unused not in result["listening"], result
