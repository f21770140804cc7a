"""JSON for the errors gunicorn answers itself, before the app sees the request.

A bad request line or Content-Length (400), a URL over limit_request_line (414), too many
or too large headers (431), a malformed chunked body (400): gunicorn writes these as
text/plain (its asyncio worker) or as an HTML page (its sync and threaded workers).
install() swaps in writers with the app's error shape, {"error": "...", "status": N}, so
every error a client can get is JSON. gunicorn.conf.py calls it in the master, before
the workers fork. Both hooks are gunicorn internals, pinned with gunicorn in
app/requirements-common.txt; tests/test_http_errors.py fails if an upgrade moves them.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from gunicorn import util
from gunicorn.asgi.protocol import ASGIProtocol


def json_error(status: int, message: str, extra_headers=()) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = json.dumps({"error": f"{reason}: {message}" if message and message != reason else reason,
                       "status": status}).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


def _wsgi_worker_error(sock, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, json_error(status_int, mesg))


def _asgi_worker_error(self, status, message, extra_headers=()) -> None:
    self._safe_write(json_error(status, message, extra_headers))


def install() -> None:
    util.write_error = _wsgi_worker_error
    ASGIProtocol._send_error_response = _asgi_worker_error
