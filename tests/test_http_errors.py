"""Hostile and malformed requests through a real gunicorn (app/gunicorn.conf.py, app/asgi.py).

Some of these never reach Flask (gunicorn answers a bad request line or too many headers
itself), and slow clients or chunked bodies only exist on a real socket, so the test
client cannot show them. The scenarios are scripts/traffic/hostile.py's, which `make load` and
`make smoke` run against the images.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from scripts.traffic import hostile
from tests.conftest import start_gunicorn, stop

MAX_BODY = 4096


@pytest.fixture(scope="module")
def service():
    proc, base = start_gunicorn("model-onnx-int8", MAX_BODY_BYTES=str(MAX_BODY), BODY_TIMEOUT="2")
    host, port = base.removeprefix("http://").split(":")
    yield host, int(port)
    stop(proc)


@pytest.mark.parametrize("name, data, status", hostile.bad_requests(MAX_BODY),
                         ids=[name for name, _, _ in hostile.bad_requests(MAX_BODY)])
def test_bad_request_gets_its_status_as_json(service, name, data, status):
    got, ctype, body = hostile.exchange(*service, data)
    assert (got, ctype, json.loads(body)["status"]) == (status, "application/json", status), name


def test_chunked_body_within_the_limit_is_classified(service):
    request = hostile.chunked_request(json.dumps({"text": "a wonderful film"}).encode(), size=5)
    status, _, body = hostile.exchange(*service, request)
    assert status == 200 and json.loads(body)["predictions"][0]["label"] == "POSITIVE"


def test_slow_and_idle_clients_do_not_starve_anyone(service):
    outcomes = hostile.check_slow_clients(*service, hold=2.0)
    assert all(o.passed for o in outcomes), outcomes


def test_a_body_that_never_finishes_gets_408(service):
    with socket.create_connection(service, timeout=10) as sock:
        sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408") and 1.5 < time.monotonic() - started < 5  # BODY_TIMEOUT=2


def test_probes_answer_while_the_model_is_busy():
    """One app thread, no queue: a long classification holds the model, probes still answer at once,
    and a second classification is refused with 503 instead of waiting behind it."""
    proc, base = start_gunicorn("model-onnx-int8", APP_THREADS="1", MAX_QUEUED="0")
    host, port = base.removeprefix("http://").split(":")
    try:
        texts = ["a long and rather good film " * 120] * 8  # the largest request MAX_TOKENS allows
        largest = hostile.post_request("/classify", json.dumps({"texts": texts}).encode())
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(big=hostile.exchange(host, int(port), largest)))
        worker.start()
        time.sleep(0.15)  # the large request is running now (it takes 0.3 s or more on the fastest machine seen)
        started = time.perf_counter()
        probe = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        status, _, _ = hostile.exchange(host, int(port), probe)
        probe_seconds = time.perf_counter() - started
        busy, _, body = hostile.exchange(host, int(port), hostile.post_request("/classify", b'{"text": "hi there"}'))
        worker.join(timeout=60)
        assert status == 200 and probe_seconds < 0.5
        assert busy == 503 and "busy" in json.loads(body)["error"]
        assert result["big"][0] == 200  # the long one was never disturbed
    finally:
        stop(proc)
