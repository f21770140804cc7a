"""Single-sentence /classify latency over one keep-alive HTTP connection (bounded)."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import time

SENTENCES = ["I love this movie", "A dull, lifeless mess.", "The soundtrack is gorgeous.", "Two hours I want back."]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def post(conn: http.client.HTTPConnection, body: dict, path: str = "/classify") -> dict | list:
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data}")
    return data


def measure(host: str, port: int, requests: int = 200, max_seconds: float = 120, warmup: int = 20,
            texts: list[str] = SENTENCES, path: str = "/classify", field: str = "text") -> dict:
    """p50/p95/mean in ms over at most `requests` requests and `max_seconds` seconds, cycling through texts.

    Each request asks about one text, as {"text": t} or, with field="texts", {"texts": [t]}; path is
    where the service classifies.
    """
    def body(text: str) -> dict:
        return {field: [text] if field == "texts" else text}

    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        for i in range(warmup):
            post(conn, body(texts[i % len(texts)]), path)
        latencies: list[float] = []
        deadline = time.monotonic() + max_seconds
        while len(latencies) < requests and time.monotonic() < deadline:
            started = time.perf_counter()
            post(conn, body(texts[len(latencies) % len(texts)]), path)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return {"requests": len(latencies), "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(percentile(latencies, 0.95), 2), "mean_ms": round(statistics.fmean(latencies), 2)}
