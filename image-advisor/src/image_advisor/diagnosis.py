"""Where are an image's bytes, and what should change? The steps behind the command line.

    examine(image, profile)           read the image (the engine's `docker save`, or the file given)
    run_trace(image, requests, ...)   its service in a throw-away container: what it imports and maps
    advise_image(examined, trace)     the findings of rules.py, ranked by the bytes each saves
    print_report(report)              the terminal report before the findings

The report is a dict (written as JSON by cli.py; its fields are in the README): the layers
with their instructions, the largest directories, bytes per Python distribution and OS
package with each distribution's role, wasted bytes (ours beside dive's way of counting),
the composition in fixed categories, dive's verdict where dive is installed, and the advice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from image_advisor import REPORT_SCHEMA, __version__
from image_advisor.archive import is_docker_archive, is_file_reference
from image_advisor.composition import DEV_DISTRIBUTIONS, canonical, composition, file_categories
from image_advisor.engine import engine_answers, save_chunks, saved_image, sdk
from image_advisor.errors import AdvisorError
from image_advisor.layers import (
    Analysis,
    SavedImage,
    analyze,
    debian_release,
    dive_style_waste,
    instruction,
    largest_dirs,
    os_packages,
    os_release,
    python_distributions,
    read_saved,
    read_stream,
)
from image_advisor.profile import Profile
from image_advisor.rules import Evidence, Reference, advise
from image_advisor.trace import ProbeRequest, Trace, bytecode_seconds, stdlib_without_bytecode, trace_image
from image_advisor.units import human_bytes, print_table

REFERENCE_KINDS = ("slim", "distroless")
DIVE = shutil.which("dive", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def log(msg: str) -> None:
    print(f"[image-advisor] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "image-advisor"


def _plain(line: str) -> str:
    """A terminal line without its colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def dive_report(archive: Path, rules: str = "") -> dict:
    """dive on the archive: its JSON figures, and the CI verdict when rules (a .dive-ci file) are given."""
    if DIVE is None:
        return {"skipped": "dive is not installed (pip install 'image-advisor[dive]', or dive on PATH)"}
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="dive-") as tmp:
        report = Path(tmp) / "dive.json"
        # CI=true (set by CI systems) would switch dive into rule-checking mode here too.
        plain_env = {k: v for k, v in os.environ.items() if k != "CI"}
        proc = subprocess.run([DIVE, "--source", "docker-archive", str(archive), "--json", str(report)],
                              capture_output=True, text=True, timeout=900, check=False, env=plain_env)
        if proc.returncode != 0 or not report.exists():
            return {"skipped": f"dive failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"}
        image = json.loads(report.read_text())["image"]
        out.update(efficiency=image["efficiencyScore"], wasted_bytes=image["inefficientBytes"])
    if rules:
        proc = subprocess.run([DIVE, "--ci", "--ci-config", rules, "--source", "docker-archive", str(archive)],
                              capture_output=True, text=True, timeout=900, check=False,
                              env={**os.environ, "CI": "true"})
        out.update(ci_rules=rules, ci_passed=proc.returncode == 0,
                   ci_output=[ln for ln in map(_plain, proc.stdout.splitlines())
                              if ln.strip().startswith(("PASS", "FAIL", "SKIP"))])
    return out


@dataclass
class Examined:
    report: dict
    saved: SavedImage
    analysis: Analysis
    dist_of: dict[str, str]


def distribution_roles(names: list[str], profile: Profile, trace: Trace | None, files_used: dict[str, bool]
                       ) -> dict[str, str]:
    """Each installed distribution's role, from the image and the trace (and the profile where it has a runtime
    list): imported while the service answered, a known test/lint/notebook/build tool, or never imported."""
    roles = {}
    for name in names:
        key = canonical(name)
        if trace is not None and trace.ok and files_used.get(name):
            roles[name] = "imported while the service answered"
        elif DEV_DISTRIBUTIONS.match(key):
            roles[name] = "a known test, lint, notebook or build tool"
        elif trace is not None and trace.ok:
            roles[name] = "never imported during the trace"
        elif profile.runtime is not None:
            roles[name] = "runtime (the profile's)" if key in profile.runtime else "not in the profile's runtime"
        else:
            roles[name] = "unknown without a trace"
    return roles


