"""Run and build for another CPU architecture under qemu (PLATFORM=linux/arm64 on an amd64 engine).

The kernel runs foreign binaries through binfmt_misc entries that point at qemu-user-static.
Docker Desktop has them already; on a Linux host we check, and as root on Debian set them up:
`apt-get install qemu-user-static`, mount binfmt_misc, register the interpreter with the F
flag (opened once at registration, so it works inside containers' own filesystems).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from scripts.engine import EngineError, apt_install

BINFMT = Path("/proc/sys/fs/binfmt_misc")
HOW_TO = ("register qemu for {arch} with binfmt_misc: on Debian/Ubuntu `apt-get install qemu-user-static` "
          "(as root); on any Docker host `docker run --privileged --rm tonistiigi/binfmt --install {arch}`")


def registered(arch: str, binfmt: Path = BINFMT) -> bool:
    """Is a qemu interpreter for arch registered, enabled, and usable inside containers (flag F)?"""
    entry = binfmt / f"qemu-{arch}"
    try:
        text = entry.read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("flags:")), "")
    return text.startswith("enabled") and "F" in flags


def ensure(arch: str, native: str) -> None:
    """Make sure containers and mmdebstrap can run arch binaries here; EngineError says how if not."""
    if arch == native or registered(arch):
        return
    if os.geteuid() != 0:
        raise EngineError(f"building for {arch} on this {native} engine needs emulation: "
                          + HOW_TO.format(arch=arch))
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True, check=False)
    conf = Path(f"/usr/lib/binfmt.d/qemu-{arch}.conf")
    if not conf.exists():
        apt_install("qemu-user-static")
    if not registered(arch) and conf.exists():
        line = conf.read_text().strip()
        if not line.endswith("F"):  # Debian's entries already carry F; without it containers cannot use it
            line += "F"
        try:
            (BINFMT / "register").write_text(line)
        except OSError as exc:
            raise EngineError(f"could not register {conf} with binfmt_misc ({exc})") from None
    if not registered(arch):
        raise EngineError(f"qemu for {arch} is still not registered with binfmt_misc: " + HOW_TO.format(arch=arch))
