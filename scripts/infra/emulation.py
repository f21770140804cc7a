"""Run and build for another CPU architecture under qemu (PLATFORM=linux/arm64 on an amd64 engine).

The kernel runs foreign binaries through binfmt_misc entries that point at a qemu user-mode
emulator. Docker Desktop has them already; on a Linux host we check, and as root on Debian set
them up: mount binfmt_misc, register qemu with the F flag (opened once at registration, so it
works inside containers' own filesystems). The qemu must be 8 or newer: Debian 12's 7.2 dies
with SIGSEGV in `import onnxruntime` for aarch64 (the image builds, then never starts), so where
the installed one is older, Debian 13's qemu-user (statically linked, no dependencies) is
unpacked into .cache/qemu and registered instead; nothing is installed system-wide.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.infra.engine import ROOT, EngineError, log

BINFMT = Path("/proc/sys/fs/binfmt_misc")
MIN_QEMU = (8, 0)
QEMU_CACHE = ROOT / ".cache" / "qemu"
QEMU_SUITE = "trixie"  # Debian 13: qemu 10
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# binfmt_misc's magic and mask for each architecture's ELF executables (as Debian's qemu ships them).
ELF_MATCH = {
    "aarch64": (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
                r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"),
    "x86_64": (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
               r"\xff\xff\xff\xff\xff\xfe\xfe\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"),
}
HOW_TO = ("register qemu 8 or newer for {arch} with binfmt_misc: on any Docker host "
          "`docker run --privileged --rm tonistiigi/binfmt --install {arch}`; as root on Debian, "
          "`make build-all PLATFORM=...` does it with Debian 13's qemu-user")


def _entry(arch: str, binfmt: Path) -> dict[str, str]:
    """The binfmt_misc entry for qemu-<arch> as key -> value ('enabled', 'interpreter', 'flags'); {} if none."""
    try:
        lines = (binfmt / f"qemu-{arch}").read_text().splitlines()
    except OSError:
        return {}
    entry = {"state": lines[0].strip()} if lines else {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        entry[key.rstrip(":")] = value.strip()
    return entry


def registered(arch: str, binfmt: Path = BINFMT) -> bool:
    """Is a qemu interpreter for arch registered, enabled, and usable inside containers (flag F)?"""
    entry = _entry(arch, binfmt)
    return entry.get("state") == "enabled" and "F" in entry.get("flags", "")


def qemu_version(binary: str | Path) -> tuple[int, int] | None:
    """(major, minor) of a qemu user-mode binary, from `--version`; None if it does not say."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return None
    match = re.search(r"version (\d+)\.(\d+)", out.stdout)
    return (int(match[1]), int(match[2])) if match else None


def registered_version(arch: str, binfmt: Path = BINFMT) -> tuple[int, int] | None:
    """The version of the qemu binfmt_misc runs for arch.

    Debian's entries point at a qemu-binfmt/<arch>-binfmt-P wrapper that runs only under
    binfmt_misc; then the qemu-<arch>-static of the same package answers for it.
    """
    interpreter = _entry(arch, binfmt).get("interpreter", "")
    candidates = [interpreter] if interpreter else []
    if "qemu-binfmt" in interpreter:
        candidates += [c for c in (shutil.which(f"qemu-{arch}-static"), shutil.which(f"qemu-{arch}")) if c]
    return next((v for v in map(qemu_version, candidates) if v), None)


def usable(arch: str, binfmt: Path = BINFMT) -> bool:
    return registered(arch, binfmt) and (registered_version(arch, binfmt) or (0, 0)) >= MIN_QEMU


