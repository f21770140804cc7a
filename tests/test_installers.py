"""make installers: the pip baseline it builds is a real commit, and the table it writes."""

from __future__ import annotations

import subprocess

import pytest

from scripts.infra.engine import EngineError
from scripts.measure import installers
from scripts.variants import ROOT


def dockerfile_at(commit: str) -> str:
    return subprocess.run(["git", "show", f"{commit}:layered_image/Dockerfile"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_the_pip_baseline_is_layered_image_before_uv():
    before = dockerfile_at(installers.PIP_COMMIT)
    now = (ROOT / "layered_image" / "Dockerfile").read_text()
    assert "pip install" in before and "uv pip install" not in before
    assert "uv pip install" in now and "--mount=type=cache,target=/root/.cache/uv" in now
    # everything else the same: only the dependency step differs
    assert before.splitlines()[-15:] == now.splitlines()[-15:]


def test_repin_changes_the_one_pin(tmp_path):
    req = tmp_path / "requirements-common.txt"
    req.write_text((ROOT / "app" / "requirements-common.txt").read_text())
    installers.repin(req, "27.0.0")
    changed = [line for line in req.read_text().splitlines() if line.startswith(f"{installers.PIN}==")]
    assert changed == [f"{installers.PIN}==27.0.0"]
    req.write_text("flask==3.1.3\n")
    with pytest.raises(EngineError, match="no gunicorn== pin"):
        installers.repin(req, "27.0.0")


def test_table_has_every_step_for_both_installers():
    runs = {i: {"seconds": {s: 10.0 + n for n, s in enumerate(installers.STEPS)}, "size_bytes": 1_117_000_000}
            for i in ("pip", "uv")}
    table = installers.markdown({"server": "26.1.5", "engine": "docker26", "wheelhouse": True, "installers": runs,
                                 "machine": {"cpu": "x", "cores": 2, "measured_at": "2026-12-02T23:00:00"}})
    for step in installers.STEPS:
        assert f"| {step} |" in table
    assert "| image size | 1.1 GB | 1.1 GB |" in table
    assert "wheels from the local wheelhouse" in table
    assert "run make installers" in installers.markdown({})
