"""`docker compose`, or where the client has no compose plugin, Debian 13's build of it in .cache/.

    compose_command()  ->  ["docker", "compose"]  or  [".cache/compose/docker-compose-<version>"]

The plugin binary runs on its own as well (Compose "standalone"), so the project never
installs anything into the client's plugin folders: the fallback is one file under .cache/,
fetched once from the Debian mirror the stand-in bases already use (announced first).
"""

from __future__ import annotations

import io
import lzma
import platform
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

from scripts.infra.bases import MIRROR
from scripts.infra.engine import EngineError, buildkit_client
from scripts.variants import ROOT

VERSION = "2.26.1-4"  # trixie's docker-compose
DEB = f"pool/main/d/docker-compose/docker-compose_{VERSION}_amd64.deb"
MEMBER = "./usr/libexec/docker/cli-plugins/docker-compose"
CACHE = ROOT / ".cache" / "compose"


def plugin_present(client: str) -> bool:
    try:
        return subprocess.run([client, "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ar_members(data: bytes) -> dict[str, bytes]:
    """The files of an ar archive (a .deb is one)."""
    if not data.startswith(b"!<arch>\n"):
        raise EngineError("not an ar archive (a .deb was expected)")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def extract_binary(deb: bytes, member: str = MEMBER) -> bytes:
    payload = ar_members(deb).get("data.tar.xz")
    if payload is None:
        raise EngineError("the .deb has no data.tar.xz")
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(payload))) as tar:
        try:
            found = tar.extractfile(member)
        except KeyError:
            found = None
        if found is None:
            raise EngineError(f"{member} is not in the .deb") from None
        return found.read()


def standalone() -> Path:
    binary = CACHE / f"docker-compose-{VERSION}"
    if binary.is_file():
        return binary
    if platform.machine() not in {"x86_64", "AMD64"}:
        raise EngineError("no `docker compose` here, and the fallback is Debian's amd64 build: install Compose")
    url = f"{MIRROR}/{DEB}"
    print(f"[compose] the docker client has no compose plugin: fetching Debian 13's docker-compose {VERSION} "
          f"into {binary.relative_to(ROOT)} (once, a 13 MB download) ...", file=sys.stderr, flush=True)
    try:
        with urllib.request.urlopen(url, timeout=300) as resp:
            deb = resp.read()
    except OSError as exc:
        raise EngineError(f"cannot fetch {url}: {exc}; install Docker Compose instead") from None
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    tmp.write_bytes(extract_binary(deb))
    tmp.chmod(0o755)
    tmp.replace(binary)
    return binary


def compose_command() -> list[str]:
    client = buildkit_client()
    return [client, "compose"] if plugin_present(client) else [str(standalone())]
