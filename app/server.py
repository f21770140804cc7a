"""Flask app factory: the HTTP API around one Classifier.

Every error, including 404/405/413 raised by Flask itself and crashes inside
the model, is answered as JSON: {"error": "...", "status": N}.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from app.backends import Model
from app.backends.memory import MemoryLimitError
from app.openapi import document as openapi_document
from app.settings import Settings

log = logging.getLogger("app")


def create_app(model: Model | None = None, settings: Settings | None = None) -> Flask:
    """Build the app. With model=None it serves liveness but is not ready (503)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep "predictions" first, as documented
    app.extensions["model"] = model

    def current_model() -> Model:
        found = app.extensions["model"]
        if found is None:
            raise HTTPException(response=_error(503, "model is not loaded yet"))
        return found

    def classify(texts: list[str]) -> Any:
        if len(texts) > settings.max_texts:
            raise RequestEntityTooLarge(f"at most {settings.max_texts} texts per request, got {len(texts)}")
        model = current_model()
        if settings.max_tokens:
            tokens = model.count_tokens(texts)
            if tokens > settings.max_tokens:
                raise RequestEntityTooLarge(f"{tokens} tokens after truncation; at most {settings.max_tokens} per "
                                            "request (MAX_TOKENS): split the texts over several requests")
        started = time.perf_counter()
        try:
            preds = model.predict(texts)
        except MemoryLimitError as exc:  # refused before any work: the worker would have been killed
            raise RequestEntityTooLarge(str(exc)) from None
        return jsonify(
            predictions=[{"label": p.label, "score": p.score} for p in preds],
            model=model.name,
            device=model.device,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    @app.get("/healthz")
    @app.get("/health")
    def healthz() -> Any:
        return jsonify(status="ok")

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(openapi_document(settings))

    @app.get("/readyz")
    def readyz() -> Any:
        return jsonify(status="ready", **current_model().describe())

    @app.post("/classify")
    def classify_json() -> Any:
        body = _parse_json(_read_body(settings.max_body_bytes))
        if not isinstance(body, dict):
            raise BadRequest('body must be a JSON object: {"text": "..."} or {"texts": ["...", ...]}')
        return classify(_texts_from_body(body))

    @app.post("/classify-file")
    def classify_file() -> Any:
        if len(request.files.getlist("file")) + len(request.form.getlist("file")) > 1:
            raise BadRequest("send one file: the form has more than one field 'file'")
        upload = request.files.get("file")
        if upload is not None:
            try:
                content = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("the uploaded file is not valid UTF-8 text") from None
        elif "file" in request.form:  # a part named "file" without a filename: plain form text
            content = request.form["file"]
        else:
            raise BadRequest("send the text file as multipart form field 'file' (curl -F file=@path)")
        lines = [line.strip() for line in content.splitlines() if _has_text(line)]
        if not lines:
            raise BadRequest("the uploaded file has no text")
        return classify(lines)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.response is not None:  # already a JSON response (see current_model)
            return exc.response
        response = _error(exc.code or 500, exc.description or exc.name)
        # The exception's own headers (Allow on a 405, as RFC 9110 requires), not its HTML content type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Any:
        if _is_parse_error(exc):  # the body broke off or its framing is invalid: the client's fault
            return _error(400, f"malformed request: {exc}")
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error while classifying; see the server log")

    return app


def _read_body(limit: int) -> bytes:
    """The request body, whole; 413 past limit even when chunked (no Content-Length to check first).

    Read straight from the server's input: werkzeug's own reader stops quietly at the limit
    for chunked bodies, and a cut-off prefix that happens to parse would then be classified.
    """
    if request.content_length is not None:
        return request.get_data(cache=False)  # werkzeug already answered 413 for a declared size past limit
    try:
        data = request.environ["wsgi.input"].read(limit + 1)
    except Exception as exc:  # the server's chunked-encoding parser rejects the body
        if _is_parse_error(exc):
            raise BadRequest(f"malformed request body: {exc}") from None
        raise
    if len(data) > limit:
        raise RequestEntityTooLarge(f"request body over {limit} bytes")
    return data


def _is_parse_error(exc: Exception) -> bool:
    """An HTTP framing error from the WSGI server (gunicorn's parser), not a bug of ours."""
    return type(exc).__module__.startswith("gunicorn.http")


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None
    except ValueError:  # not JSON, or not UTF-8
        return None


def _has_text(text: str) -> bool:
    """Something to classify: a character that is not whitespace, control, format (zero-width) or unassigned."""
    return any(unicodedata.category(c) not in BLANK_CATEGORIES for c in text)


BLANK_CATEGORIES = {"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp"}


def _texts_from_body(body: dict) -> list[str]:
    if ("text" in body) == ("texts" in body):
        raise BadRequest('give exactly one of "text" (a string) or "texts" (a list of strings)')
    if "text" in body:
        items, many = [body["text"]], False
    else:
        items, many = body["texts"], True
        if not isinstance(items, list) or not items:
            raise BadRequest('"texts" must be a non-empty list of strings')
    for i, item in enumerate(items):
        where = f'"texts"[{i}]' if many else '"text"'
        if not isinstance(item, str):
            raise BadRequest(f"{where} must be a string, got {type(item).__name__}")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{where} is not valid Unicode (it contains a lone surrogate such as \\ud800)") from None
        if not _has_text(item):
            raise BadRequest(f"{where} is empty (nothing but whitespace, control or invisible characters)")
    return items


def _error(status: int, message: str) -> Any:
    response = jsonify(error=message, status=status)
    response.status_code = status
    return response
