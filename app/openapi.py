"""The service's API as an OpenAPI 3 document, built from the settings it runs with.

Served at GET /openapi.json; app/openapi.json is this document with the default settings
(`python -m app.openapi > app/openapi.json`; a test fails when the two differ).
tests/test_openapi.py fuzzes the real service against it with schemathesis.
"""

from __future__ import annotations

import json
import sys

from app.settings import Settings

# "Has text": a character that is not whitespace, control or format (app/server.py's rule, by Unicode
# category). JSON Schema regexes cannot name categories in a form the fuzzers accept, so the pattern
# lists them explicitly: exact for Latin-1 (U+0000-U+00FF), the common invisible characters beyond.
HAS_TEXT = r"[^\s\x00-\x1f\x7f-\x9f\xa0\xad\u200b-\u200f\u2028-\u202f\u2060-\u2064\ufeff]"

ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}


def _ok(schema_ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _error(description: str) -> dict:
    return _ok("#/components/schemas/Error", description)


def document(settings: Settings) -> dict:
    text = {"type": "string", "pattern": HAS_TEXT,
            "description": "Some text: at least one character that is not whitespace, control or invisible "
                           "(Unicode categories Cc, Cf, Cs, Cn, Zs, Zl, Zp); longer inputs are truncated to the "
                           "model's max_length tokens."}
    limits = (f"At most {settings.max_texts} texts (MAX_TEXTS) and {settings.max_tokens or 'unlimited'} tokens "
              f"after truncation (MAX_TOKENS) per request; the body at most {settings.max_body_bytes} bytes "
              "(MAX_BODY_BYTES).")
    too_large = _error(f"Too large: {limits} Also: its forward passes would not fit under the container's "
                       "memory limit (the message gives the figures).")
    busy = _error("Busy: too many requests waiting for the model (MAX_QUEUED); retry after Retry-After seconds. "
                  "Also: the model is not loaded yet.")
    bad = _error("Malformed request: not JSON, wrong shape, empty text, or a broken body.")
    slow = _error("The body did not arrive within BODY_TIMEOUT seconds.")
    classify_errors = {"400": bad, "408": slow, "413": too_large, "415": _error("Unsupported media type."),
                       "503": busy}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "BERT text classifier",
            "version": "1.0.0",
            "description": "Sentiment of English text (POSITIVE/NEGATIVE). Every error is JSON: "
                           '{"error": "...", "status": N}. ' + limits,
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness: the process answers (no model work).",
                                 "operationId": "healthz",
                                 "responses": {"200": _ok("#/components/schemas/Status", "Alive.")}}},
            "/health": {"get": {"summary": "Liveness, the same as /healthz.", "operationId": "health",
                                "responses": {"200": _ok("#/components/schemas/Status", "Alive.")}}},
            "/readyz": {"get": {"summary": "Readiness: the model is loaded; what it is.", "operationId": "readyz",
                                "responses": {"200": _ok("#/components/schemas/Ready", "Ready to classify."),
                                              "503": _error("The model is not loaded yet.")}}},
            "/openapi.json": {"get": {"summary": "This document.", "operationId": "openapi",
                                      "responses": {"200": {"description": "The OpenAPI document.",
                                                            "content": {"application/json": {
                                                                "schema": {"type": "object"}}}}}}},
            "/classify": {"post": {
                "summary": "Classify one text or a list of texts.",
                "operationId": "classify",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ClassifyRequest"}}}},
                "responses": {"200": _ok("#/components/schemas/Predictions", "One prediction per text, in order."),
                              **classify_errors},
            }},
            "/classify-file": {"post": {
                "summary": "Classify every non-blank line of an uploaded UTF-8 text file.",
                "operationId": "classify_file",
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"],
                               "properties": {"file": {**text, "description": "A UTF-8 text file, one text a "
                                                       "line; blank lines are skipped. " + text["description"]}}},
                    "encoding": {"file": {"contentType": "text/plain"}}}}},
                "responses": {"200": _ok("#/components/schemas/Predictions", "One prediction per non-blank line."),
                              **classify_errors},
            }},
        },
        "components": {"schemas": {
            "Error": ERROR,
            "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
            "Ready": {"type": "object",
                      "required": ["status", "model", "labels", "device", "max_length", "backend"],
                      "properties": {"status": {"type": "string", "enum": ["ready"]}, "model": {"type": "string"},
                                     "labels": {"type": "array", "items": {"type": "string"}},
                                     "device": {"type": "string", "enum": ["cpu", "cuda"]},
                                     "max_length": {"type": "integer"},
                                     "backend": {"type": "string", "enum": ["torch", "onnx"]},
                                     "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                                     "threads": {"type": "integer"}, "load_seconds": {"type": "number"}}},
            "ClassifyRequest": {
                "description": 'Exactly one of "text" or "texts"; other members are ignored.',
                "oneOf": [
                    {"type": "object", "required": ["text"], "properties": {"text": text},
                     "not": {"required": ["texts"]}},
                    {"type": "object", "required": ["texts"],
                     "properties": {"texts": {"type": "array", "items": text, "minItems": 1,
                                              "maxItems": settings.max_texts}},
                     "not": {"required": ["text"]}},
                ],
            },
            "Predictions": {
                "type": "object", "required": ["predictions", "model", "device", "elapsed_ms"],
                "properties": {
                    "predictions": {"type": "array", "items": {
                        "type": "object", "required": ["label", "score"],
                        "properties": {"label": {"type": "string"},
                                       "score": {"type": "number", "minimum": 0, "maximum": 1}}}},
                    "model": {"type": "string"}, "device": {"type": "string"},
                    "elapsed_ms": {"type": "number", "minimum": 0}}},
        }},
    }


def dumps(settings: Settings) -> str:
    return json.dumps(document(settings), indent=2, ensure_ascii=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(Settings()))
