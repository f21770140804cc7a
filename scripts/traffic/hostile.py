"""Hostile clients against a running service, each scenario reported as pass or fail.

    run_all("127.0.0.1", 8000)            # every scenario (make load runs this)
    run_all(host, port, short=True)       # the short set make smoke runs on every image

Scenarios: slow clients (bodies sent at 1 byte/s, headers never finished, idle
connections) held open while probes and a classification must still answer in time;
each malformed or oversized request, which must get its 4xx as JSON; a request over the
token budget. Every loop here is bounded in count and time, and talks only to the
address it is given (127.0.0.1 or a container the project started).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import asdict, dataclass

HEALTHZ_LIMIT_S = 1.0  # under attack, /healthz must answer within this
CLASSIFY_LIMIT_S = 2.0  # and a single-sentence /classify within this


@dataclass
class Outcome:
    scenario: str
    passed: bool
    detail: str


def post_request(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), extra, len(body), body))


def chunked_request(payload: bytes, size: int = 1000, path: str = "/classify") -> bytes:
    parts = [payload[i:i + size] for i in range(0, len(payload), size)]
    head = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n") % path.encode()
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def bad_requests(max_body: int = 1 << 20, path: str = "/classify") -> list[tuple[str, bytes, int]]:
    """(name, raw request, expected status): each must be answered with that status, as JSON.

    path: where the service classifies (a peer may serve the same contract elsewhere).
    """
    route = path.encode()
    return [
        ("bad request line", b"GARBAGE\r\n\r\n", 400),
        ("bad Content-Length", b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" % route, 400),
        ("URL over the limit", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ("too many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 431),
        ("malformed chunked body", chunked_request(b"", path=path)[:-5] + b"zz\r\nabc\r\n0\r\n\r\n", 400),
        ("chunked body over the limit", chunked_request(b'{"text": "great film"}' + b" " * max_body, path=path), 413),
        ("body over the limit", post_request(path, b'{"text": "' + b"a" * max_body + b'"}'), 413),
        ("not JSON", post_request(path, b"{oops"), 400),
        ("JSON nested 2,000 deep", post_request(path, b"[" * 2000 + b"]" * 2000), 400),
        ("lone surrogate", post_request(path, b'{"text": "great \\ud800"}'), 400),
        ("only zero-width characters", post_request(path, '{"text": "\u200b\u2060"}'.encode()), 400),
        ("only control characters", post_request(path, b'{"text": "\\u0000\\u0007"}'), 400),
        ("too many texts", post_request(path, json.dumps({"texts": ["ok"] * 65}).encode()), 413),
        ("too many tokens", post_request(path, json.dumps({"texts": ["a long film " * 300] * 9}).encode()), 413),
        ("wrong method", b"DELETE %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % route, 405),
        ("unknown route", b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ]


def exchange(host: str, port: int, data: bytes, timeout: float = 30) -> tuple[int, str, bytes]:
    """(status, content type, body) for raw bytes sent on a new connection."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may answer (413) and close before it has read everything
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return 0, "", body
    ctype = next((h.split(":", 1)[1].strip() for h in lines if h.lower().startswith("content-type:")), "")
    return int(lines[0].split()[1]), ctype, body


def check_bad_requests(host: str, port: int, path: str = "/classify") -> list[Outcome]:
    out = []
    for name, data, want in bad_requests(path=path):
        try:
            status, ctype, body = exchange(host, port, data)
            answer = json.loads(body) if ctype == "application/json" else None
            shape_ok = isinstance(answer, dict) and answer.get("status") == want
            out.append(Outcome(name, status == want and shape_ok, f"HTTP {status} {ctype}"))
        except (OSError, ValueError) as exc:
            out.append(Outcome(name, False, f"{type(exc).__name__}: {exc}"))
    return out


def _timed(host: str, port: int, data: bytes, limit: float) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        status, _, _ = exchange(host, port, data, timeout=limit + 5)
    except OSError as exc:
        return False, f"{type(exc).__name__} after {time.perf_counter() - started:.2f}s"
    seconds = time.perf_counter() - started
    return status == 200 and seconds < limit, f"HTTP {status} in {seconds:.3f}s (limit {limit:g}s)"


def check_slow_clients(host: str, port: int, slow_bodies: int = 16, slow_headers: int = 8, idle: int = 16,
                       hold: float = 3.0, slowdown: float = 1.0, path: str = "/classify",
                       probe: str = "/healthz") -> list[Outcome]:
    """Open the attackers, keep them dripping for `hold` seconds, probe meanwhile, close them all."""
    attackers: list[socket.socket] = []
    try:
        for _ in range(slow_bodies):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n{" % path.encode())
            attackers.append(sock)
        for _ in range(slow_headers):
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode())
            attackers.append(sock)
        for _ in range(idle):
            attackers.append(socket.create_connection((host, port), timeout=5))
        stop = time.monotonic() + hold

        def drip() -> None:  # one byte a second on every slow connection, until stop
            while time.monotonic() < stop:
                for n, sock in enumerate(attackers[:slow_bodies + slow_headers]):
                    try:
                        sock.sendall(b" " if n < slow_bodies else b"X")  # body bytes, or a header never ending
                    except OSError:
                        pass
                time.sleep(1)

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        time.sleep(min(1.0, hold / 2))  # the attack is in place
        what = f"{slow_bodies} slow bodies, {slow_headers} slow headers, {idle} idle connections open"
        ok_h, healthz = _timed(host, port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % probe.encode(),
                               HEALTHZ_LIMIT_S * slowdown)
        one = post_request(path, b'{"texts": ["a wonderful film"]}')
        ok_c, classify = _timed(host, port, one, CLASSIFY_LIMIT_S * slowdown)
        dripper.join(timeout=hold + 2)
        return [Outcome("/healthz under slow clients", ok_h, f"{healthz}; {what}"),
                Outcome("/classify under slow clients", ok_c, f"{classify}; {what}")]
    finally:
        for sock in attackers:
            sock.close()


def run_all(host: str, port: int, short: bool = False, slowdown: float = 1.0,
            path: str = "/classify", probe: str = "/healthz") -> list[Outcome]:
    """The scenarios in order; short=True is the quick set for smoke tests (about 5 s).

    slowdown stretches the attack and the time limits alike (an image run under qemu); path is
    where the service classifies, probe its liveness probe (the "/healthz under slow clients" one).
    """
    outcomes = check_slow_clients(host, port, hold=(2.0 if short else 5.0) * slowdown, slowdown=slowdown, path=path,
                                  probe=probe)
    outcomes += check_bad_requests(host, port, path)
    return outcomes


def as_dicts(outcomes: list[Outcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
