"""http_body against a real server on a unix socket, which cuts its answer wherever a test says."""

from __future__ import annotations

import os
import random
import socket
import threading

import pytest

from image_advisor import http_body
from image_advisor.http_body import BodyError


def _serve(path: str, pieces: list[bytes]) -> threading.Thread:
    """Answer one request with pieces, each sent on its own (so a block may end anywhere), then close."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        with server, server.accept()[0] as conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            assert request.startswith(b"GET /v1.41/images/repo:tag/get HTTP/1.0\r\n")
            for piece in pieces:
                conn.sendall(piece)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def _body(tmp_path, pieces: list[bytes]) -> bytes:
    path = str(tmp_path / "engine.sock")
    thread = _serve(path, pieces)
    sock = http_body.connect(f"unix://{path}", timeout=10)
    data = b"".join(b"".join(views) for views in http_body.get(sock, http_body.save_path("1.41", "repo:tag")))
    thread.join(5)
    return data


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = [], 0
    for size in sizes:
        out.append(f"{size:x}\r\n".encode() + body[at:at + size] + b"\r\n")
        at += size
    return b"".join(out) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"


def _cut(data: bytes, rng: random.Random) -> list[bytes]:
    """data in pieces of 1 to 40 bytes: every size line and CRLF is cut somewhere, some more than once."""
    pieces, at = [], 0
    while at < len(data):
        n = rng.randint(1, 40)
        pieces.append(data[at:at + n])
        at += n
    return pieces


def test_chunks_cut_anywhere_decode_to_the_body(tmp_path, monkeypatch):
    monkeypatch.setattr(http_body, "BLOCK", 64)  # blocks end inside size lines, CRLFs and chunks alike
    body = os.urandom(5000)
    rng = random.Random(7)
    sizes = []
    while sum(sizes) < len(body):
        sizes.append(min(rng.randint(1, 700), len(body) - sum(sizes)))
    assert _body(tmp_path, _cut(HEAD + _chunked(body, sizes), rng)) == body


def test_a_body_of_known_length(tmp_path):
    body = os.urandom(3000)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    assert _body(tmp_path, [head + body[:100], body[100:]]) == body


def test_a_body_that_ends_with_the_connection(tmp_path, monkeypatch):
    """The engine's answer to HTTP/1.0: neither chunked nor of a stated length; blocks end anywhere in it."""
    monkeypatch.setattr(http_body, "BLOCK", 64)
    body = os.urandom(5000)
    head = b"HTTP/1.0 200 OK\r\nContent-Type: application/x-tar\r\n\r\n"
    assert _body(tmp_path, _cut(head + body, random.Random(3))) == body


def test_the_engines_error_is_its_message(tmp_path):
    answer = b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{"message":"No such image: repo:tag"}\n'
    with pytest.raises(BodyError, match="^No such image: repo:tag$"):
        _body(tmp_path, [answer])


@pytest.mark.parametrize("cut", [HEAD + b"400\r\n" + b"x" * 100, HEAD + _chunked(b"y" * 100, [100])[:-5]],
                         ids=["inside-a-chunk", "before-the-last-chunk"])
def test_a_connection_that_ends_early_is_an_error(tmp_path, cut):
    with pytest.raises(BodyError, match="ended inside the answer"):
        _body(tmp_path, [cut])


def test_a_size_line_that_is_not_hex_is_an_error(tmp_path):
    with pytest.raises(BodyError, match="size line"):
        _body(tmp_path, [HEAD + b"zz\r\nhello\r\n0\r\n\r\n"])


def test_only_plain_endpoints_are_read_here():
    assert http_body.connect("ssh://user@host", timeout=1) is None
    assert http_body.connect("npipe:////./pipe/docker_engine", timeout=1) is None
