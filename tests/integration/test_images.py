"""Integration: build all six images from scratch (cold), then smoke-test each one in a container.

This is what CI runs after the unit tests (`make integration`). It needs a Docker engine,
which scripts.infra.engine finds or starts (installing docker.io on a fresh Debian machine).
"""

from __future__ import annotations

import pytest
from image_advisor.diagnosis import advise_image, examine, run_trace
from image_advisor.trace import parse_requests, trace_image

from scripts.advisor.profile import SERVICE_REQUESTS, profile
from scripts.images.build import build_all, build_image, image_size, prepare
from scripts.images.container import NEGATIVE, POSITIVE, Container, classify, has_shell, process_uids
from scripts.images.smoke import smoke_variant
from scripts.infra import disk
from scripts.infra.engine import EngineError, docker
from scripts.results import RESULTS
from scripts.variants import BY_NAME, VARIANTS

SMALLEST_TO_NAIVE_MAX = 1 / 3
BUILD_RECORD_BEFORE = (RESULTS / "build.json").read_bytes()


def test_a_cold_build_without_room_stops_before_building(monkeypatch):
    """On this engine: when its disk lacks the room a cold build needs, build_all stops in one line and
    builds nothing, before the build would fail half-way with "No space left on device". The room is
    reckoned from the image as the engine holds it, not from a record of builds (which make test keeps
    apart, empty: a default for each of the six asked 48 GB of a disk with 30 GB free)."""
    setup = prepare("cpu")
    if disk.engine_root_here() is None:
        pytest.skip("the engine's disk is not on this machine")
    image = BY_NAME["onnx_image"].image
    before = docker("image", "inspect", "--format", "{{.Id}}", image, check=False).stdout
    asked: list[list[int | None]] = []
    monkeypatch.setattr(disk, "room_needed", lambda sizes: asked.append(sizes) or 10**15)
    with pytest.raises(EngineError) as err:
        build_all([BY_NAME["onnx_image"]], setup, cached=False)
    assert "\n" not in str(err.value) and "a cold build of onnx_image needs about" in str(err.value)
    assert docker("image", "inspect", "--format", "{{.Id}}", image, check=False).stdout == before
    assert asked == [[image_size(image) if before.strip() else None]]


@pytest.fixture(scope="module")
def built():
    """Cold builds of every variant; returns build.json's figures."""
    return build_all(list(VARIANTS), prepare("cpu"), cached=False)


def test_the_cold_builds_leave_the_committed_record_alone(built):
    """The docs show results/build.json: make test's builds go to a file of their own (conftest.py)."""
    assert (RESULTS / "build.json").read_bytes() == BUILD_RECORD_BEFORE


def test_every_variant_builds_and_is_recorded(built):
    for variant in VARIANTS:
        record = built[variant.name]
        assert record["cold"] and record["size_bytes"] > 50_000_000 and record["build_seconds"] > 0


def test_naive_is_the_largest(built):
    sizes = {name: r["size_bytes"] for name, r in built.items()}
    assert max(sizes, key=sizes.get) == "naive_image"


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_smoke(built, variant):
    result = smoke_variant(variant)
    assert not result["failures"], "; ".join(result["failures"])
    assert result["runs_as_root"] == (not variant.non_root)
    assert result["exit_code"] == 0 and result["stop_seconds"] < 10


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_trace_sees_the_service(built, variant):
    """make diagnose's run-time trace attaches to every image (distroless and non-root included)."""
    trace = trace_image(variant.image, parse_requests(" | ".join(SERVICE_REQUESTS)))
    assert trace.ok, trace.reason
    assert trace.processes >= 2  # gunicorn's arbiter and its worker
    assert all(0 < status < 500 for _, status in trace.answers), trace.answers
    assert "app.server" in trace.modules or "app" in trace.modules


def test_onnx_image_findings_are_right(built):
    """Checked against what onnx_image is: nothing it runs on is called unused, and nothing is certain waste."""
    onnx = BY_NAME["onnx_image"]
    examined = examine(onnx.image, profile(onnx), with_dive=False)
    trace, bytecode = run_trace(onnx.image, parse_requests(" | ".join(SERVICE_REQUESTS)), examined)
    advice = advise_image(examined, trace, bytecode, profile(onnx))
    never = {name for name, _ in advice["distributions_never_imported"]}
    assert not never & {"onnxruntime", "numpy", "tokenizers", "flask", "gunicorn", "werkzeug"}, never
    assert [f["rule"] for f in advice["findings"] if f["confidence"] == "certain" and f["bytes"]] == []
    assert "torch-for-onnx" not in {f["rule"] for f in advice["findings"]}
    # its stdlib is bytecode only, cut to stdlib-modules.txt: every module the trace imported is there as bytecode
    assert "stdlib-without-bytecode" not in {f["rule"] for f in advice["findings"]}, bytecode


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.step], ids=[v.name for v in VARIANTS if v.step])
def test_the_walks_step_file_builds_and_answers(built, variant):
    """The file the walk shows as this step (the previous step plus one change) is an image that works too."""
    tag = f"bert-classifier-step:{variant.name}"
    setup = prepare("cpu", variants=[variant])
    with setup.wheels():
        build_image(variant.step_dockerfile, tag, setup, no_cache=False, label=f"{variant.name} (step)", quiet=True)
    container = Container(tag).start()
    try:
        container.wait_ready(120)
        labels = [classify(container.base_url, text)[1]["predictions"][0]["label"] for text in (POSITIVE, NEGATIVE)]
        assert labels == ["POSITIVE", "NEGATIVE"]
        assert not has_shell(tag) and process_uids(container.id) == {65532}
    finally:
        container.remove()
        docker("rmi", "-f", tag, check=False)
