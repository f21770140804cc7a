"""Serving the wheelhouse: a stable port per checkout, never a collision between checkouts."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from scripts.infra import wheelhouse
from scripts.variants import docker_platform, machine_arch


def test_port_is_stable_per_checkout_and_differs_between_checkouts():
    assert wheelhouse.checkout_port(Path("/a/clone")) == wheelhouse.checkout_port(Path("/a/clone"))
    ports = {wheelhouse.checkout_port(Path(f"/work/clone-{n}")) for n in range(20)}
    assert len(ports) >= 19 and all(20000 <= p < 40000 for p in ports)


def test_serves_on_the_checkout_port(tmp_path, monkeypatch):
    monkeypatch.delenv("WHEELHOUSE_PORT", raising=False)
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "index.html").write_text("ok")
    with wheelhouse.serve(tmp_path) as url:
        assert url == f"http://127.0.0.1:{wheelhouse.checkout_port()}/simple/"
        assert urllib.request.urlopen(url, timeout=5).read() == b"ok"


def test_a_taken_checkout_port_falls_back_to_a_free_one(tmp_path, monkeypatch):
    """What a second build of the same checkout, or a port collision, gets: a working index."""
    monkeypatch.delenv("WHEELHOUSE_PORT", raising=False)
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "index.html").write_text("ok")
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the previous test's port may be in TIME_WAIT
        busy.bind(("127.0.0.1", wheelhouse.checkout_port()))
        busy.listen()
        with wheelhouse.serve(tmp_path) as url:
            assert f":{wheelhouse.checkout_port()}/" not in url
            assert urllib.request.urlopen(url, timeout=5).read() == b"ok"


def test_a_taken_port_that_was_asked_for_is_a_clear_error(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("WHEELHOUSE_PORT", str(busy.getsockname()[1]))
        with pytest.raises(SystemExit, match="WHEELHOUSE_PORT"):
            with wheelhouse.serve(tmp_path):
                pass


def test_wheels_are_resolved_for_the_target_platform_not_the_host():
    assert machine_arch("linux/arm64") == machine_arch("aarch64") == "aarch64"
    assert machine_arch("linux/amd64") == machine_arch("x86_64") == "x86_64"
    assert machine_arch("linux/arm64/v8") == "aarch64"
    assert docker_platform("aarch64") == docker_platform("linux/arm64") == "linux/arm64"
    assert docker_platform("x86_64") == "linux/amd64"
    for other in ("windows/amd64", "linux/riscv64", "s390x"):
        with pytest.raises(SystemExit):
            machine_arch(other)
    tags = wheelhouse.manylinux_tags("aarch64")
    # pip takes --platform literally: the onnxruntime wheel is manylinux_2_28 and must be in the list.
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_28_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and not any("x86_64" in t for t in tags)
    cmd = wheelhouse.download_command(wheelhouse.ONNX_SET, "aarch64")
    assert cmd[cmd.index("--python-version") + 1] == "3.13" and "--no-deps" in cmd
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"] == tags


def test_wheelhouse_mode_and_when_builds_cannot_reach_it(monkeypatch):
    import subprocess

    from scripts.images import build
    from scripts.infra.engine import EngineError

    for raw, want in (("", "auto"), ("AUTO", "auto"), ("1", "on"), ("off", "off"), ("no", "off")):
        monkeypatch.setenv("WHEELHOUSE", raw)
        assert build.wheelhouse_mode() == want
    monkeypatch.setenv("WHEELHOUSE", "sometimes")
    with pytest.raises(EngineError):
        build.wheelhouse_mode()

    def info(os_name: str):
        return lambda *a, **k: subprocess.CompletedProcess(a, 0, f"{os_name}|host\n", "")

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(build, "docker", info("Debian GNU/Linux 12 (bookworm)"))
    assert build.wheelhouse_unreachable_reason() is None
    monkeypatch.setattr(build, "docker", info("Docker Desktop"))
    assert "Docker Desktop" in build.wheelhouse_unreachable_reason()
    monkeypatch.setattr(build, "docker", info("Ubuntu 24.04"))
    monkeypatch.setenv("DOCKER_HOST", "ssh://builder")
    assert "DOCKER_HOST=ssh://builder" in build.wheelhouse_unreachable_reason()


def test_a_cuda_torch_for_the_cpu_images_is_called_out(tmp_path, capsys):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    (tmp_path / "torch-2.13.0-cp311-cp311-manylinux_2_28_aarch64.whl").touch()  # PyPI's: a CUDA build
    assert wheelhouse.cuda_torch_for_cpu("x86_64", tmp_path) is None
    assert wheelhouse.cuda_torch_for_cpu("aarch64", tmp_path) == "torch-2.13.0-cp311-cp311-manylinux_2_28_aarch64.whl"
    wheelhouse.warn_cuda_torch("cuda", "aarch64", tmp_path)  # expected there
    assert capsys.readouterr().err == ""
    wheelhouse.warn_cuda_torch("cpu", "aarch64", tmp_path)
    assert "CUDA build" in capsys.readouterr().err
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_aarch64.whl").touch()
    assert wheelhouse.cuda_torch_for_cpu("aarch64", tmp_path) is None
