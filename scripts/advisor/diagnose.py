"""Where are the bytes, and what to change? (`make diagnose VARIANT=<name>` or `IMAGE=<ref or file>`)

image-advisor (image-advisor/, installed in the lab's venv) does the work; this passes it what
this repository knows about its own images (scripts/advisor/profile.py) and writes
its reports to results/diagnose/ (OUT= elsewhere). An image of this repository's service gets
the service's requirements, probe requests and "shown in" folders; any other image is judged
by itself and its trace alone. One of the six also gets its dive rules (<variant>/.dive-ci),
and naive_image must fail them while the others pass.

    --baseline IMAGE|FILE.json   what changed against another image (or an earlier report)
    --fail-above BYTES           exit 3 when more than BYTES are addressable (a CI gate)
    --max-growth PCT             with --baseline: exit 3 when the image grew by more than PCT %
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from image_advisor.archive import is_file_reference
from image_advisor.cli import Options, add_report_options, run
from image_advisor.diagnosis import examine
from image_advisor.errors import AdvisorError
from image_advisor.layers import SavedImage

from scripts.advisor.profile import profile
from scripts.infra.engine import PROJECT_LABEL, EngineError, ensure_engine, finish_cleanly_on_sigterm, publish_address
from scripts.results import RESULTS
from scripts.variants import BY_NAME, FLAVORS, IMAGE_REPO, Variant, flavor_from_env


def analyze_image(image: str, variant: Variant | None = None, with_dive: bool = True) -> tuple[dict, SavedImage]:
    """(report, saved image): the byte accounting of one of this repository's images, as make compare uses it."""
    os.environ.setdefault("IMAGE_ADVISOR_ADDRESS", publish_address())
    try:
        examined = examine(image, profile(variant), with_dive)
    except AdvisorError as exc:
        raise EngineError(str(exc)) from None
    return examined.report, examined.saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--variant", choices=sorted(BY_NAME))
    group.add_argument("--image", help="an image in the engine, or a file: a `docker save` archive or an OCI "
                       "image layout (a tar or a directory), read without an engine")
    ap.add_argument("--flavor", choices=FLAVORS, default=flavor_from_env())
    ap.add_argument("--out", type=Path, default=RESULTS / "diagnose", help="where the reports and pictures go")
    add_report_options(ap)  # the tool's own: --no-trace, --no-dive, --probe, --baseline, the gate, --platform
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
    ours = variant is not None or image.startswith(f"{IMAGE_REPO}:")
    if not is_file_reference(image):
        try:
            ensure_engine()
        except EngineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    os.environ.setdefault("IMAGE_ADVISOR_ADDRESS", publish_address())
    options = Options(image, profile(variant, ours), args.out, variant.image.split(":", 1)[1] if variant else "",
                      args.probe, not args.no_trace, not args.no_dive, args.baseline, args.fail_above,
                      args.max_growth, args.platform, labels={PROJECT_LABEL: "scripts.advisor.diagnose"})
    code, report = run(options)
    if code or report is None:
        return code
    expected_ok = variant is None or variant.name != "naive_image"
    verdict = report["dive"].get("ci_passed")
    if variant and verdict is not None and verdict != expected_ok:
        print(f"\nunexpected dive CI verdict for {variant.name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
