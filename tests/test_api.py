"""HTTP API through Flask's test client, on the tiny model."""

from __future__ import annotations

import io

import pytest

from app.backends import Prediction
from app.server import create_app
from app.settings import Settings

LIMITS = Settings(max_texts=4, max_body_bytes=4096)


@pytest.fixture()
def client(tiny_classifier):
    return create_app(tiny_classifier, LIMITS).test_client()


def assert_json_error(resp, status: int, fragment: str = "") -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["status"] == status
    assert fragment.lower() in body["error"].lower()
    return body


def test_liveness_routes(client):
    for route in ("/healthz", "/health"):
        resp = client.get(route)
        assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_ready_reports_model(client):
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["labels"] == ["NEGATIVE", "POSITIVE"]
    assert body["device"] == "cpu"
    assert body["backend"] in {"torch", "onnx"} and body["threads"] == 1
    runtime = {"torch": "torch", "onnx": "onnxruntime"}[body["backend"]]
    assert body["versions"][runtime]


def test_not_ready_without_model():
    client = create_app(None, LIMITS).test_client()
    assert client.get("/healthz").status_code == 200
    assert_json_error(client.get("/readyz"), 503, "not loaded")
    assert_json_error(client.post("/classify", json={"text": "hi"}), 503)


def test_classify_single(client):
    resp = client.post("/classify", json={"text": "I love this movie"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert list(body) == ["predictions", "model", "device", "elapsed_ms"]
    [pred] = body["predictions"]
    assert pred["label"] in {"NEGATIVE", "POSITIVE"} and 0.5 <= pred["score"] <= 1.0
    assert body["device"] == "cpu" and body["elapsed_ms"] >= 0


def test_batch_keeps_order(client, tiny_classifier):
    texts = ["great great great wonderful film", "awful", "i hate this boring movie very much", "the"]
    batch = client.post("/classify", json={"texts": texts}).get_json()["predictions"]
    single = [client.post("/classify", json={"text": t}).get_json()["predictions"][0] for t in texts]
    assert [p["label"] for p in batch] == [p["label"] for p in single]
    assert [p["score"] for p in batch] == pytest.approx([p["score"] for p in single], abs=1e-4)


def test_long_input_is_truncated(client, tiny_classifier):
    # 64 positions in the tiny model: 500 words would crash an untruncated forward pass.
    assert tiny_classifier.max_length == 64
    resp = client.post("/classify", json={"text": "great " * 500})
    assert resp.status_code == 200


@pytest.mark.parametrize("kwargs, fragment", [
    ({"data": "not json", "content_type": "application/json"}, "JSON object"),
    ({"data": "text=hi", "content_type": "application/x-www-form-urlencoded"}, "JSON object"),
    ({"json": ["a list"]}, "JSON object"),
    ({"json": {}}, "exactly one"),
    ({"json": {"text": "a", "texts": ["b"]}}, "exactly one"),
    ({"json": {"text": 42}}, "must be a string"),
    ({"json": {"text": None}}, "must be a string"),
    ({"json": {"text": ""}}, "empty"),
    ({"json": {"text": "   \n\t"}}, "empty"),
    ({"json": {"texts": "one string"}}, "non-empty list"),
    ({"json": {"texts": []}}, "non-empty list"),
    ({"json": {"texts": ["ok", 3]}}, '"texts"[1]'),
    ({"json": {"texts": ["ok", " "]}}, '"texts"[1] is empty'),
    ({"json": {"text": "\u200b\u2060\ufeff"}}, "empty"),  # zero-width and format characters only
    ({"json": {"text": "\x00\x07\x1b"}}, "empty"),  # control characters only
    ({"json": {"text": "great \ud800"}}, "lone surrogate"),
    ({"data": "[" * 100_000 + "]" * 100_000, "content_type": "application/json"}, "nested too deeply"),
])
def test_bad_input_is_400(tiny_classifier, kwargs, fragment):
    client = create_app(tiny_classifier, Settings(max_texts=4)).test_client()  # 1 MiB bodies: deep JSON fits
    assert_json_error(client.post("/classify", **kwargs), 400, fragment)


def test_text_of_symbols_only_is_still_text(client):
    assert client.post("/classify", json={"text": "\U0001F600\U0001F44D"}).status_code == 200  # emoji are text


def test_too_many_texts_is_413(client):
    assert_json_error(client.post("/classify", json={"texts": ["a"] * 5}), 413, "at most 4 texts")


def test_too_many_tokens_is_413_before_any_work(tiny_classifier):
    limited = create_app(tiny_classifier, Settings(max_texts=64, max_tokens=100)).test_client()
    assert limited.post("/classify", json={"texts": ["great film"] * 20}).status_code == 200  # 20 x 4 tokens
    body = assert_json_error(limited.post("/classify", json={"texts": ["great " * 500] * 2}), 413, "MAX_TOKENS")
    assert "128 tokens" in body["error"]  # each text counts as truncated: 2 x 64 positions


def test_token_count_matches_truncation_and_ignores_padding(tiny_classifier):
    assert tiny_classifier.count_tokens(["great"]) == 3  # [CLS] great [SEP]
    assert tiny_classifier.count_tokens(["great", "great " * 500]) == 3 + 64


def test_body_too_large_is_413(client):
    assert_json_error(client.post("/classify", json={"text": "a" * 5000}), 413)


def test_wrong_method_and_unknown_route(client):
    assert_json_error(client.get("/classify"), 405)
    assert_json_error(client.delete("/readyz"), 405)
    assert_json_error(client.get("/nope"), 404)


def test_classify_file(client):
    data = {"file": (io.BytesIO(b"I love this movie\n\n  \nawful film\n"), "reviews.txt")}
    resp = client.post("/classify-file", data=data, content_type="multipart/form-data")
    assert resp.status_code == 200
    assert len(resp.get_json()["predictions"]) == 2


@pytest.mark.parametrize("payload, status, fragment", [
    (b"\xff\xfe bad bytes", 400, "UTF-8"),
    (b"\n  \n", 400, "no text"),
    (b"line\n" * 5, 413, "at most 4"),
])
def test_classify_file_bad_uploads(client, payload, status, fragment):
    data = {"file": (io.BytesIO(payload), "x.txt")}
    assert_json_error(client.post("/classify-file", data=data, content_type="multipart/form-data"), status, fragment)


def test_classify_file_needs_file_field(client):
    assert_json_error(client.post("/classify-file", data={"other": "x"}), 400, "field 'file'")


class FlakyModel:
    """Raises on the first predict, then answers: a crash must not kill the worker."""

    name, device = "flaky", "cpu"

    def __init__(self):
        self.calls = 0

    def describe(self):
        return {"model": self.name}

    def count_tokens(self, texts):
        return len(texts)

    def predict(self, texts):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return [Prediction("POSITIVE", 0.9) for _ in texts]


def test_model_crash_is_json_500_and_service_recovers(caplog):
    client = create_app(FlakyModel(), LIMITS).test_client()
    body = assert_json_error(client.post("/classify", json={"text": "x"}), 500, "internal error")
    assert "out of memory" not in body["error"]  # no internals leak to the client
    assert any("unhandled error" in r.message for r in caplog.records)
    assert client.post("/classify", json={"text": "x"}).status_code == 200


@pytest.mark.parametrize("size, status", [(100, 200), (5000, 413)])
def test_body_without_length_is_read_whole_or_refused(tiny_classifier, size, status):
    """Served as plain WSGI (without app/asgi.py in front), a chunked body has no Content-Length:
    the app reads it up to the limit and refuses the rest, rather than classifying a cut prefix."""
    client = create_app(tiny_classifier, LIMITS).test_client()
    body = b'{"text": "great film"}' + b" " * (size - 22)  # its first 4 KB parse on their own
    resp = client.post("/classify", input_stream=io.BytesIO(body), content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == status, resp.get_json()
