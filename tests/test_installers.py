"""make installers: the pip baseline it builds is a real commit, and the table it writes."""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts.bench import installers
from scripts.infra.engine import EngineError
from scripts.variants import ROOT


def dockerfile_at(commit: str) -> str:
    return subprocess.run(["git", "show", f"{commit}:layered_image/Dockerfile"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_the_pip_baseline_is_layered_image_before_uv():
    now = (ROOT / "layered_image" / "Dockerfile").read_text()
    before = installers.pip_baseline(now)
    assert "COPY model /opt/model" in dockerfile_at(installers.PIP_COMMIT)  # a host-built model, then
    assert "pip install" in before and "uv pip install" not in before
    assert "uv pip install" in now and "--mount=type=cache,target=/root/.cache/uv" in now
    # everything else the same: the model stage before the build stage, the runtime stage after it
    model_stage = now[now.index("# The classifier, built"):now.index("FROM ${PYTHON_IMAGE} AS build")]
    assert model_stage in before and len(model_stage.splitlines()) > 5
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


def test_steps_time_five_builds_and_leave_nothing_behind(monkeypatch, tmp_path):
    """Each build replaces the one before (removed, not left untagged); the cache mounts are emptied
    before the last step; the scratch requirements get their pin back."""
    (tmp_path / "app").mkdir()
    req = tmp_path / "app" / "requirements-common.txt"
    req.write_text("flask==3.1.3\ngunicorn==27.0.1\n")
    (tmp_path / "app" / "server.py").write_text("")
    builds, replaced, calls = [], [], []
    def build_image(*_a, no_cache: bool, **_k) -> float:
        builds.append((no_cache, req.read_text()))
        return 1.0

    monkeypatch.setattr(installers, "build_image", build_image)
    monkeypatch.setattr(installers, "image_id", lambda tag: f"sha256:{len(builds)}")
    monkeypatch.setattr(installers, "remove_replaced", lambda old, tag: replaced.append(old))
    monkeypatch.setattr(installers, "image_size", lambda tag: 1_000)
    monkeypatch.setattr(installers, "docker", lambda *a, **k: calls.append(a))
    out = installers.steps(tmp_path / "Dockerfile", tmp_path, setup=None, installer="uv")
    assert list(out["seconds"]) == list(installers.STEPS) and out["size_bytes"] == 1_000
    assert [no_cache for no_cache, _ in builds] == [True, True, False, False, False]
    assert "gunicorn==27.0.0" in builds[3][1] and "gunicorn==26.2.0" in builds[4][1]
    assert len(replaced) == 5
    prunes = [c for c in calls if c[:2] == ("builder", "prune")]
    assert "type=exec.cachemount" in prunes[1] and calls.index(prunes[1]) > calls.index(prunes[0])
    assert req.read_text() == "flask==3.1.3\ngunicorn==27.0.1\n"
    assert ("rmi", "-f", "bert-classifier-scratch:layered-uv") in calls


def test_what_docs_engines_says_of_the_committed_run_holds():
    """docs/engines.md: uv was faster than pip in every step that installs (all but the app/ edit)."""
    runs = json.loads(installers.OUT.read_text())["installers"]
    for step in installers.STEPS:
        if step != "app/ edit":
            assert runs["uv"]["seconds"][step] < runs["pip"]["seconds"][step], step
    assert "uv was faster than pip\nin every step that installs" in (ROOT / "docs" / "engines.md").read_text()
