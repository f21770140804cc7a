"""ENGINE=docker26-containerd: Debian 13's Docker 26 with the containerd image store, a container of
the default engine, builds onnx_image with buildx, runs it healthy through make smoke's checks,
and make diagnose reads its `docker save` (an OCI layout): the same files as the same image loaded
into the default engine, saved and streamed from there."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from image_advisor.engine import save_chunks, saved_image
from image_advisor.layers import SavedImage, analyze, read_saved, read_stream

from scripts.infra import engines
from scripts.infra.engine import docker
from scripts.results import load_json
from scripts.studies import engine_sizes
from scripts.variants import BY_NAME, ROOT

NAME = "docker26-containerd"


def tool(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def files(saved: SavedImage) -> tuple:
    """What a reading of an image must agree on: each layer's paths and bytes, and the final files' bytes (an
    engine that unpacks and exports a layer again may order its members or pick a hard link's target anew)."""
    return ([sorted(e.path for e in layer.entries) for layer in saved.layers], [layer.size for layer in saved.layers],
            analyze(saved.layers).final_bytes)


def test_containerd_store_engine_builds_serves_and_is_diagnosed(monkeypatch):
    monkeypatch.setenv("VARIANTS", "onnx_image")  # the stand-ins copied in: those onnx_image builds on
    was_running = engines._state(engines.ENGINES[NAME].container) == "running"
    variables = engines.up(NAME)
    env = {**os.environ, **variables}
    results = ROOT / "results" / "engines" / NAME
    try:
        assert "buildx" in tool("scripts.infra.engines", env, "up", NAME).stderr  # the client builds with buildx
        built = tool("scripts.images.build", env, "--variants", "onnx_image")
        assert built.returncode == 0, built.stderr[-3000:]
        smoke = tool("scripts.images.smoke", env)
        assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
        assert load_json(results / "smoke.json")["variants"]["onnx_image"]["failures"] == []
        diagnosed = tool("scripts.advisor.diagnose", env, "--variant", "onnx_image", "--no-trace")
        assert diagnosed.returncode == 0, diagnosed.stderr[-2000:]
        report = load_json(results / "diagnose" / "onnx_image.json")
        # read from the OCI layout: the Python distributions, the dpkg records, every file (no finding is
        # required: with --no-trace, onnx_image has none left)
        assert report["python_distributions"] and report["os_packages"] > 0, "nothing read from the OCI layout"
        assert 100e6 < report["final_bytes"] < 200e6
        # The same image three more ways: the containerd store's save (an OCI layout, layers compressed) read as a
        # file, and that archive loaded into the default engine (classic store), saved and streamed from there.
        copy = "image-advisor-test:containerd-copy"
        docker("tag", BY_NAME["onnx_image"].image, copy, host=variables["DOCKER_HOST"])
        with tempfile.TemporaryDirectory() as tmp:
            oci = Path(tmp) / "containerd.tar"
            docker("save", "-o", str(oci), copy, host=variables["DOCKER_HOST"], timeout=300)
            docker("load", "-i", str(oci), timeout=300)
            try:
                expected = files(read_saved(oci))
                assert expected[2] > 100e6
                with saved_image(copy) as archive:
                    assert files(read_saved(archive)) == expected
                assert files(read_stream(save_chunks(copy))) == expected
            finally:
                docker("rmi", copy, check=False)
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        figures = engine_sizes.image_figures(BY_NAME["onnx_image"].image)
        assert figures["save_layout"] == "oci"
        # the files of the image, from the layer replay, are what the classic store counts (within its metadata)
        assert 100e6 < figures["replay_bytes"] < 200e6
    finally:
        if not was_running:
            engines.down([NAME])
