"""A throwaway local registry and a throwaway second engine, for push/pull measurements.

The registry is Debian's docker-registry (the CNCF distribution server), listening on
127.0.0.1 only, with storage in a temporary folder. The scratch engine is a second
dockerd with its own data root, so a pull into it really downloads every layer (the
main engine already has the base layers the variants share).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from scripts.engine import EngineError, apt_install, docker
from scripts.latency import free_port

SCRATCH_BRIDGE = "br-scratch"
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])


def _wait(check, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = log_path.read_text(errors="replace").splitlines()[-10:] if log_path.exists() else []
    raise EngineError(f"{what} did not start within {timeout:.0f}s; log ends:\n" + "\n".join(tail))


@contextlib.contextmanager
def local_registry() -> Iterator[str]:
    """Start a registry on 127.0.0.1:<free port>; yield 'host:port'; stop and delete it after."""
    if not shutil.which("docker-registry"):
        apt_install("docker-registry")
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        port = free_port()
        config = Path(tmp) / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {tmp}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
        )
        log = Path(tmp) / "registry.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: _http_ok(f"http://127.0.0.1:{port}/v2/"), 30, "docker-registry", log)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def pushed_bytes(registry: str, repo: str, tag: str) -> tuple[int, int]:
    """(compressed bytes of config + layer blobs, layer count) as the registry stores them."""
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.load(resp)
    layers = manifest.get("layers", [])
    return manifest["config"]["size"] + sum(layer["size"] for layer in layers), len(layers)


@contextlib.contextmanager
def scratch_engine() -> Iterator[str]:
    """A second, empty dockerd; yields its host address for `docker --host` (engine.docker's host=)."""
    client = shutil.which("docker") or "/usr/bin/docker"
    root = Path(tempfile.mkdtemp(prefix="scratch-engine-", dir="/var/tmp"))
    sock = root / "docker.sock"
    log = root / "dockerd.log"
    # Its own bridge: `--bridge=none` would make dockerd delete the main engine's docker0.
    # Containers here use the host network (compare's fresh-node run); the bridge only has to exist.
    subprocess.run(["ip", "link", "add", SCRATCH_BRIDGE, "type", "bridge"], capture_output=True)
    cmd = ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
           "--pidfile", str(root / "docker.pid"), "--host", f"unix://{sock}",
           "--bridge", SCRATCH_BRIDGE, "--iptables=false", "--ip-masq=false"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    host = f"unix://{sock}"
    try:
        _wait(lambda: subprocess.run([client, "--host", host, "info"], capture_output=True).returncode == 0, 60,
              "scratch dockerd", log)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        subprocess.run(["ip", "link", "delete", SCRATCH_BRIDGE], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def pull(host: str, ref: str, timeout: float = 900) -> float:
    """Seconds to pull ref into the engine at host (the scratch engine: empty before each pull)."""
    started = time.perf_counter()
    try:
        docker("pull", "--quiet", ref, timeout=timeout, host=host)
    except EngineError as exc:
        raise EngineError(f"pull of {ref} into the scratch engine failed: {exc}") from None
    return time.perf_counter() - started


def remove_all(host: str) -> None:
    """Empty the scratch engine again: containers, then every image."""
    ids = docker("ps", "-aq", host=host, check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, host=host, check=False)
    docker("image", "prune", "-af", host=host, check=False, timeout=300)
