"""make sbom: the attack surface counted from the final filesystem, and CycloneDX output that validates."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from image_advisor.layers import Entry, SavedImage

from scripts.infra import bases
from scripts.infra.engine import EngineError, ensure_engine
from scripts.studies.sbom import bom, debian_license, measure, python_license, surface

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)
SITE = "venv/lib/python3.11/site-packages"


def _final(*entries: Entry) -> dict[str, Entry]:
    return {e.path: e for e in entries}


def test_surface_counts_what_an_intruder_would_find():
    final = _final(
        Entry("usr/bin/dash", 100, "file", 0o755), Entry("bin/sh", 0, "symlink", 0o777),
        Entry("usr/bin/passwd", 10, "file", 0o4755), Entry("usr/bin/apt-get", 10, "file", 0o755),
        Entry("venv/bin/pip", 1, "file", 0o755), Entry("usr/bin/x86_64-linux-gnu-gcc-12", 5, "file", 0o755),
        Entry("usr/bin/gcc", 0, "symlink", 0o777), Entry("tmp", 0, "dir", 0o1777), Entry("var/tmp", 0, "dir", 0o755),
        Entry("usr/share/doc/README", 3, "file", 0o644), Entry("usr/lib/libgcc.so", 3, "file", 0o644))
    s = surface(final, "")
    assert s["user"] == "root"
    assert s["executables"] == 5  # regular files with an execute bit; links are not counted twice
    assert s["setuid_setgid"] == ["usr/bin/passwd"]
    assert s["shells"] == ["bin/sh", "usr/bin/dash"]
    assert s["package_managers"] == ["usr/bin/apt-get", "venv/bin/pip"]
    assert s["compilers"] == ["usr/bin/gcc", "usr/bin/x86_64-linux-gnu-gcc-12"]
    assert s["world_writable_dirs"] == ["tmp"]


def test_a_bare_filesystem_has_no_surface():
    s = surface(_final(Entry("app/main.py", 10, "file", 0o644), Entry("app", 0, "dir", 0o755)), "65532")
    assert s == {"user": "65532", "executables": 0, "setuid_setgid": [], "shells": [], "package_managers": [],
                 "compilers": [], "world_writable_dirs": []}


def test_licences_are_read_where_declared():
    assert python_license("Name: a\nLicense-Expression: MIT OR Apache-2.0\n\nbody") == \
        {"expression": "MIT OR Apache-2.0"}
    assert python_license("Name: a\nLicense: BSD-3-Clause\n") == {"license": {"name": "BSD-3-Clause"}}
    assert python_license("Name: a\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n") == \
        {"license": {"name": "MIT License"}}
    assert python_license("Name: a\n") is None
    dep5 = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: someone\nLicense: GPL-2+\n long text\n\nFiles: debian/*\nLicense: MIT\n")
    assert debian_license(dep5) == {"license": {"name": "GPL-2+"}}
    assert debian_license("This package was debianized by ...") is None


def _saved() -> tuple[SavedImage, dict[str, Entry]]:
    status = ("Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u10\n\n"
              "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n")
    metadata = f"{SITE}/Flask-3.1.3.dist-info/METADATA"
    captured = {"var/lib/dpkg/status": status, "etc/os-release": 'VERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
                metadata: "Metadata-Version: 2.1\nName: Flask\nVersion: 3.1.3\nLicense-Expression: BSD-3-Clause\n"}
    return SavedImage([], {}, captured), _final(Entry(metadata, 10), Entry("etc/os-release", 10))


def test_components_and_a_valid_cyclonedx_document():
    saved, final = _saved()
    doc = bom("demo:latest", "sha256:" + "0" * 64, saved, final, "2026-12-02T00:00:00+00:00")
    purls = [c["purl"] for c in doc["components"]]
    assert purls == ["pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12", "pkg:pypi/flask@3.1.3"]
    assert VALIDATOR.validate_str(json.dumps(doc)) is None


def test_the_validator_rejects_a_broken_document():
    saved, final = _saved()
    doc = bom("demo:latest", "sha256:" + "0" * 64, saved, final, "2026-12-02 00:00")  # not RFC 3339
    assert VALIDATOR.validate_str(json.dumps(doc)) is not None
    doc = bom("demo:latest", "sha256:" + "0" * 64, saved, final, "2026-12-02T00:00:00+00:00")
    del doc["components"][0]["name"]
    assert VALIDATOR.validate_str(json.dumps(doc)) is not None


def test_sbom_of_a_real_image_validates():
    try:
        ensure_engine()
        base = bases.resolve(only={"DISTROLESS_IMAGE"})["DISTROLESS_IMAGE"]
    except EngineError as exc:
        pytest.fail(f"this test needs a Docker engine: {exc}")
    doc, row = measure(base)
    assert VALIDATOR.validate_str(json.dumps(doc)) is None
    assert row["components"]["deb"] > 5 and row["shells"] == [] and row["package_managers"] == []
