"""The advisor on real images built in seconds from the local distroless base, one planted problem each.

A clean tiny service (a stdlib HTTP server importing one small distribution, on a compiled stdlib,
non-root, no shell) gets no finding; each image built on it plants one problem of a known size,
and exactly its rule fires, with exactly the planted bytes (needs a Docker engine).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
from image_advisor.diagnosis import advise_image, examine, run_trace
from image_advisor.trace import parse_requests

from scripts.advisor.profile import profile
from scripts.infra import bases
from scripts.infra.engine import EngineError, docker, ensure_engine

TAG = "bert-classifier-test:advisor"
DIST = "usr/lib/python3/dist-packages"
PY = "/usr/bin/python3.11"
N = 123_457  # bytes of each planted file
SO_BYTES = 2 << 20  # an unmapped library: the rule reports from 1 MiB
SERVE = """\
import signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import mixedlib

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(mixedlib.HELLO)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""
CLEAN = f"""\
ARG BASE
FROM ${{BASE}}
USER 0
RUN ["{PY}", "-m", "compileall", "-q", "-j", "0", "/usr/lib/python3.11"]
COPY dist/ /{DIST}/
COPY serve.py /srv/serve.py
USER 65532
EXPOSE 8000
ENTRYPOINT ["{PY}", "/srv/serve.py"]
"""


