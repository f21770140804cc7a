"""JSON for the errors gunicorn answers itself, before the app sees the request.

A bad request line or Content-Length (400), a URL over limit_request_line (414), too many
or too large headers (431): gunicorn writes these with util.write_error, as an HTML page.
install() swaps in a writer with the app's error shape, {"error": "...", "status": N},
so every error a client can get is JSON. gunicorn.conf.py calls it in the master, before
the workers fork.
"""

from __future__ import annotations

import json

from gunicorn import util


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason, "status": status_int}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
