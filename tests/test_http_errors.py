"""Bad requests through a real gunicorn: every error is JSON, with the right status.

Some of these never reach Flask (gunicorn answers a bad request line or too many headers
itself), and chunked bodies are only framed by gunicorn, so the test client cannot show them.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import start_gunicorn, stop

MAX_BODY = 4096


@pytest.fixture(scope="module")
def service():
    proc, base = start_gunicorn("model-onnx-int8", MAX_BODY_BYTES=str(MAX_BODY))
    yield base.removeprefix("http://").split(":")
    stop(proc)


def exchange(service, data: bytes) -> tuple[int, str, dict]:
    """(status, content type, JSON body) for raw bytes sent on a new connection."""
    host, port = service
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    ctype = next((h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("content-type:")), "")
    return int(lines[0].split()[1]), ctype, json.loads(body)


def post(service, body: bytes, chunked: bool = False) -> tuple[int, str, dict]:
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if chunked:
        return exchange(service, head + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    return exchange(service, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def chunked(payload: bytes, size: int = 1000) -> bytes:
    parts = [payload[i:i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("name, data, status, fragment", [
    ("bad request line", b"GARBAGE\r\n\r\n", 400, "request line"),
    ("bad content-length", b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400,
     "content-length"),
    ("URL over the limit", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "too large"),
    ("too many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200))
     + b"\r\n", 431, "headers"),
])
def test_errors_gunicorn_answers_itself_are_json(service, name, data, status, fragment):
    got, ctype, body = exchange(service, data)
    assert (got, ctype, body["status"]) == (status, "application/json", status), name
    assert fragment in body["error"].lower()


def test_chunked_body_over_the_limit_is_413_not_a_cut_prefix(service):
    payload = json.dumps({"text": "great " * 2000}).encode()  # ~12 KB: its first 4 KB would not parse anyway
    assert post(service, chunked(payload), chunked=True)[0::2] == (413, {"error": f"request body over {MAX_BODY} "
                                                                         "bytes", "status": 413})
    # Its first 4 KB are valid JSON on their own: a server that cut the body there would classify it.
    padded = b'{"text": "great film"}' + b" " * MAX_BODY
    assert post(service, chunked(padded), chunked=True)[0] == 413


def test_chunked_body_within_the_limit_is_classified(service):
    status, _, body = post(service, chunked(json.dumps({"text": "a wonderful film"}).encode(), size=5), chunked=True)
    assert status == 200 and body["predictions"][0]["label"] == "POSITIVE"


def test_malformed_chunked_body_is_400(service):
    status, ctype, body = post(service, b"zz\r\nabc\r\n0\r\n\r\n", chunked=True)
    assert (status, ctype, body["status"]) == (400, "application/json", 400), body


@pytest.mark.parametrize("body, fragment", [
    (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
    (b'{"text": "\\ud800"}', "lone surrogate"),
    (b'{"texts": ["fine", "bad \\udfff end"]}', "lone surrogate"),
    ('{"text": "\u200b\u200d\u2060"}'.encode(), "empty"),
    (b'{"text": "\\u0000\\u0007 \\t"}', "empty"),
])
def test_bad_text_is_400(service, body, fragment):
    status, ctype, answer = post(service, body)
    assert (status, ctype, answer["status"]) == (400, "application/json", 400)
    assert fragment in answer["error"]