def ensure(arch: str, native: str, binfmt: Path = BINFMT) -> None:
    """Make sure containers and mmdebstrap can run arch binaries here; EngineError says how if not."""
    if arch == native or usable(arch, binfmt):
        return
    found = registered_version(arch, binfmt) if registered(arch, binfmt) else None
    why = (f"qemu {found[0]}.{found[1]} is registered for {arch}, and qemu before {MIN_QEMU[0]} crashes running "
           "onnxruntime" if found else f"building for {arch} on this {native} engine needs emulation")
    if os.geteuid() != 0:
        raise EngineError(f"{why}: " + HOW_TO.format(arch=arch))
    if arch not in ELF_MATCH:
        raise EngineError(f"no binfmt_misc entry is known for {arch}")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], capture_output=True, check=False)
    register(arch, newer_qemu(arch), binfmt)
    if not usable(arch, binfmt):
        raise EngineError(f"qemu for {arch} is still not usable: " + HOW_TO.format(arch=arch))


def newer_qemu(arch: str) -> Path:
    """A qemu-<arch> of at least MIN_QEMU: the one on PATH if it is, else Debian 13's, unpacked once."""
    for name in (f"qemu-{arch}-static", f"qemu-{arch}"):
        found = shutil.which(name)
        if found and (qemu_version(found) or (0, 0)) >= MIN_QEMU:
            return Path(found)
    cached = QEMU_CACHE / f"qemu-{arch}"
    if (qemu_version(cached) or (0, 0)) >= MIN_QEMU:
        return cached
    if not shutil.which("apt-get") or not DEBIAN_KEYRING.exists():
        raise EngineError("the qemu here is too old and Debian's archive is not at hand: " + HOW_TO.format(arch=arch))
    log(f"fetching qemu-user from Debian {QEMU_SUITE} (qemu {MIN_QEMU[0]}+; Debian 12's crashes onnxruntime) ...")
    with tempfile.TemporaryDirectory(prefix="qemu-") as tmp:
        fetch_deb("qemu-user", Path(tmp))
        deb = next(Path(tmp).glob("qemu-user_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/root"], check=True, capture_output=True)
        QEMU_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f"{tmp}/root/usr/bin/qemu-{arch}", cached)
    return cached


def fetch_deb(package: str, into: Path) -> None:
    """`apt-get download` package from QEMU_SUITE with a private sources list and state (the host's untouched)."""
    from scripts.infra.bases import MIRROR

    (into / "sources").mkdir()
    (into / "sources" / f"{QEMU_SUITE}.sources").write_text(
        f"Types: deb\nURIs: {MIRROR}\nSuites: {QEMU_SUITE}\nComponents: main\nSigned-By: {DEBIAN_KEYRING}\n")
    (into / "lists" / "partial").mkdir(parents=True)
    opts = ["-o", "Dir::Etc::sourcelist=/dev/null", "-o", f"Dir::Etc::sourceparts={into}/sources",
            "-o", f"Dir::State::Lists={into}/lists", "-o", f"Dir::Cache={into}/cache",
            "-o", "APT::Sandbox::User=root"]
    for cmd in (["apt-get", *opts, "update", "-qq"], ["apt-get", *opts, "download", package]):
        proc = subprocess.run(cmd, cwd=into, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EngineError(f"{' '.join(cmd[:1] + cmd[-2:])} failed:\n{proc.stderr[-1500:]}")


def register(arch: str, qemu: Path, binfmt: Path = BINFMT) -> None:
    """(Re)register qemu for arch: O (the kernel hands qemu an open file) and F (fixed at registration)."""
    if (binfmt / f"qemu-{arch}").exists():
        (binfmt / f"qemu-{arch}").write_text("-1")  # replaces the old entry, e.g. Debian 12's qemu 7.2
    magic, mask = ELF_MATCH[arch]
    try:
        (binfmt / "register").write_text(f":qemu-{arch}:M::{magic}:{mask}:{qemu}:OF")
    except OSError as exc:
        raise EngineError(f"could not register {qemu} with binfmt_misc ({exc})") from None
    log(f"registered {qemu} (qemu {'.'.join(map(str, qemu_version(qemu) or ()))}) for {arch} binaries")
