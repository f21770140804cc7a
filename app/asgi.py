"""The service as gunicorn runs it: an asyncio front that buffers requests, the Flask app behind it.

    gunicorn -c app/gunicorn.conf.py app.asgi:app      (worker_class "asgi", set there)

Why: with threaded workers, each connection holds a thread while its client sends the
request; two clients sending a body at 1 byte/s, or a few idle connections, used up both
threads and nothing answered, /healthz included. gunicorn's docs put a buffering proxy
(nginx) in front of such workers; this is that buffering, in-process. gunicorn's asyncio
worker reads every connection without a thread, this front collects each request body
(at most MAX_BODY_BYTES, within BODY_TIMEOUT seconds), and only a complete request takes
one of APP_THREADS threads to run the Flask app. Probes never wait: /healthz, /health and
/readyz do no model work and run at once on the event loop. At most MAX_QUEUED requests
wait for a thread; past that the answer is 503 with Retry-After, not an ever longer queue.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PROBES = frozenset({"/healthz", "/health", "/readyz"})


class BufferedWSGI:
    """ASGI app: buffer the request, then run a WSGI app in a bounded thread pool."""

    def __init__(self, wsgi_app: Any, *, max_body: int, threads: int, max_queued: int, body_timeout: float) -> None:
        self.wsgi_app = wsgi_app
        self.max_body = max_body
        self.threads = threads
        self.max_queued = max_queued
        self.body_timeout = body_timeout
        self.pool: ThreadPoolExecutor | None = None  # made in the worker, after the fork
        self.waiting = 0  # requests queued for, or running in, the pool

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    self.pool.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(receive)
        except TimeoutError:
            return await _send_json(send, 408, f"request body not received within {self.body_timeout:g} s")
        except BodyTooLarge:
            return await _send_json(send, 413, f"request body over {self.max_body} bytes")
        if body is None:  # the client went away
            return
        environ = wsgi_environ(scope, body)
        if scope["path"] in PROBES:
            return await _send(send, *run_wsgi(self.wsgi_app, environ))
        if self.waiting >= self.threads + self.max_queued:
            return await _send_json(send, 503, "busy: too many requests waiting for the model; retry shortly",
                                    [(b"retry-after", b"1")])
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="app")
        self.waiting += 1
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.pool, run_wsgi, self.wsgi_app, environ)
        finally:
            self.waiting -= 1
        await _send(send, *result)

    async def _read_body(self, receive) -> bytes | None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body:
                raise BodyTooLarge
            if not message.get("more_body"):
                return bytes(body)


class BodyTooLarge(Exception):
    pass


def wsgi_environ(scope: dict, body: bytes) -> dict:
    """The PEP 3333 environ for a buffered ASGI HTTP request."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": raw_path.split(b"?", 1)[0].decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key in {"CONTENT_LENGTH", "TRANSFER_ENCODING"}:
            continue  # the body is whole now: its length is the one above
        key = key if key == "CONTENT_TYPE" else f"HTTP_{key}"
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def run_wsgi(wsgi_app, environ: dict) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call the WSGI app; (status, headers, body)."""
    started: dict = {}

    def start_response(status: str, headers: list, exc_info=None):
        started.update(status=int(status.split(" ", 1)[0]),
                       headers=[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers])

    result = wsgi_app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], started["headers"], body


async def _send(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *(extra or [])]
    await _send(send, status, headers, body)


def build() -> BufferedWSGI:
    from app.wsgi import app as flask_app
    from app.wsgi import settings

    return BufferedWSGI(flask_app, max_body=settings.max_body_bytes, threads=settings.app_threads,
                        max_queued=settings.max_queued, body_timeout=settings.body_timeout)


app = build()
