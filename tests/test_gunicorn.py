"""The real gunicorn config: readiness, and SIGTERM letting an in-flight request finish."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request

import pytest

from tests.conftest import ROOT, start_gunicorn, stop


@pytest.fixture(params=["model", "model-onnx-int8"])
def server(request):
    proc, base = start_gunicorn(request.param)
    yield proc, base, request.param
    stop(proc)


def test_ready_and_classifies(server):
    _, base, folder = server
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
        ready = json.load(resp)
    assert ready["status"] == "ready" and ready["labels"] == ["NEGATIVE", "POSITIVE"]
    assert ready["backend"] == ("onnx" if folder.startswith("model-onnx") else "torch")


def test_sigterm_lets_the_in_flight_request_finish(server):
    proc, base, _ = server
    # The largest request MAX_TOKENS allows: 8 texts truncated to 512 tokens each (4,096 tokens).
    body = json.dumps({"texts": ["a long and rather wonderful film " * 120] * 8}).encode()
    answer: dict = {}

    def send() -> None:
        req = urllib.request.Request(f"{base}/classify", body, {"content-type": "application/json"})
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer.update(status=resp.status, body=json.load(resp), seconds=time.monotonic() - started)
        answer["finished_at"] = time.monotonic()

    # Twice without a signal, to learn how long this request takes on this machine: the first pass of
    # the largest shape is slower (the runtime sizes its buffers), so only the second one counts.
    send()
    send()
    duration = answer.pop("seconds")
    answer.clear()
    thread = threading.Thread(target=send)
    thread.start()
    # Halfway through: accepted and being computed. No fixed floor: on a fast machine the whole request
    # takes under 0.3 s, and a floor would signal after the answer.
    time.sleep(duration / 2)
    signalled_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert answer.get("status") == 200, answer
    assert len(answer["body"]["predictions"]) == 8
    assert answer["finished_at"] > signalled_at  # it really was in flight when the signal arrived
    assert proc.wait(timeout=15) == 0


def test_the_master_freezes_its_objects_before_forking_a_worker():
    """Frozen objects are left out of the worker's collections, so its GC does not copy the pages it shares."""
    import gc
    import runpy

    config = runpy.run_path(str(ROOT / "app" / "gunicorn.conf.py"))
    try:
        config["pre_fork"](None, None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
