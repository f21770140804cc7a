"""The OpenAPI document: committed as generated, served as it runs, and the real service fuzzed against it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import openapi
from app.settings import Settings
from tests.conftest import ROOT, start_gunicorn, stop

FUZZ_EXAMPLES = 150  # per operation and phase: bounded, about half a minute on 2 cores


def test_committed_document_is_the_generated_one():
    committed = (ROOT / "app" / "openapi.json").read_text()
    assert committed == openapi.dumps(Settings()), "regenerate: python -m app.openapi > app/openapi.json"


def test_served_document_follows_the_settings(tiny_classifier):
    from app.server import create_app

    client = create_app(tiny_classifier, Settings(max_texts=5)).test_client()
    doc = client.get("/openapi.json").get_json()
    texts = doc["components"]["schemas"]["ClassifyRequest"]["oneOf"][1]["properties"]["texts"]
    assert texts["maxItems"] == 5
    assert set(doc["paths"]) == {"/healthz", "/health", "/readyz", "/openapi.json", "/classify", "/classify-file"}


def test_every_route_is_documented(tiny_classifier):
    from app.server import create_app

    app = create_app(tiny_classifier, Settings())
    documented = {(path, method.upper()) for path, ops in openapi.document(Settings()).get("paths").items()
                  for method in ops}
    routed = {(rule.rule, m) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def test_the_pattern_is_the_server_rule_on_latin1():
    import re

    from app.server import _has_text

    pattern = re.compile(openapi.HAS_TEXT)
    for code in range(256):
        assert bool(pattern.search(chr(code))) == _has_text(chr(code)), hex(code)


@pytest.fixture(scope="module")
def onnx_service():
    proc, base = start_gunicorn("model-onnx-int8")
    yield base
    stop(proc)


def fuzz(location: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    st = Path(sys.executable).with_name("st")
    cmd = [str(st), "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run", location,
           "--checks", "all", "--max-examples", str(FUZZ_EXAMPLES), "--phases", "examples,coverage,fuzzing",
           "--generation-codec", "latin-1", "--seed", "20261202", "--request-timeout", "20", "--workers", "1",
           "--generation-database", ":memory:", "--no-color", *extra]  # no example cache written anywhere
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=workdir)


def test_schemathesis_finds_nothing(onnx_service, tmp_path):
    """schemathesis, every check, bounded examples, against the real gunicorn with the ONNX model."""
    run = fuzz(f"{onnx_service}/openapi.json", tmp_path)
    print(run.stdout[run.stdout.rfind("Test cases:"):])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) >= 100


def test_schemathesis_catches_a_service_that_disagrees_with_its_document(onnx_service, tmp_path):
    """The fuzz can fail: against a document that says /healthz answers a number, the real answer is caught."""
    doc = openapi.document(Settings())
    doc["components"]["schemas"]["Status"]["properties"]["status"] = {"type": "integer"}
    (tmp_path / "wrong.json").write_text(json.dumps(doc))
    run = fuzz(str(tmp_path / "wrong.json"), tmp_path, "--url", onnx_service, "--include-path", "/healthz")
    assert run.returncode != 0
    assert "Response violates schema" in run.stdout, run.stdout[-4000:]
