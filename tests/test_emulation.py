"""binfmt_misc and qemu checks, against a fake /proc/sys/fs/binfmt_misc and fake qemu binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.infra import emulation
from scripts.infra.engine import EngineError


def fake_qemu(folder: Path, name: str, version: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho 'qemu-aarch64 version {version} (Debian 1:{version}+dfsg)'\n")
    path.chmod(0o755)
    return path


def entry(binfmt: Path, interpreter: Path | str, flags: str = "OF") -> None:
    (binfmt / "qemu-aarch64").write_text(f"enabled\ninterpreter {interpreter}\nflags: {flags}\noffset 0\n")


@pytest.fixture
def binfmt(tmp_path):
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    return folder


def test_an_old_qemu_is_registered_but_not_usable(binfmt, tmp_path):
    entry(binfmt, fake_qemu(tmp_path, "qemu-aarch64", "7.2.22"))
    assert emulation.registered("aarch64", binfmt)
    assert emulation.registered_version("aarch64", binfmt) == (7, 2)
    assert not emulation.usable("aarch64", binfmt)
    entry(binfmt, fake_qemu(tmp_path, "qemu-aarch64-10", "10.0.13"))
    assert emulation.usable("aarch64", binfmt)
    entry(binfmt, tmp_path / "qemu-aarch64-10", flags="O")  # without F, containers cannot use it
    assert not emulation.usable("aarch64", binfmt)


def test_debians_binfmt_wrapper_is_answered_for_by_its_static_qemu(binfmt, tmp_path, monkeypatch):
    wrapper = tmp_path / "qemu-binfmt" / "aarch64-binfmt-P"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\necho 'has to be run using kernel binfmt-misc subsystem' >&2; exit 1\n")
    wrapper.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_qemu(bin_dir, "qemu-aarch64-static", "7.2.22")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    entry(binfmt, wrapper, flags="POF")
    assert emulation.registered_version("aarch64", binfmt) == (7, 2)


def test_non_root_with_an_old_qemu_is_told_why_and_what_to_run(binfmt, tmp_path, monkeypatch):
    entry(binfmt, fake_qemu(tmp_path, "qemu-aarch64", "7.2.22"))
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 1000)
    with pytest.raises(EngineError, match=r"qemu 7\.2 is registered.*crashes.*tonistiigi/binfmt"):
        emulation.ensure("aarch64", "x86_64", binfmt)
    emulation.ensure("x86_64", "x86_64")  # the engine's own architecture needs nothing


def test_register_replaces_the_old_entry(binfmt, tmp_path):
    entry(binfmt, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P", flags="POF")
    qemu = fake_qemu(tmp_path, "qemu-aarch64", "10.0.13")
    writes: list[tuple[str, str]] = []
    real_write = Path.write_text

    def record(self: Path, text: str, *a, **kw):
        writes.append((self.name, text))
        return real_write(self, text, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "write_text", record)
        emulation.register("aarch64", qemu, binfmt)
    assert writes[0] == ("qemu-aarch64", "-1")
    name, line = writes[1]
    magic, mask = emulation.ELF_MATCH["aarch64"]
    assert name == "register" and line == f":qemu-aarch64:M::{magic}:{mask}:{qemu}:OF"
    assert r"\xb7\x00" in magic  # EM_AARCH64
