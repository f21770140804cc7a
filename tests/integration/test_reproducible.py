"""Reproducible builds on Docker 26 with the containerd image store (ENGINE=docker26-containerd): two
clean builds of onnx_image from two fresh copies of the context give one digest, and the check that
says so fails, naming the file, when a build writes its own time into a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.images.build import BuildSetup, build_image
from scripts.infra import bases, engines
from scripts.infra.engine import buildkit_client
from scripts.measure import reproducible
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
            assert reproducible.rewrites_timestamps(), "buildx and the containerd store should rewrite times"
            yield
        finally:
            buildkit_client.cache_clear()
            if not was_running:
                engines.down([NAME])


def build_twice(tmp: Path, plant: str) -> dict:
    # onnx_image builds on DEBIAN13_IMAGE too, so the engine holds it (engines.up copies in only those)
    setup = BuildSetup(base_args={"DEBIAN13_IMAGE": bases.resolve_one(bases.BY_ARG["DEBIAN13_IMAGE"])})
    archives = []
    for n in "ab":  # two contexts written apart: the file times differ, as in two checkouts
        ctx = tmp / f"ctx-{n}"
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(DOCKERFILE.replace("{plant}", plant))
        (ctx / "hello.py").write_text("print('hello')\n")
        archive = tmp / f"{n}.tar"
        build_image(ctx / "Dockerfile", "bert-classifier-scratch:planted", setup, context=ctx, quiet=True,
                    build_args={"SOURCE_DATE_EPOCH": str(EPOCH)},
                    output=f"type=oci,dest={archive},rewrite-timestamp=true")
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
