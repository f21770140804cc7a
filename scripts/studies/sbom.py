"""What is inside each image: a CycloneDX SBOM and its attack surface (`make sbom`, VARIANTS= or IMAGE=).

    python -m scripts.studies.sbom                                   # every built variant
    python -m scripts.studies.sbom --image myapp:latest              # any image: results/sbom/<name>.cdx.json

From the same layer replay as make diagnose (`docker save`, image-advisor/src/image_advisor/layers.py),
so only files that survive in the final filesystem count:

- components: every Debian package dpkg (or distroless' status.d) records, and every Python
  distribution with a dist-info in a site-packages, with versions, package URLs, and the
  licence where one is declared (a Python METADATA's License-Expression, License or licence
  classifiers; a Debian package's machine-readable copyright file);
- surface: executables, setuid/setgid files, shells, package managers, compilers,
  world-writable directories, and the user it runs as.

Writes results/sbom/<variant>.cdx.json (CycloneDX 1.6 JSON) and results/surface.json. No
vulnerability database is consulted: scan the SBOM where one is reachable (docs/diagnose.md).
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from image_advisor.engine import saved_image
from image_advisor.errors import AdvisorError
from image_advisor.layers import (
    SITE_PACKAGES,
    Entry,
    SavedImage,
    _fields,
    analyze,
    debian_release,
    installed_packages,
    read_saved,
)

from scripts.infra.engine import EngineError, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.results import RESULTS, load_json, machine, print_table, save_json
from scripts.variants import BY_NAME, ROOT, VARIANTS, select

SBOM_DIR = RESULTS / "sbom"
SHELLS = {"sh", "bash", "dash", "zsh", "ash", "busybox", "rbash"}
PACKAGE_MANAGERS = {"apt", "apt-get", "dpkg", "pip", "pip3", "uv", "conda", "mamba", "apk", "yum", "dnf", "rpm",
                    "easy_install"}
COMPILER = re.compile(r"^(?:[a-z0-9_]+-linux-gnu-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+|gfortran|rustc|go)(?:-\d+)?$")
BIN_DIRS = re.compile(r"(^|/)s?bin$")
SURFACE_KEYS = ("executables", "setuid_setgid", "shells", "package_managers", "compilers", "world_writable_dirs")


def _commands(final: dict[str, Entry]) -> dict[str, list[str]]:
    """Command name -> the paths in a bin directory that provide it (files or links)."""
    found: dict[str, list[str]] = {}
    for path, entry in final.items():
        if entry.kind in {"file", "symlink", "hardlink"} and BIN_DIRS.search(posixpath.dirname(path)):
            found.setdefault(posixpath.basename(path), []).append(path)
    return found


def surface(final: dict[str, Entry], user: str) -> dict:
    """Counts of what an attacker who gets in would find (paths listed for the small groups)."""
    files = [e for e in final.values() if e.kind == "file"]
    commands = _commands(final)

    def named(names) -> list[str]:
        return sorted(p for n in names for p in commands.get(n, []))

    return {
        "user": user or "root",
        "executables": sum(1 for e in files if e.mode & 0o111),
        "setuid_setgid": sorted(e.path for e in files if e.mode & 0o6000),
        "shells": named(SHELLS & commands.keys()),
        "package_managers": named(PACKAGE_MANAGERS & commands.keys()),
        "compilers": named(n for n in commands if COMPILER.match(n)),
        "world_writable_dirs": sorted(e.path for e in final.values() if e.kind == "dir" and e.mode & 0o002),
    }


def _purl(kind: str, name: str, version: str, namespace: str = "", **qualifiers: str) -> str:
    quote = lambda v: urllib.parse.quote(v, safe=".-_~")  # noqa: E731
    ns = f"{namespace}/" if namespace else ""
    query = "&".join(f"{k}={quote(v)}" for k, v in sorted(qualifiers.items()) if v)
    return f"pkg:{kind}/{ns}{quote(name)}@{quote(version)}" + (f"?{query}" if query else "")


def python_license(metadata: str) -> dict | None:
    headers = metadata.split("\n\n", 1)[0]
    fields: dict[str, list[str]] = {}
    for line in headers.splitlines():
        if ":" in line and not line.startswith((" ", "\t")):
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), []).append(value.strip())
    if fields.get("License-Expression"):
        return {"expression": fields["License-Expression"][0]}
    declared = (fields.get("License") or [""])[0]
    if declared and len(declared) <= 80 and declared.upper() not in {"UNKNOWN", "NONE"}:
        return {"license": {"name": declared}}
    classified = [c.rsplit("::", 1)[-1].strip() for c in fields.get("Classifier", []) if c.startswith("License ::")]
    return {"license": {"name": classified[0]}} if classified else None


def debian_license(copyright_text: str | None) -> dict | None:
    """The licence of `Files: *` in a machine-readable (DEP-5) copyright file."""
    if not copyright_text or not copyright_text.startswith("Format:"):
        return None
    for stanza in copyright_text.split("\n\n"):
        fields = _fields(stanza)
        if fields.get("Files", "").split() == ["*"] and fields.get("License"):
            return {"license": {"name": fields["License"].splitlines()[0].strip()}}
    return None


def components(saved: SavedImage, final: dict[str, Entry]) -> list[dict]:
    release = debian_release(saved)
    out: dict[str, dict] = {}
    for fields in installed_packages(saved, final):
        name, version = fields["Package"], fields.get("Version", "")
        if not version:
            continue
        purl = _purl("deb", name, version, "debian", arch=fields.get("Architecture", ""),
                     distro=f"debian-{release}" if release else "")
        item = {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        lic = debian_license(saved.captured.get(f"usr/share/doc/{name}/copyright"))
        if lic:
            item["licenses"] = [lic]
        out[purl] = item
    for path, text in saved.captured.items():
        site = posixpath.dirname(posixpath.dirname(path))
        if not path.endswith(".dist-info/METADATA") or path not in final or not SITE_PACKAGES.search(site):
            continue
        head = dict(line.split(": ", 1) for line in text.split("\n\n", 1)[0].splitlines() if ": " in line)
        name, version = head.get("Name", ""), head.get("Version", "")
        if not name or not version:
            continue
        purl = _purl("pypi", re.sub(r"[-_.]+", "-", name).lower(), version)
        item = {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        lic = python_license(text)
        if lic:
            item["licenses"] = [lic]
        out.setdefault(purl, item)
    return sorted(out.values(), key=lambda c: c["purl"])


def bom(image: str, image_id: str, saved: SavedImage, final: dict[str, Entry], when: str) -> dict:
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "metadata": {"timestamp": when,
                     "tools": {"components": [{"type": "application", "name": "make sbom (scripts/studies/sbom.py)"}]},
                     "component": {"type": "container", "bom-ref": image_id, "name": image, "version": image_id}},
        "components": components(saved, final),
    }


def measure(image: str) -> tuple[dict, dict]:
    image_id = sdk().images.get(image).id
    with saved_image(image) as archive:
        saved = read_saved(archive)
    final = analyze(saved.layers).final
    sbom = bom(image, image_id, saved, final, datetime.now(UTC).isoformat(timespec="seconds"))  # RFC 3339
    counts = {"deb": sum(c["purl"].startswith("pkg:deb/") for c in sbom["components"]),
              "pypi": sum(c["purl"].startswith("pkg:pypi/") for c in sbom["components"]),
              "with_licence": sum("licenses" in c for c in sbom["components"])}
    user = saved.config.get("config", {}).get("User", "")
    return sbom, {"image": image, "components": counts, **surface(final, user)}


def _count(value) -> int:
    return value if isinstance(value, int) else len(value)


def markdown(data: dict) -> str:
    lines = ["| image | user | executables | setuid/setgid | shells | package managers | compilers | "
             "world-writable dirs | SBOM: Debian packages | Python distributions | with a licence |",
             "|---" * 11 + "|"]
    rows = data.get("variants", {})
    order = [v.name for v in VARIANTS if v.name in rows] + [n for n in rows if n not in BY_NAME]
    for name in order:
        r, c = rows[name], rows[name]["components"]
        lines.append(f"| {name} | {r['user']} | " + " | ".join(f"{_count(r[k]):,}" for k in SURFACE_KEYS)
                     + f" | {c['deb']} | {c['pypi']} | {c['with_licence']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="any image; its SBOM goes to results/sbom/<name>.cdx.json")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    path = RESULTS / "surface.json"
    data = load_json(path) if path.exists() else {}
    data.update(machine=machine())
    data.setdefault("variants", {})
    targets = [(re.sub(r"[^A-Za-z0-9_.-]+", "_", args.image), args.image)] if args.image else \
        [(v.name, v.image) for v in select(os.environ.get("VARIANTS"))]
    try:
        ensure_engine()
        for name, image in targets:
            print(f"[sbom] {image} ...", file=sys.stderr, flush=True)
            sbom, row = measure(image)
            save_json(SBOM_DIR / f"{name}.cdx.json", sbom)
            if not args.image:
                data["variants"][name] = row
                save_json(path, data)
            else:
                print(markdown({"variants": {name: row}}))
    except (EngineError, AdvisorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.image:
        rows = data["variants"]
        print_table(["image", "user", *SURFACE_KEYS, "deb", "pypi"],
                    [[n, r["user"], *(str(_count(r[k])) for k in SURFACE_KEYS), str(r["components"]["deb"]),
                      str(r["components"]["pypi"])] for n, r in rows.items()])
    print(f"(SBOMs in {Path(SBOM_DIR).relative_to(ROOT)}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
