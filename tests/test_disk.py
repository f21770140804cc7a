"""The room check before cold builds: one line naming what is free, what is needed and the cache to trim,
only for an engine whose disk is on this machine. The engine's answers are canned; the free space is the
real free space of the folder the test names as the engine's root."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from scripts.infra import disk
from scripts.infra.engine import EngineError


@pytest.fixture
def engine(monkeypatch, tmp_path):
    """An engine whose data root is tmp_path and whose build cache holds 60.21GB."""
    def docker(*args, **_):
        out = {"info": str(tmp_path),
               "system": '{"Type":"Images","Size":"13.26GB"}\n{"Type":"Build Cache","Size":"60.21GB"}'}[args[0]]
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(disk, "docker", docker)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DISK_CHECK", raising=False)
    return tmp_path


def test_parse_size():
    assert disk.parse_size("29.39GB") == 29_390_000_000
    assert disk.parse_size("0B") == 0 and disk.parse_size("512kB") == 512_000
    with pytest.raises(ValueError):
        disk.parse_size("lots")


def test_too_little_room_is_one_line_with_the_cache_to_trim(engine):
    free = shutil.disk_usage(engine).free
    disk.check_room(free // 2, "a cold build of onnx_image")  # room enough: nothing said
    with pytest.raises(EngineError) as err:
        disk.check_room(free + 10**12, "a cold build of onnx_image")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{disk.human_bytes(free)} free on {engine}")
    assert "a cold build of onnx_image needs about" in message and "build cache holds 60.2 GB" in message


@pytest.mark.parametrize("env", [{"DOCKER_HOST": "tcp://127.0.0.1:2375"}, {"DISK_CHECK": "off"}])
def test_no_check_for_an_engine_elsewhere_or_when_told(engine, monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    disk.check_room(10**18, "anything")


def test_an_engine_root_that_is_not_here_is_not_checked(engine, monkeypatch):
    monkeypatch.setattr(disk, "docker", lambda *a, **k: subprocess.CompletedProcess(a, 0, "/var/lib/docker-vm", ""))
    disk.check_room(10**18, "anything")


def test_room_needed_is_twice_the_images_and_the_largest_for_one_never_built():
    assert disk.room_needed([1_000, 2_000]) == 6_000
    assert disk.room_needed([None]) == 2 * disk.UNKNOWN_IMAGE_BYTES


def test_a_short_disk_is_trimmed_first_when_a_trim_is_given(engine):
    """The trim (the build cache, where BUILD_CACHE_KEEP or CI=true asks for it) runs only when the room
    is short, and the check still stops in one line when the trim did not free enough."""
    free = shutil.disk_usage(engine).free
    trims: list[str] = []
    disk.check_room(free // 2, "a cold build of onnx_image", trim=lambda: trims.append("trimmed"))
    assert trims == []
    with pytest.raises(EngineError, match="a cold build of onnx_image needs about"):
        disk.check_room(free + 10**12, "a cold build of onnx_image", trim=lambda: trims.append("trimmed"))
    assert trims == ["trimmed"]
