"""Run an image's own service in a throw-away container and record what its Python processes use.

    trace_image(image, requests) -> Trace: modules imported, files mapped, requests answered

The image is never changed: the container is created from it as it is (its entrypoint, command,
user and environment), trace_probe.py is copied into that container's own layer
as /.diagnose-probe/sitecustomize.py (`docker cp` works on a created container, so no shell is
needed and distroless images trace like any other), and /.diagnose-probe goes first on
PYTHONPATH. The container has no network but its own loopback: the requests given (--probe
'POST /predict {"text": "hi"}', several separated by `|`; default GET / on the first exposed
port) are sent from inside it, by trace_client.py run with `docker exec` on the image's own
Python, so the image reaches nothing and the engine publishes nothing (which works the same on
a remote engine, Docker Desktop, or from inside a container). Then the probe's files are copied
out and the container is removed. Where there is no Python, or nothing was recorded, the Trace
says why and the advisor leaves the rules that need it out.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException, NotFound

from image_advisor.engine import LABEL, publish_address, sdk
from image_advisor.errors import AdvisorError

PROBE_DIR = "/.diagnose-probe"
PROBE_SOURCE = Path(__file__).with_name("trace_probe.py")
CLIENT_SOURCE = Path(__file__).with_name("trace_client.py")
CLIENT_CODE = CLIENT_SOURCE.read_text()  # sent with each `docker exec`
CLIENT_ROUND_S = 5  # each `docker exec` of the client waits this long for an answer, then the container is checked
FALLBACK_PYTHONS = ("python3", "python")  # until the service's own interpreter has written a snapshot
NO_PYTHON_S = 15  # no snapshot and no interpreter to run the client after this long: not a Python service
READY_TIMEOUT_S = 300  # the first answer of a large torch image on a slow machine
# Someone else's image is run confined: no capabilities, no privilege gain, bounded memory, processes and logs.
CONFINED = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": 512, "mem_limit": "4g",
            "memswap_limit": "4g", "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "1"}}}
SETTLE_S = 1.5  # three probe intervals after the last answer, so every process has written


@dataclass(frozen=True)
class ProbeRequest:
    method: str
    path: str
    body: bytes | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f" ({len(self.body)} bytes)" if self.body else "")


@dataclass
class Trace:
    ok: bool
    reason: str = ""  # why not, when not ok
    processes: int = 0
    modules: set[str] = field(default_factory=set)
    module_files: set[str] = field(default_factory=set)  # paths without the leading "/" (as the layers name them)
    mapped: set[str] = field(default_factory=set)
    python: str = ""  # "3.11"
    executable: str = ""  # the interpreter the service runs on
    stdlib: str = ""
    answers: list[tuple[str, int]] = field(default_factory=list)  # (request, HTTP status or 0: no answer)

    @property
    def used(self) -> set[str]:
        return self.module_files | self.mapped

    def to_json(self) -> dict:
        return {"ok": self.ok, "reason": self.reason, "processes": self.processes, "python": self.python,
                "modules_imported": len(self.modules), "files_mapped": len(self.mapped),
                "requests": [{"request": r, "status": s} for r, s in self.answers]}


def parse_requests(text: str) -> list[ProbeRequest]:
    """'POST /classify {"text": "a|b"} | GET /healthz' -> requests; `|` inside JSON does not split."""
    parts, depth, quoted, escaped, current = [], 0, False, False, []
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    requests = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        match = re.match(r"^([A-Z]+)\s+(/\S*)\s*(.*)$", part, flags=re.S)
        if not match:
            raise ValueError(f"PROBE entry {part!r}: expected 'METHOD /path [JSON body]', e.g. 'GET /healthz'")
        body = match.group(3).strip()
        if body:
            try:
                json.loads(body)
            except ValueError as exc:
                raise ValueError(f"PROBE entry {part!r}: the body is not JSON ({exc})") from None
        requests.append(ProbeRequest(match.group(1), match.group(2), body.encode() if body else None))
    return requests


def _probe_archive() -> bytes:
    """/.diagnose-probe/sitecustomize.py (read-only) and out/ (writable by any user) as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in ((PROBE_DIR.lstrip("/"), 0o755), (f"{PROBE_DIR.lstrip('/')}/out", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
            tar.addfile(info)
        data = PROBE_SOURCE.read_bytes()
        info = tarfile.TarInfo(f"{PROBE_DIR.lstrip('/')}/sitecustomize.py")
        info.size, info.mode, info.mtime = len(data), 0o444, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_out(container) -> list[dict]:
    stream, _ = container.get_archive(f"{PROBE_DIR}/out")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        found = []
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                try:
                    found.append(json.loads(tar.extractfile(member).read()))
                except ValueError:
                    pass  # a write cut short by the stop: the earlier snapshots of that process are lost too
        return found


def _port(config: dict) -> str | None:
    ports = sorted(p for p in (config.get("ExposedPorts") or {}) if p.endswith("/tcp"))
    return ports[0] if ports else None


def trace_image(image: str, requests: list[ProbeRequest], log=print, environment: dict | None = None,
                after: Callable[[Any, str], None] | None = None, labels: dict[str, str] | None = None,
                ready_timeout: float = READY_TIMEOUT_S, publish: bool = False) -> Trace:
    """Start the image's service with the probe, send the requests, return what it used.

    after(container, base_url), when given, runs once the requests are answered: more traffic, or
    `container.exec_run` of other programs of the image (they inherit the probe's environment).
    base_url is "" unless publish: a trusted image of one's own, whose port is then published on
    publish_address() so that this machine can send it more (its network is not cut).
    """
    client = sdk()
    config = client.images.get(image).attrs.get("Config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    python_path = ":".join(p for p in (PROBE_DIR, env.get("PYTHONPATH", "")) if p)
    port = _port(config)
    container = None
    try:
        container = client.containers.create(
            image, detach=True, labels={LABEL: "trace", **(labels or {})}, **CONFINED,
            environment={**(environment or {}), "PYTHONPATH": python_path, "DIAGNOSE_PROBE_OUT": f"{PROBE_DIR}/out"},
            **({"ports": {port: (publish_address(), None)} if port else {}} if publish else {"network_mode": "none"}))
        if not container.put_archive("/", _probe_archive()):
            return Trace(False, "the probe could not be copied into the container")
        container.start()
        answers: list[tuple[str, int]] = []
        if port and requests:
            answers = _exercise(container, int(port.split("/")[0]), requests, log, ready_timeout)
            if after is not None:
                container.reload()
                base = f"http://{publish_address()}:{container.ports[port][0]['HostPort']}" if publish else ""
                after(container, base)
        else:
            log(f"[trace] {image} exposes no TCP port: recording its start-up only")
            time.sleep(5)
        time.sleep(SETTLE_S)
        container.stop(timeout=10)
        snapshots = _read_out(container)
    except (DockerException, OSError, AdvisorError) as exc:
        return Trace(False, f"the trace failed: {exc}")
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except NotFound:
                pass
    if not snapshots:
        return Trace(False, "no Python process of the service loaded the probe (not a Python service, "
                            "or one started with -S/-I, which skips sitecustomize)", answers=answers)
    trace = Trace(True, processes=len(snapshots), answers=answers, python=snapshots[0].get("python", ""),
                  executable=snapshots[0].get("executable", ""),
                  stdlib=snapshots[0].get("stdlib", "").lstrip("/"))
    for snap in snapshots:
        trace.modules.update(snap.get("modules", ()))
        trace.module_files.update(p.lstrip("/") for p in snap.get("module_files", ()))
        trace.mapped.update(p.lstrip("/") for p in snap.get("mapped", ()))
    trace.module_files = {p for p in trace.module_files if not p.startswith(PROBE_DIR.lstrip("/"))}
    return trace


def _service_pythons(container) -> list[str]:
    """The interpreters the service's Python processes run on, from the snapshots they have written so far."""
    try:
        return [exe for snap in _read_out(container) if (exe := snap.get("executable"))]
    except (DockerException, OSError, tarfile.TarError):
        return []


def _client_pythons(service: list[str]) -> list[str]:
    """Interpreters to run the client with: the service's own, else any on PATH."""
    return list(dict.fromkeys([*service, *FALLBACK_PYTHONS]))


def _client_round(container, pythons: list[str], port: int, requests: list[ProbeRequest],
                  wait_s: float) -> dict | None:
    """One `docker exec` of trace_client.py with the first of pythons that runs it: its answer, or None
    where none could (none yet, the container stopped, or out of processes)."""
    job = json.dumps({"port": port, "wait_s": wait_s,
                      "requests": [[r.method, r.path, r.body.decode() if r.body else None] for r in requests]})
    for python in pythons:
        try:
            code, output = container.exec_run([python, "-I", "-c", CLIENT_CODE, job],
                                              environment={"DIAGNOSE_PROBE_OUT": "/nonexistent"})
        except DockerException:
            return None  # not running any more, or the engine refused the exec: the caller looks at the container
        lines = (output or b"").decode(errors="replace").strip().splitlines()
        if code == 0 and lines:
            try:
                return json.loads(lines[-1])
            except ValueError:
                pass
    return None


def _exercise(container, port: int, requests: list[ProbeRequest], log,
              ready_timeout: float = READY_TIMEOUT_S) -> list[tuple[str, int]]:
    """Wait for the first request to get an answer below 500 (the service is up), then send them all."""
    started = time.monotonic()
    log(f"[trace] waiting for {requests[0]} on port {port} to answer (up to {ready_timeout:.0f} s) ...")
    listening: list[int] = []
    while True:
        left = ready_timeout - (time.monotonic() - started)
        service = _service_pythons(container)  # the probe's snapshots, read once a round
        result = _client_round(container, _client_pythons(service), port, requests,
                               max(0.5, min(CLIENT_ROUND_S, left)))
        if result and result.get("ready"):
            break
        if result:
            listening = result.get("listening") or []
        container.reload()
        if container.status != "running":
            state = container.attrs.get("State", {})
            if state.get("OOMKilled"):
                raise AdvisorError(f"the service was killed for memory: over the trace's {CONFINED['mem_limit']}")
            last = container.logs(tail=1).decode(errors="replace").strip()[-300:]
            raise AdvisorError(f"the service exited (code {state.get('ExitCode')}) during the trace"
                               + (f"; its last log line: {last}" if last else ", printing nothing"))
        if (result is None and time.monotonic() - started > NO_PYTHON_S and not service
                and not _service_pythons(container)):  # read again: a snapshot may have come during the round
            raise AdvisorError(f"no Python process of the service started within {NO_PYTHON_S} s, and the image has "
                               f"no {' or '.join(FALLBACK_PYTHONS)} to send the requests from (not a Python service?)")
        if time.monotonic() - started > ready_timeout:
            pids = (container.stats(stream=False).get("pids_stats") or {}).get("current", 0)
            if pids >= CONFINED["pids_limit"]:
                raise AdvisorError(f"no answer to {requests[0]} after {ready_timeout:.0f} s: the container holds "
                                   f"{pids} processes, the trace's limit (does it fork without end?)")
            if result is None:
                raise AdvisorError(f"no answer to {requests[0]} after {ready_timeout:.0f} s: no Python in the "
                                   f"container ran the probe's client (tried {', '.join(_client_pythons(service))})")
            elsewhere = [p for p in listening if p != port]
            raise AdvisorError(f"no answer to {requests[0]} after {ready_timeout:.0f} s on port {port}, the first "
                               "port its image exposes" + (f"; it listens on {', '.join(map(str, elsewhere))}"
                                                           if elsewhere else ""))
        if result is None:
            time.sleep(0.25)
    answers = [(str(request), status) for request, status in zip(requests, result["answers"], strict=True)]
    log(f"[trace] answered in {time.monotonic() - started:.1f} s: "
        + ", ".join(f"{r} -> {s or 'no answer'}" for r, s in answers))
    return answers


# Runs inside the image, with its own interpreter: the cost of importing the given stdlib modules
# without their bytecode (-B: compile, write nothing, as a read-only root does) and with it.
BYTECODE_TIMER = r"""
import json, os, statistics, subprocess, sys, tempfile, time
mods = json.loads(sys.argv[1])
code = ("import importlib\nfor m in %r:\n    try:\n        importlib.import_module(m)\n"
        "    except Exception:\n        pass" % mods)
env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPATH")}
prefix = tempfile.mkdtemp()
def run(*flags, **extra):
    t = time.perf_counter()
    subprocess.run([sys.executable, *flags, "-c", code], env={**env, **extra}, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t
cold = [run("-B") for _ in range(5)]
run(PYTHONPYCACHEPREFIX=prefix)
warm = [run(PYTHONPYCACHEPREFIX=prefix) for _ in range(5)]
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(prefix) for f in fs)
print(json.dumps({"cold_s": statistics.median(cold), "warm_s": statistics.median(warm), "runs": 5, "pyc_bytes": size}))
"""


def stdlib_without_bytecode(trace: Trace, final: dict) -> tuple[list[str], list[str]]:
    """(stdlib modules the trace imported, those of them without a .pyc in the image)."""
    if not trace.ok or not trace.stdlib or not trace.python:
        return [], []
    tag = "cpython-" + trace.python.replace(".", "")
    root = trace.stdlib.rstrip("/") + "/"
    imported, missing = [], []
    for path in sorted(trace.module_files):
        if not path.startswith(root) or "site-packages/" in path or "dist-packages/" in path:
            continue
        rel = path[len(root):]
        if path.endswith(".py"):
            name = rel[:-3].replace("/", ".").removesuffix(".__init__")
            if name.startswith(("lib-dynload", "test.")) or name in ("this", "antigravity"):
                continue
            imported.append(name)
            folder, base = path.rsplit("/", 1)
            if f"{folder}/__pycache__/{base[:-3]}.{tag}.pyc" not in final:
                missing.append(name)
    return imported, missing


def bytecode_seconds(image: str, python: str, modules: list[str], timeout: float = 180,
                     labels: dict[str, str] | None = None) -> dict:
    """Run BYTECODE_TIMER in a throw-away container of the image: {"cold_s", "warm_s", "runs", "pyc_bytes"}."""
    container = sdk().containers.create(image, entrypoint=[python], command=["-c", BYTECODE_TIMER, json.dumps(modules)],
                                        labels={LABEL: "bytecode", **(labels or {})}, **CONFINED)
    try:
        container.start()
        result = container.wait(timeout=timeout)
        output = container.logs(stdout=True, stderr=False).decode(errors="replace").strip().splitlines()
        if result.get("StatusCode") != 0 or not output:
            raise AdvisorError(f"the bytecode timer failed: {container.logs(tail=5).decode(errors='replace')}")
        return json.loads(output[-1])
    finally:
        container.remove(force=True)