def examine(image: str, profile: Profile | None = None, with_dive: bool = True, treemap_path: Path | None = None,
            platform: str = "") -> Examined:
    """Everything the report says about the bytes; also draws the treemap when treemap_path is given."""
    profile = profile or Profile()
    dive: dict = {}
    if is_file_reference(image):
        archive = Path(image).expanduser()
        saved = read_saved(archive, platform)
        if with_dive and is_docker_archive(archive):
            dive = dive_report(archive, profile.dive_rules)
        elif with_dive:
            dive = {"skipped": "dive reads `docker save` archives and engine images, not OCI layouts"}
    else:
        # The engine's `docker save` is read as it streams; only dive needs it on disk.
        with tempfile.TemporaryDirectory(prefix="image-advisor-") as tmp:
            tee = Path(tmp) / "image.tar" if with_dive else None
            chunks = save_chunks(image, tee)
            log(f"reading {image} from the engine's `docker save` (the engine may export every layer before it "
                "sends the first byte) ...")
            started = time.perf_counter()
            saved = read_stream(_first_byte_logged(chunks, started), platform)
            log(f"read {len(saved.layers)} layers ({human_bytes(sum(layer.size for layer in saved.layers))}) in "
                f"{time.perf_counter() - started:.1f} s; working out where the bytes are ...")
            if tee is not None:
                dive = dive_report(tee, profile.dive_rules)
    analysis = analyze(saved.layers)
    final = analysis.final
    pkgs = os_packages(saved, final)
    categories, dist_of = file_categories(saved, analysis, profile.runtime)
    report = {
        "schema": REPORT_SCHEMA,
        "tool": f"image-advisor {__version__}",
        "image": image,
        "layers": [{"size_bytes": layer.size, "created_by": layer.created_by,
                    "instruction": instruction(layer.created_by)} for layer in saved.layers],
        "total_bytes": analysis.total_bytes,
        "final_bytes": analysis.final_bytes,
        "largest_dirs": largest_dirs(final),
        "python_distributions": python_distributions(saved, final),
        "os_packages": len(pkgs),
        "os_package_sizes": pkgs,
        "wasted_bytes": analysis.wasted_bytes,
        "wasted_files": sorted(analysis.wasted, key=lambda w: -w[1])[:25],
        "dive_style_wasted_bytes": dive_style_waste(saved.layers),
        "dive": dive,
        "user": saved.config.get("config", {}).get("User", "") or "root",
        "os_release": {k: v for k, v in os_release(saved).items() if k in ("ID", "VERSION_CODENAME", "PRETTY_NAME")},
        "debian_release": debian_release(saved),
        "composition": composition(analysis, categories, dist_of),
    }
    if treemap_path is not None:
        from image_advisor.pictures import treemap

        treemap(categories, final, treemap_path, f"{image}: {human_bytes(analysis.total_bytes)}, where the bytes are")
    return Examined(report, saved, analysis, dist_of)


def _first_byte_logged(chunks: Iterable[bytes], started: float) -> Iterator[bytes]:
    it = iter(chunks)
    for chunk in it:
        log(f"the first byte came after {time.perf_counter() - started:.1f} s")
        yield chunk
        break
    yield from it


def reference(ref: str) -> tuple[str, set[str]] | None:
    """(Debian release, installed package names) of a base image in the engine; None when it is absent."""
    from docker.errors import ImageNotFound

    try:
        found = sdk().images.get(ref)
    except ImageNotFound:
        return None
    cached = cache_dir() / "references" / f"{found.id.replace(':', '-')}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
        return data["release"], set(data["packages"])
    with saved_image(ref) as archive:
        saved = read_saved(archive)
    release = debian_release(saved)
    names = sorted({name for name, _, _ in os_packages(saved, analyze(saved.layers).final)})
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"image": ref, "release": release, "packages": names}))
    return release, set(names)


def references(release: str, profile: Profile) -> list[Reference]:
    """The profile's slim and distroless bases of the image's own Debian release that the engine holds (none
    where no engine answers: an image given as a file is diagnosed without one)."""
    if not release or not profile.reference_bases or not engine_answers():
        return []
    out = []
    for name in REFERENCE_KINDS:
        for ref in profile.reference_bases.get(name, ()):
            found = reference(ref)
            if found and found[0] == release:
                out.append(Reference(name, ref, found[1]))
                break
    return out


def run_trace(image: str, requests: list[ProbeRequest], examined: Examined,
              labels: dict[str, str] | None = None) -> tuple[Trace, dict | None]:
    """The run-time trace, and the stdlib bytecode measurement when the trace found bytecode missing."""
    if is_file_reference(image):
        log(f"{image} is a file: no container to trace, so the findings that need a trace are left out "
            "(load it into an engine and name its tag to have them)")
        return Trace(ok=False, reason="the image was given as a file"), None
    log(f"tracing {image}: its own entrypoint in a throw-away container, {len(requests)} request(s) ...")
    trace = trace_image(image, requests, log=lambda m: print(m, file=sys.stderr, flush=True), labels=labels)
    if not trace.ok:
        log(f"no trace: {trace.reason}")
        return trace, None
    imported, missing = stdlib_without_bytecode(trace, examined.analysis.final)
    if not missing:
        return trace, None
    log(f"{len(missing)} stdlib modules the service imports have no bytecode: timing their import "
        "with and without it ...")
    try:
        timed = bytecode_seconds(image, trace.executable, missing, labels=labels)
    except AdvisorError as exc:
        log(f"bytecode timing failed: {exc}")
        return trace, None
    return trace, {**timed, "missing": len(missing), "imported": len(imported), "stdlib": "/" + trace.stdlib}


