"""make clean-images: finds only what the project built, and leaves live scratch engines alone."""

from __future__ import annotations

import os
import subprocess

from scripts.images import clean


def fake_engine(monkeypatch, images: str, dangling: str = "") -> list[tuple]:
    calls: list[tuple] = []

    def docker(*args, **kwargs):
        calls.append(args)
        out = ""
        if args[:2] == ("images", "--format"):
            out = images
        elif args[:2] == ("images", "-q"):
            # untagged images only when they carry our build label or the stand-ins' one
            assert f"label={clean.PROJECT_LABEL}" in args or f"label={clean.STAND_IN_LABEL}" in args
            out = dangling if f"label={clean.PROJECT_LABEL}" in args else "def456\n"
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(clean, "docker", docker)
    return calls


def test_project_images_are_ours_only(monkeypatch):
    fake_engine(monkeypatch, "\n".join([
        "bert-classifier:naive_image", "bert-classifier:slim_image-cuda", "bert-classifier-scratch:layered_image",
        "local/python:3.11-slim", "local/something-else:1", "python:3.11", "registry:2",
        "local/registry:2", "local/debian:13-slim-arm64", "someone/bert-classifier:x", "<none>:<none>"]),
        dangling="abc123\nabc123\n")
    assert clean.project_images() == ["bert-classifier:naive_image", "bert-classifier:slim_image-cuda",
                                      "bert-classifier-scratch:layered_image", "local/python:3.11-slim",
                                      "local/registry:2", "local/debian:13-slim-arm64", "abc123", "def456"]


def test_containers_of_an_image_go_first(monkeypatch):
    calls = fake_engine(monkeypatch, "")
    clean.remove_images(["bert-classifier:naive_image"])
    assert calls[0][:2] == ("ps", "-aq") and calls[-1][:3] == ("image", "rm", "-f")
    calls.clear()
    clean.remove_images([])
    assert calls == []


def test_labelled_containers_then_their_volumes_go(monkeypatch):
    """The engines ENGINE=... started keep their images in named volumes: removed after their containers."""
    calls: list[tuple] = []

    def docker(*args, **kwargs):
        calls.append(args)
        listed = {"ps": "c1\n", "network": "n1\n", "volume": "bert-engine-docker26-abc\n"}
        return subprocess.CompletedProcess(args, 0, listed[args[0]] if {"-q", "-aq"} & set(args) else "", "")

    monkeypatch.setattr(clean, "docker", docker)
    clean.remove_infra()
    removals = [c for c in calls if "rm" in c[:2]]
    assert removals == [("rm", "-f", "-v", "c1"), ("network", "rm", "n1"), ("volume", "rm", "bert-engine-docker26-abc")]
    assert all(f"label={clean.PROJECT_LABEL}" in c for c in calls if "ls" in c[:2] or c[0] == "ps")


def test_only_dead_scratch_engines_are_stale(tmp_path):
    live, dead, no_pid = (tmp_path / f"scratch-engine-{n}" for n in ("live", "dead", "nopid"))
    for d in (live, dead, no_pid):
        (d / "data").mkdir(parents=True)
        (d / "data" / "blob").write_bytes(b"x" * 100)
    (live / "docker.pid").write_text(str(os.getpid()))
    (dead / "docker.pid").write_text("999999999")
    stale = clean.stale_scratch_engines(tmp_path)
    assert stale == [dead, no_pid]
    assert clean.folder_bytes(dead) == 100 + len("999999999")  # the blob and the pid file
    clean.remove_scratch_engine(dead)
    assert not dead.exists() and live.exists()