def write_dist(root: Path, name: str, files: dict[str, bytes], extra_record: tuple[str, ...] = ()) -> int:
    """A distribution under root (RECORD and METADATA included); returns the bytes of its files."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n")
    listed = [*files, *extra_record, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{p},,\n" for p in listed))
    return sum(len(d) for d in files.values()) + (info / "METADATA").stat().st_size + (info / "RECORD").stat().st_size


def blob(size: int) -> bytes:
    return os.urandom(size)


def build(ctx: Path, dockerfile: str, tag: str, **args: str) -> str:
    (ctx / "Dockerfile").write_text(dockerfile)
    docker("build", "-q", *[f"--build-arg={k}={v}" for k, v in args.items()], "-t", tag, str(ctx), timeout=600)
    return tag


def plant(tmp: Path, name: str, lines: str, files: dict[str, bytes]) -> str:
    ctx = tmp / name
    for rel, data in files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    return build(ctx, f"FROM {TAG}-clean\nUSER 0\n{textwrap.dedent(lines)}\nUSER 65532\n", f"{TAG}-{name}")


def diagnose(image: str) -> dict:
    foreign = profile(None, ours=False)  # this repository's reference bases, nothing of its service
    examined = examine(image, foreign, with_dive=False)
    trace, bytecode = run_trace(image, parse_requests("GET /"), examined)
    assert trace.ok, trace.reason
    return advise_image(examined, trace, bytecode, foreign)


def byte_findings(advice: dict) -> dict[str, int]:
    return {f["rule"]: f["bytes"] for f in advice["findings"] if f["confidence"] != "surface"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    try:
        ensure_engine()
        base = bases.resolve(only={"DISTROLESS_IMAGE"})["DISTROLESS_IMAGE"]
    except EngineError as exc:
        pytest.fail(f"these tests need a Docker engine: {exc}")
    tmp = tmp_path_factory.mktemp("advisor")
    clean = tmp / "clean"
    (clean / "dist").mkdir(parents=True)
    (clean / "serve.py").write_text(SERVE)
    # mixedlib's RECORD already names the library a planted image adds, so planting it rewrites nothing.
    write_dist(clean / "dist", "mixedlib", {"mixedlib/__init__.py": b"HELLO = b'hi'\n"},
               extra_record=("mixedlib/libunused.so",))
    made = {"clean": build(clean, CLEAN, f"{TAG}-clean", BASE=base)}
    nocompile = tmp / "nocompile"
    shutil.copytree(clean, nocompile)
    made["no-bytecode"] = build(nocompile, CLEAN.replace(f'RUN ["{PY}", "-m", "compileall"', '# RUN ["x"'),
                                f"{TAG}-no-bytecode", BASE=base)
    expected = {}
    made["cache-pip"] = plant(tmp, "cache-pip", "COPY blob /root/.cache/pip/http/a/blob", {"blob": blob(N)})
    made["cache-apt-lists"] = plant(tmp, "cache-apt", "COPY blob /var/lib/apt/lists/deb.debian.org_Packages",
                              {"blob": blob(N)})
    made["deleted-in-later-layer"] = plant(tmp, "deleted", f"""\
        COPY blob /opt/big
        RUN ["{PY}", "-c", "import os; os.remove('/opt/big')"]""", {"blob": blob(N)})
    made["duplicated-by-metadata"] = plant(tmp, "chmod", f"""\
        COPY blob /opt/blob
        RUN ["{PY}", "-c", "import os; os.chmod('/opt/blob', 0o600)"]""", {"blob": blob(N)})
    made["build-context"] = plant(tmp, "context", "COPY . /srv/project/", {
        ".git/objects/ab/cdef": blob(N), "tests/test_model.py": blob(1000), "explore.ipynb": blob(2000)})
    expected["build-context"] = N + 1000 + 2000
    dev = tmp / "dev" / "dist"
    expected["dev-distributions"] = write_dist(dev, "pytest", {"pytest/__init__.py": blob(N)})
    made["dev-distributions"] = plant(tmp, "dev", f"COPY dist/ /{DIST}/", {})
    unused = tmp / "unused" / "dist"
    expected["never-imported"] = write_dist(unused, "unusedlib", {"unusedlib/__init__.py": blob(N)})
    made["never-imported"] = plant(tmp, "unused", f"COPY dist/ /{DIST}/", {})
    made["unmapped-libraries"] = plant(tmp, "unmapped", f"COPY libunused.so /{DIST}/mixedlib/libunused.so",
                                       {"libunused.so": blob(SO_BYTES)})
    expected["unmapped-libraries"] = SO_BYTES
    status = "Package: gcc-12\nStatus: install ok installed\nArchitecture: amd64\nInstalled-Size: 1\n"
    made["build-toolchain"] = plant(tmp, "toolchain", """\
        COPY status /var/lib/dpkg/status
        COPY gcc-12.list /var/lib/dpkg/info/gcc-12.list
        COPY gcc /usr/bin/x86_64-linux-gnu-gcc-12""", {
        "status": status.encode(), "gcc-12.list": b"/usr/bin/x86_64-linux-gnu-gcc-12\n", "gcc": blob(N)})
    (tmp / "root").mkdir()
    made["attack-surface"] = build(tmp / "root", f"FROM {TAG}-clean\nUSER 0\n", f"{TAG}-root")
    yield made, expected
    docker("rmi", "-f", *made.values(), check=False, timeout=300)


def test_clean_image_gets_no_finding(images):
    made, _ = images
    advice = diagnose(made["clean"])
    assert advice["findings"] == [], advice["findings"]
    assert advice["distributions_never_imported"] == []


PLANTED = ("cache-pip", "cache-apt-lists", "deleted-in-later-layer", "duplicated-by-metadata", "build-context",
           "dev-distributions", "never-imported", "unmapped-libraries", "build-toolchain")


@pytest.mark.parametrize("rule", PLANTED)
def test_each_planted_problem_fires_its_rule_with_its_bytes(images, rule):
    made, expected = images
    advice = diagnose(made[rule])
    assert byte_findings(advice) == {rule: expected.get(rule, N)}
    assert advice["addressable_bytes"] == expected.get(rule, N)


def test_never_imported_is_listed_by_name(images):
    made, expected = images
    advice = diagnose(made["never-imported"])
    assert advice["distributions_never_imported"] == [["unusedlib", expected["never-imported"]]]


def test_stdlib_without_bytecode_costs_measured_seconds(images):
    made, _ = images
    advice = diagnose(made["no-bytecode"])
    [finding] = advice["findings"]
    assert finding["rule"] == "stdlib-without-bytecode" and finding["bytes"] == 0
    assert finding["seconds"] > 0, finding["evidence"]


def test_root_user_is_attack_surface(images):
    made, _ = images
    [finding] = diagnose(made["attack-surface"])["findings"]
    assert finding["rule"] == "attack-surface" and finding["evidence"] == ["runs as root (no USER, or USER 0)"]


def roles_of(image: str) -> dict[str, str]:
    foreign = profile(None, ours=False)
    examined = examine(image, foreign, with_dive=False)
    trace, bytecode = run_trace(image, parse_requests("GET /"), examined)
    advise_image(examined, trace, bytecode, foreign)
    return examined.report["distribution_roles"]


def test_each_distribution_gets_its_role_from_the_image_and_the_trace(images):
    """A service of another shape (a stdlib HTTP server, its one dependency copied into dist-packages, no pip):
    no profile says what it runs on, and no role comes from this repository's requirement files."""
    made, _ = images
    assert roles_of(made["dev-distributions"]) == {"mixedlib": "imported while the service answered",
                                                   "pytest": "a known test, lint, notebook or build tool"}
    assert roles_of(made["never-imported"]) == {"mixedlib": "imported while the service answered",
                                                "unusedlib": "never imported during the trace"}


def test_a_service_that_exits_at_once_is_one_line(images, tmp_path):
    ctx = tmp_path / "exits"
    ctx.mkdir()
    tag = build(ctx, f'FROM {TAG}-clean\nENTRYPOINT ["{PY}", "-c", "import sys; sys.exit(3)"]\n', f"{TAG}-exits")
    try:
        examined = examine(tag, with_dive=False)
        trace, _ = run_trace(tag, parse_requests("GET /"), examined)
    finally:
        docker("rmi", "-f", tag, check=False)
    assert not trace.ok
    assert trace.reason == "the trace failed: the service exited (code 3) during the trace, printing nothing"
