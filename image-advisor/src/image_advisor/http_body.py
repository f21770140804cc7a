"""A GET whose long body is read straight off the engine's socket: `docker save` of a big image.

Asked over HTTP/1.1, the engine sends `docker save` chunked, 32 KiB at a time: about a hundred
thousand chunks for an image of a few GB, each costing Python calls under the interpreter's
lock, which the thread that parses the layers holds too (through the Docker SDK, several per
chunk). So the request is HTTP/1.0, which the engine (Go's net/http) answers with the bytes as
they are, the end of the body being the end of the connection; here they are received in blocks
of up to BLOCK bytes and handed on as views, never copied. A server that chunks all the same is
decoded, the chunks handed on as views of the block they came in. Only for an engine reached
without TLS or ssh (a unix socket, or plain tcp); the SDK reads the others.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import quote

BLOCK = 1 << 20
MAX_LINE = 80  # a chunk's size line: a few hex digits, perhaps an extension


class BodyError(Exception):
    """The engine answered with an error, or the connection ended inside the body."""


def connect(endpoint: str, timeout: float) -> socket.socket | None:
    """A socket to endpoint (unix:///path or tcp://host:port); None for an endpoint of another kind."""
    if endpoint.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint[len("unix://"):])
        except OSError:
            sock.close()
            raise
        return sock
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[len("tcp://"):].rstrip("/").rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    return None


def send(sock: socket.socket, path: str) -> None:
    """GET path (quoted) on sock: one HTTP/1.0 request, so that the answer is not chunked; the connection
    closes after it."""
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())


def get(sock: socket.socket, path: str) -> Iterator[list[memoryview]]:
    """GET path (quoted) on sock: the body, as lists of views of the blocks received (each block is fresh: a
    view stays valid after the next one comes)."""
    send(sock, path)
    return body(sock)


def body(sock: socket.socket) -> Iterator[list[memoryview]]:
    """The answer to the one request sent on sock, its body as get() gives it; sock is closed at the end."""
    with sock:
        head, rest = _head(sock)
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1]) if status_line.startswith("HTTP/") else 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if status != 200:
            raise BodyError(_message(status, bytes(rest) + _rest(sock, 1 << 16)))
        if "chunked" in headers.get("transfer-encoding", "").lower():
            yield from _chunked(sock, rest)
        else:
            yield from _plain(sock, rest, int(headers["content-length"]) if "content-length" in headers else -1)


def _head(sock: socket.socket) -> tuple[str, memoryview]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more or len(data) > 1 << 20:
            raise BodyError("the engine closed the connection before its answer's headers ended")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), memoryview(rest)


def _rest(sock: socket.socket, limit: int) -> bytes:
    parts, size = [], 0
    while size < limit and (more := sock.recv(limit - size)):
        parts.append(more)
        size += len(more)
    return b"".join(parts)


def _message(status: int, body: bytes) -> str:
    try:
        return json.loads(body).get("message") or f"HTTP {status}"
    except (ValueError, AttributeError):
        return f"HTTP {status}: {body[:200].decode(errors='replace').strip()}"


def _blocks(sock: socket.socket, first: memoryview) -> Iterator[memoryview]:
    if first:
        yield first
    while True:  # a block is filled before it is handed on: the engine sends 32 KiB at a time
        block = memoryview(bytearray(BLOCK))
        n = 0
        while n < BLOCK and (received := sock.recv_into(block[n:])):
            n += received
        if n:
            yield block[:n]
        if n < BLOCK:
            return


def _plain(sock: socket.socket, first: memoryview, length: int) -> Iterator[list[memoryview]]:
    left = length
    for block in _blocks(sock, first):
        if left >= 0:
            block = block[:left]
            left -= len(block)
        yield [block]
        if left == 0:
            return
    if left > 0:
        raise BodyError(f"the connection ended {left:,} bytes before the answer's end")


def _chunked(sock: socket.socket, first: memoryview) -> Iterator[list[memoryview]]:
    """Transfer-Encoding: chunked, decoded: each chunk's bytes as views of the block they came in."""
    left = 0  # bytes of the current chunk still to come
    crlf = 0  # bytes of the CRLF after a chunk's bytes still to skip
    line = b""  # a chunk's size line, which may be cut by the end of a block
    for block in _blocks(sock, first):
        views, at, end = [], 0, len(block)
        while at < end:
            if left:
                n = min(left, end - at)
                views.append(block[at:at + n])
                at, left = at + n, left - n
                crlf = 0 if left else 2
            elif crlf:
                n = min(crlf, end - at)
                at, crlf = at + n, crlf - n
            else:
                window = bytes(block[at:min(end, at + MAX_LINE)])
                newline = window.find(b"\n")
                line += window if newline < 0 else window[:newline + 1]
                at += len(window) if newline < 0 else newline + 1
                if len(line) > MAX_LINE:
                    raise BodyError(f"a chunk's size line is not one: {line[:40]!r}")
                if newline < 0:
                    continue
                try:
                    left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BodyError(f"a chunk's size line is not one: {line[:40]!r}") from None
                line = b""
                if left == 0:  # the last chunk
                    if views:
                        yield views
                    return
        if views:
            yield views
    raise BodyError("the connection ended inside the answer, before its last chunk")


def save_path(api_version: str, name: str) -> str:
    """The engine API's path for `docker save name` (quoted as the Docker SDK quotes it); with no version,
    the engine's own."""
    return f"{'/v' + api_version if api_version else ''}/images/{quote(name, safe='/:@')}/get"
