"""Single-sentence /classify traffic spread over several replicas, failing over as a load balancer would.

    with SpreadLoad(["http://127.0.0.1:5001", "http://127.0.0.1:5002"]) as load:
        ...                       # roll an update, kill a node
    load.summary()                # requests, failed, retried, p50/p99

Each of `clients` threads sends one request at a time to the next replica in turn, each on a
new connection. A request a replica does not answer with 200 (connection refused or reset,
5xx, timeout) is sent to the next replica, as a balancer that drops a failing backend does:
"retried" counts those, "failed" the requests no replica answered. Bounded by max_seconds and
max_requests whatever happens; traffic goes only to the URLs given.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

from scripts.traffic.latency import SENTENCES, percentile


class SpreadLoad:
    def __init__(self, urls: list[str], clients: int = 4, max_seconds: float = 900, max_requests: int = 500_000,
                 timeout: float = 5) -> None:
        self.targets = [urllib.parse.urlsplit(u) for u in urls]
        self.clients, self.max_seconds, self.max_requests, self.timeout = clients, max_seconds, max_requests, timeout
        self.latencies_ms: list[float] = []
        self.failed = self.retried = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = self._ended = 0.0

    def __enter__(self) -> SpreadLoad:
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout * len(self.targets) + 5)
        self._ended = time.monotonic()

    def _answered(self, target, body: bytes) -> bool:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=self.timeout)
        try:
            conn.request("POST", "/classify", body, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _client(self, n: int) -> None:
        i = n
        deadline = self._started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.latencies_ms) + self.failed >= self.max_requests:
                    return
            body = json.dumps({"text": SENTENCES[i % len(SENTENCES)]}).encode()
            started = time.perf_counter()
            tries = 0
            for k in range(len(self.targets)):
                tries += 1
                if self._answered(self.targets[(i + k) % len(self.targets)], body):
                    break
            else:
                tries = 0
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                if tries:
                    self.latencies_ms.append(elapsed)
                    self.retried += tries > 1
                else:
                    self.failed += 1
            i += self.clients
            if not tries:
                time.sleep(0.05)  # no replica answers: do not spin

    def summary(self) -> dict:
        lat = self.latencies_ms
        seconds = (self._ended or time.monotonic()) - self._started
        return {"requests": len(lat) + self.failed, "failed": self.failed, "retried": self.retried,
                "seconds": round(seconds, 1),
                "p50_ms": round(percentile(lat, 0.5), 1) if lat else None,
                "p99_ms": round(percentile(lat, 0.99), 1) if lat else None}
