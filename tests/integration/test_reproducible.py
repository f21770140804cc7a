"""Reproducible builds on Docker 26 with the containerd image store (ENGINE=docker26-containerd): two
clean builds of onnx_image from two fresh copies of the context give one digest, and the check that
says so fails, naming the file, when a build writes its own time into a file. Pushed to the registry
beside the engine (what make releases and make compression measure), a clean rebuild sends nothing
new, and zstd layers pull on an empty Docker 26 node but not on Docker 20.10."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from scripts.images.build import BuildSetup, build_image, build_to_push, rewritten_output
from scripts.infra import bases, engines, registry
from scripts.infra.engine import buildkit_client, docker, rewrites_timestamps
from scripts.studies import releases, reproducible
from scripts.variants import BY_NAME, EPOCH

NAME = "docker26-containerd"
DOCKERFILE = """\
ARG DEBIAN13_IMAGE=debian:13-slim
FROM ${DEBIAN13_IMAGE}
COPY hello.py /opt/app/
RUN mkdir /opt/app/data && echo ready > /opt/app/data/state{plant}
"""


@pytest.fixture(scope="module")
def engine():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VARIANTS", "onnx_image")  # the stand-ins copied in: those onnx_image builds on
        was_running = engines._state(engines.ENGINES[NAME].container) == "running"
        variables = engines.up(NAME)
        for key, value in variables.items():
            mp.setenv(key, value)
        buildkit_client.cache_clear()  # chosen once per process: now the one with the engine's buildx
        try:
            assert rewrites_timestamps(), "buildx and the containerd store should rewrite times"
            yield
        finally:
            buildkit_client.cache_clear()
            if not was_running:
                engines.down([NAME])


def small_setup() -> BuildSetup:
    # onnx_image builds on DEBIAN13_IMAGE too, so the engine holds it (engines.up copies in only those)
    return BuildSetup(base_args={"DEBIAN13_IMAGE": bases.resolve_one(bases.BY_ARG["DEBIAN13_IMAGE"])})


def small_context(ctx: Path, plant: str = "") -> Path:
    """A fresh copy of the small image's context: its file times are those of now."""
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("{plant}", plant))
    (ctx / "hello.py").write_text("print('hello')\n")
    return ctx


def build_twice(tmp: Path, plant: str) -> dict:
    archives = []
    for n in "ab":  # two contexts written apart: the file times differ, as in two checkouts
        ctx = small_context(tmp / f"ctx-{n}", plant)
        archive = tmp / f"{n}.tar"
        build_image(ctx / "Dockerfile", "bert-classifier-scratch:planted", small_setup(), context=ctx, quiet=True,
                    build_args={"SOURCE_DATE_EPOCH": str(EPOCH)}, output=rewritten_output(archive))
        archives.append(archive)
    return reproducible.compare(*archives)


def test_a_small_image_is_reproducible_and_a_planted_build_time_is_caught(engine, tmp_path):
    clean = build_twice(tmp_path / "clean", "")
    assert clean["same"], clean
    planted = build_twice(tmp_path / "planted", " && date +%s%N > /opt/app/built-at")
    assert not planted["same"]
    paths = [p for layer in planted["layers"] for p in layer["paths"]]
    assert paths == [{"path": "opt/app/built-at", "what": ["content"]}], paths


def test_onnx_image_built_twice_from_scratch_has_one_digest(engine):
    row = reproducible.measure([BY_NAME["onnx_image"]])["variants"]["onnx_image"]
    assert row["same"], row.get("layers")


def push(infra: registry.Infra, ctx: Path, tag: str, compression: str = "") -> dict:
    """Build the context from an empty cache as make releases does, push it; the registry's manifest."""
    local = f"bert-classifier-scratch:pushed-{tag}"
    build_to_push(ctx / "Dockerfile", local, small_setup(), ctx.parent / f"{tag}.tar", compression=compression,
                  context=ctx, quiet=True)
    docker("tag", local, infra.push_ref("small", tag))
    try:
        docker("push", infra.push_ref("small", tag))
    finally:
        docker("rmi", infra.push_ref("small", tag), local, check=False)
    return registry.manifest(infra.registry, "small", tag)


def test_a_clean_rebuild_pushes_nothing_and_zstd_needs_docker_23(engine, tmp_path):
    with engines.measurement_infra(NAME) as infra:
        first = push(infra, small_context(tmp_path / "a"), "r0")
        again = push(infra, small_context(tmp_path / "b"), "r1")  # another checkout, an empty cache
        assert releases.moved(releases.blobs(again), set(releases.blobs(first))) == (0, 0)
        zstd = push(infra, small_context(tmp_path / "z"), "z", compression="zstd")
        assert {layer["mediaType"] for layer in zstd["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
        registry.pull(infra.scratch, infra.pull_ref("small", "z"))  # the empty Docker 26 node reads it
        version, answer = engines.pull_message(NAME, infra, infra.pull_ref("small", "z"))
        assert version.startswith("20.10") and "invalid tar header" in answer, (version, answer)


def test_two_measurements_on_one_engine_get_a_registry_each(engine, tmp_path):
    def catalog(infra: registry.Infra) -> list[str]:
        with urllib.request.urlopen(f"http://{infra.registry}/v2/_catalog", timeout=10) as resp:
            return json.load(resp)["repositories"]

    with engines.measurement_infra(NAME) as first, engines.measurement_infra(NAME) as second:
        assert first.registry != second.registry
        push(first, small_context(tmp_path / "a"), "r0")
        assert catalog(first) == ["small"] and catalog(second) == []
