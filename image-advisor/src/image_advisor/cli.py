"""image-advisor IMAGE: where an image's bytes are, and which changes remove how many of them.

IMAGE is an image in the Docker engine (either image store), or a file: a `docker save`
archive, or an OCI image layout as a tar or a directory (no engine needed; layers plain,
gzip, eStargz or zstd). The service is traced in a throw-away container (not for a file),
and the report ends with the findings, ranked by the bytes each saves, each byte counted once.

Exit codes: 0 done; 1 the engine or the trace failed; 2 bad input (an unreadable file, a bad
option); 3 the CI gate failed (--fail-above, --max-growth).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from image_advisor import __version__, engine
from image_advisor.archive import is_file_reference
from image_advisor.errors import AdvisorError, ArchiveError
from image_advisor.profile import Profile, load
from image_advisor.units import byte_count

if TYPE_CHECKING:
    from image_advisor.trace import ProbeRequest

# The analysis (diagnosis, report, trace and the Docker SDK they import: a third of a second) is imported
# by run(), once main() has asked the engine for the image: the engine starts its `docker save` meanwhile.

DEFAULT_OUT = Path("image-advisor-report")


@dataclass
class Options:
    image: str
    profile: Profile = field(default_factory=Profile)
    out: Path = DEFAULT_OUT
    name: str = ""
    probe: str = ""
    trace: bool = True
    dive: bool = True
    baseline: str = ""
    fail_above: int | None = None
    max_growth: float | None = None
    platform: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # on the trace's containers, besides the tool's own


def report_name(image: str) -> str:
    """The reports' file name: the archive's name without its suffixes, or the reference made a file name."""
    if is_file_reference(image):
        return Path(image.rstrip("/")).name.split(".")[0] or "image"
    return image.replace("/", "_").replace(":", "_").replace("@", "_")


def probe_requests(options: Options) -> list[ProbeRequest] | None:
    """What the trace sends: --probe, else the profile's, else GET / (None: no trace)."""
    from image_advisor.trace import ProbeRequest, parse_requests

    if not options.trace:
        return None
    text = options.probe.strip() or " | ".join(options.profile.probe)
    return parse_requests(text) if text.strip() else [ProbeRequest("GET", "/")]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run(options: Options) -> tuple[int, dict | None]:
    """The whole diagnosis: (exit code, report). Errors are printed as one line, never raised."""
    from image_advisor import pictures
    from image_advisor.diagnosis import advise_image, examine, load_baseline, print_report, run_trace
    from image_advisor.report import compare_reports, gate, markdown, print_comparison, print_findings

    try:
        requests = probe_requests(options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    name = options.name or report_name(options.image)
    out = options.out
    draw = pictures.available()
    treemap_path = out / f"{name}-treemap.png" if draw else None
    try:
        examined = examine(options.image, options.profile, with_dive=options.dive, treemap_path=treemap_path,
                           platform=options.platform)
        trace, bytecode = (run_trace(options.image, requests, examined, options.labels) if requests is not None
                           else (None, None))
        report = examined.report
        report["trace"] = trace.to_json() if trace is not None else {"ok": False, "reason": "--no-trace"}
        report["advice"] = advise_image(examined, trace, bytecode, options.profile)
        baseline = (load_baseline(options.baseline, requests, options.dive, options.profile, options.platform)
                    if options.baseline else None)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, None
    diff = compare_reports(baseline, report) if baseline else None
    if diff:
        report["baseline"] = diff
    print_report(report)
    print_findings(report)
    if diff:
        print_comparison(diff, options.image)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out / f"{name}.json")
    (out / f"{name}.md").write_text(markdown(report, diff))
    where = _shown(out)
    print(f"\nreports: {where}/{name}.json, {where}/{name}.md (Markdown, for a pull request)")
    if draw:
        bar = pictures.stacked_chart({name: report["composition"]}, out / f"{name}-composition.png",
                                     f"{options.image}: where the bytes are")
        print(f"pictures: {where}/{name}-treemap.png (treemap of the final filesystem), {where}/{bar.name} "
              "(composition)")
    else:
        print("pictures: none (pip install 'image-advisor[pictures]' draws them)")
    failed = gate(report, options.fail_above, diff, options.max_growth)
    for reason in failed:
        print(f"\nGATE FAILED: {reason}", file=sys.stderr)
    return (3 if failed else 0), report


def size_argument(text: str) -> int:
    """argparse's type for a size: '500MB' -> 500000000."""
    try:
        return byte_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="image-advisor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", metavar="IMAGE", help="an image in the engine, or a docker save archive or OCI layout")
    ap.add_argument("--version", action="version", version=f"image-advisor {__version__}")
    ap.add_argument("--profile", default="", help="a JSON file of what your project knows about its image "
                    "(runtime distributions, probe requests, ...: see the README)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the reports go (default ./{DEFAULT_OUT})")
    ap.add_argument("--name", default="", help="the reports' file name (default: from IMAGE)")
    add_report_options(ap)
    return ap


def add_report_options(ap: argparse.ArgumentParser) -> None:
    """The options that shape one report and the CI gate: a wrapper that knows its images adds the same ones."""
    ap.add_argument("--no-trace", action="store_true", help="leave out the run-time trace (and the rules that need it)")
    ap.add_argument("--no-dive", action="store_true", help="leave out dive's figures and verdict")
    ap.add_argument("--probe", default="", help='requests for the trace: \'POST /predict {"text": "hi"} | GET /\'')
    ap.add_argument("--baseline", default="", help="an image, archive or earlier report (.json) to compare against")
    ap.add_argument("--fail-above", type=size_argument, default=None, metavar="BYTES",
                    help="exit 3 when more bytes than this are addressable (500MB, 1.2GB and 123456 are understood)")
    ap.add_argument("--max-growth", type=float, default=None, metavar="PCT",
                    help="with --baseline: exit 3 when the image grew by more than PCT %%")
    ap.add_argument("--platform", default="", help="of an archive that holds several (default: this machine's)")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_growth is not None and not args.baseline:
        parser().error("--max-growth needs --baseline (an image, an archive or an earlier report)")
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the trace's container is still removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        profile = load(args.profile) if args.profile else Profile()
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = Options(args.image, profile, args.out, args.name, args.probe, not args.no_trace, not args.no_dive,
                      args.baseline, args.fail_above, args.max_growth, args.platform)
    if not is_file_reference(args.image):
        engine.start_save(args.image)
    try:
        code, _ = run(options)
    except KeyboardInterrupt:
        print("[image-advisor] stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        engine.drop_started()
    return code


if __name__ == "__main__":
    sys.exit(main())