def advise_image(examined: Examined, trace: Trace | None, bytecode: dict | None,
                 profile: Profile | None = None) -> dict:
    profile = profile or Profile()
    evidence = Evidence(examined.saved, examined.analysis, examined.dist_of, trace=trace,
                        references=references(examined.report["debian_release"], profile), bytecode=bytecode,
                        profile=profile)
    advice = advise(evidence).to_json()
    used = trace.used if trace is not None and trace.ok else set()
    owners: dict[str, bool] = {}
    for path, name in examined.dist_of.items():
        owners[name] = owners.get(name, False) or (path in used and "/_distutils_hack/" not in path)
    names = [n for n, _, _ in examined.report["python_distributions"]]
    examined.report["distribution_roles"] = distribution_roles(names, profile, trace, owners)
    return advice


def print_report(r: dict) -> None:
    def section(title: str) -> None:
        print(f"\n== {title} ==")

    print(f"image {r['image']}: {human_bytes(r['total_bytes'])} in {len(r['layers'])} layers "
          f"({human_bytes(r['final_bytes'])} visible in the final filesystem), user {r['user']}")
    section("docker history: bytes each layer adds, and the instruction that made it")
    print_table(["#", "size", "created by"],
                [[str(i), human_bytes(layer["size_bytes"]), instruction(layer["created_by"])[:110]]
                 for i, layer in enumerate(r["layers"])])
    section("ten largest directories (final filesystem)")
    print_table(["directory", "size"], [[d, human_bytes(s)] for d, s in r["largest_dirs"]])
    dists = r["python_distributions"]
    roles = r.get("distribution_roles", {})
    section(f"Python distributions: {len(dists)}, {human_bytes(sum(d[1] for d in dists))} (top 15, from RECORD)")
    print_table(["distribution", "size", "files", "role"],
                [[n, human_bytes(s), str(f), roles.get(n, "")] for n, s, f in dists[:15]])
    section(f"OS packages: {r['os_packages']} installed (top 10)")
    print_table(["package", "size", "measured"], [[n, human_bytes(s), how] for n, s, how in r["os_package_sizes"][:10]])
    comp = r["composition"]
    section("composition: every byte in one category")
    print_table(["category", "size", "share"],
                [[name, human_bytes(size), f"{size / max(comp['total_bytes'], 1):.1%}"]
                 for name, size in comp["categories"].items() if size]
                + [[f"  of which {name}", human_bytes(size), f"{size / max(comp['total_bytes'], 1):.1%}"]
                   for name, size in comp["named_deps"].items()])
    section("wasted space: file copies a later layer overwrote or deleted")
    print(f"ours: {human_bytes(r['wasted_bytes'])} (each hidden copy once, files under deleted directories included)")
    print(f"dive-style count of the same layers: {human_bytes(r['dive_style_wasted_bytes'])} "
          "(all copies of a repeated path, surviving one included; deleted directories' files missed)")
    if r["wasted_files"]:
        print_table(["path", "size", "from layer", "how"],
                    [[f"/{p}"[:70], human_bytes(s), str(i), how] for p, s, i, how in r["wasted_files"][:10]])
    dive = r.get("dive") or {}
    if dive.get("skipped"):
        section("dive")
        print(f"not run: {dive['skipped']}")
    elif dive:
        section("dive")
        print(f"efficiency {dive['efficiency']:.4f}, wasted {human_bytes(dive['wasted_bytes'])}")
        if "ci_passed" in dive:
            print(f"CI rules {dive['ci_rules']}: {'PASS' if dive['ci_passed'] else 'FAIL'}")
            for line in dive["ci_output"]:
                print(f"  {line.strip()}")


def load_baseline(spec: str, requests: list[ProbeRequest] | None, with_dive: bool,
                  profile: Profile | None = None, platform: str = "") -> dict:
    """An earlier report (a .json file) or a fresh one of another image (or archive), advice included."""
    path = Path(spec)
    if spec.endswith(".json"):
        if not path.is_file():
            raise AdvisorError(f"no baseline report {spec}")
        try:
            baseline = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AdvisorError(f"{spec} is not JSON ({exc})") from None
        if not isinstance(baseline, dict) or "advice" not in baseline:
            raise AdvisorError(f"{spec} has no findings: write it again with this version of image-advisor")
        return baseline
    examined = examine(spec, profile, with_dive=with_dive, platform=platform)
    trace, bytecode = run_trace(spec, requests, examined) if requests is not None else (None, None)
    examined.report["advice"] = advise_image(examined, trace, bytecode, profile)
    return examined.report


def analyze_image(image: str, profile: Profile | None = None, with_dive: bool = True,
                  treemap_path: Path | None = None) -> tuple[dict, SavedImage]:
    """(report, saved image): the byte accounting only, without the trace and the advice."""
    examined = examine(image, profile, with_dive, treemap_path)
    return examined.report, examined.saved
