"""The real gunicorn config: readiness, and SIGTERM letting an in-flight request finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from scripts.latency import free_port
from scripts.model_assets import ROOT


@pytest.fixture(params=["model", "model-onnx-int8"])
def server(request):
    model = ROOT / request.param
    if not (model / "config.json").exists():
        pytest.fail("model/ is missing: `make unit` builds it first (make model)")
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(model), "DEVICE": "cpu", "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                             "app.wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("gunicorn did not become ready in 90 s")
    yield proc, base, request.param
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_ready_and_classifies(server):
    _, base, folder = server
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
        ready = json.load(resp)
    assert ready["status"] == "ready" and ready["labels"] == ["NEGATIVE", "POSITIVE"]
    assert ready["backend"] == ("onnx" if folder.startswith("model-onnx") else "torch")


def test_sigterm_lets_the_in_flight_request_finish(server):
    proc, base, _ = server
    # 64 texts truncated to 512 tokens each: long enough to still be running when SIGTERM lands.
    body = json.dumps({"texts": ["a long and rather wonderful film " * 120] * 64}).encode()
    answer: dict = {}

    def send() -> None:
        req = urllib.request.Request(f"{base}/classify", body, {"content-type": "application/json"})
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer.update(status=resp.status, body=json.load(resp), seconds=time.monotonic() - started)

    send()  # once without a signal, to learn how long this request takes on this machine
    duration = answer.pop("seconds")
    answer.clear()
    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(max(0.3, duration / 2))  # halfway through: accepted and being computed
    proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert answer.get("status") == 200, answer
    assert len(answer["body"]["predictions"]) == 64
    assert answer["seconds"] > max(0.3, duration / 2)  # it really was in flight when the signal arrived
    assert proc.wait(timeout=15) == 0
