"""Pipelined HTTP/1.1 requests through the real gunicorn: every one answered, in order (RFC 9112 9.3.2)."""

from __future__ import annotations

import pytest

from scripts.traffic import pipeline
from tests.conftest import start_gunicorn, stop


@pytest.fixture(scope="module", params=["model", "model-onnx-int8"])
def port(request):
    proc, base = start_gunicorn(request.param)
    yield int(base.rsplit(":", 1)[1])
    stop(proc)


@pytest.mark.parametrize("case", sorted(pipeline.CASES))
def test_every_pipelined_request_is_answered_in_order(port, case):
    assert pipeline.check_case("127.0.0.1", port, case) is None


def test_the_405_names_the_allowed_methods(port):
    answers = pipeline.send_pipelined("127.0.0.1", port, [pipeline.post("/healthz", b"{}")])
    assert answers[0].status == 405
    assert set(answers[0].headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}
    assert answers[0].json()["status"] == 405


def test_check_case_reports_a_lost_answer(monkeypatch):
    # The checker itself must fail when an answer is missing, or these tests prove nothing.
    monkeypatch.setattr(pipeline, "send_pipelined", lambda *a, **k: [pipeline.Answer(200, {}, b'{"status":"ok"}')])
    assert "answers [200], expected [200, 200]" in pipeline.check_case("127.0.0.1", 1, "GET then POST")
