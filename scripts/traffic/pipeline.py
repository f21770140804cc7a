"""HTTP/1.1 pipelining: several requests in one write on one connection, every answer read back in order.

RFC 9112 section 9.3.2: a client may pipeline, and the server answers every request in the
order received. Shared by the unit tests (a real gunicorn) and the smoke test (each image).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

SENTENCE = json.dumps({"text": "a warm, funny and beautifully acted film"}).encode()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n"


def upload(text: str) -> bytes:
    body = (f'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\n{text}\r\n--b0undary--\r\n").encode()
    return post("/classify-file", body, "multipart/form-data; boundary=b0undary")


HEALTH = get("/healthz")
CLASSIFY = post("/classify", SENTENCE)
# name -> (requests sent in one write, the status each answer must have, in order)
CASES: dict[str, tuple[list[bytes], list[int]]] = {
    "GET then POST": ([HEALTH, CLASSIFY], [200, 200]),
    "POST then GET": ([CLASSIFY, HEALTH], [200, 200]),
    "two POSTs": ([CLASSIFY, CLASSIFY], [200, 200]),
    "two GETs": ([HEALTH, HEALTH], [200, 200]),
    "chunked POST then GET": ([chunked("/classify", SENTENCE), HEALTH], [200, 200]),
    "upload then POST": ([upload("great film\nawful film"), CLASSIFY], [200, 200]),
    "400 then GET": ([post("/classify", b"{not json"), HEALTH], [400, 200]),
    "405 then POST": ([post("/healthz", b"{}"), CLASSIFY], [405, 200]),
    "eight mixed": ([HEALTH, CLASSIFY] * 4, [200] * 8),
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def read_answers(sock: socket.socket, count: int, deadline: float) -> list[Answer]:
    """Read up to count responses (Content-Length framed, as this service answers); fewer if the peer stops."""
    buf = b""
    answers: list[Answer] = []
    while len(answers) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            if len(buf) >= head_end + 4 + length:
                body = buf[head_end + 4:head_end + 4 + length]
                answers.append(Answer(int(lines[0].split()[1]), headers, body))
                buf = buf[head_end + 4 + length:]
                continue
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        buf += chunk
    return answers


def send_pipelined(host: str, port: int, requests: list[bytes], timeout: float = 10) -> list[Answer]:
    """Send every request in one write on one connection; the answers, in the order they came."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(requests))
        return read_answers(sock, len(requests), deadline)


def check_case(host: str, port: int, name: str, timeout: float = 10) -> str | None:
    """None when every request of CASES[name] is answered, in order, with its status; else what went wrong."""
    requests, statuses = CASES[name]
    answers = send_pipelined(host, port, requests, timeout)
    got = [a.status for a in answers]
    if got != statuses:
        return f"{name}: answers {got}, expected {statuses}"
    for request, answer in zip(requests, answers, strict=True):
        kind = "predictions" if request.startswith(b"POST /classify") and answer.status == 200 else None
        body = answer.json()
        if kind and kind not in body:
            return f"{name}: a classify request got {body}"
        if request.startswith(b"GET /healthz") and body != {"status": "ok"}:
            return f"{name}: /healthz got {body}"
    return None
