"""The standard-library modules onnx_image's programs import, found by tracing them: its build input.

    python -m scripts.studies.stdlib_modules          # `make stdlib-modules`: writes onnx_image/stdlib-modules.txt

onnx_image copies Debian's Python onto a base without one (scripts/images/copy_python.py) and keeps
only the standard-library modules this list names. To write the list, the image is built with the
whole standard library (STDLIB_MODULES=all), its service is run with make diagnose's probe
(image-advisor/src/image_advisor/trace.py) and sent the smoke test's requests, the malformed requests of the hostile
set and pipelined ones; then the image's other programs run in the same container (the HEALTHCHECK,
the one-shot CLI on the sample file and on a missing one) and the container is stopped, so the
shutdown path is traced too. Every stdlib module any of those processes imported is written out.
A module only some other path imports lazily is not seen: the smoke test on the cut image
(make smoke) is the check that none is missing, and copy_python keeps what a trace cannot reach.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from image_advisor.trace import Trace, parse_requests, trace_image

from scripts.advisor.profile import SERVICE_REQUESTS
from scripts.images.build import BuildError, build_image, prepare, remove_image
from scripts.images.copy_python import module_name
from scripts.infra.engine import EngineError
from scripts.traffic import hostile, pipeline
from scripts.variants import BY_NAME

VARIANT = BY_NAME["onnx_image"]
LIST = VARIANT.dockerfile.parent / "stdlib-modules.txt"
TAG = "bert-classifier-trace:onnx_image-whole-stdlib"
HEADER = """\
# The standard-library modules onnx_image's service, HEALTHCHECK and one-shot CLI import, as a
# trace of them found (make stdlib-modules; scripts/studies/stdlib_modules.py). copy_python.py
# --modules keeps only these, the packages that hold them, and its ALWAYS_KEEP. Regenerate after
# a dependency or the app changes what it imports; make smoke on the cut image checks the list.
"""


def log(msg: str) -> None:
    print(f"[stdlib-modules] {msg}", file=sys.stderr, flush=True)


def stdlib_names(trace: Trace) -> set[str]:
    """Module names the trace imported from the image's standard library (its own files, not site-packages)."""
    root = trace.stdlib.strip("/")
    names = set()
    for path in trace.module_files:
        rel = Path(path)
        if root and rel.is_relative_to(root) and not rel.relative_to(root).parts[0].endswith("-packages"):
            names.add(module_name(rel.relative_to(root)))
    # Frozen modules (os, site, codecs, ...) run from the interpreter and have no file; named all the same.
    names |= {n for n in trace.modules if n.split(".")[0] in sys.stdlib_module_names}
    return names


def exercise(container, base: str) -> None:
    """What the trace sends and runs once the smoke test's requests are answered."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    failed = [o.scenario for o in hostile.check_bad_requests(host, int(port)) if not o.passed]
    failed += [name for name in pipeline.CASES if pipeline.check_case(host, int(port), name)]
    if failed:
        log(f"WARNING: answered differently from the smoke test: {', '.join(failed)}")
    config = container.attrs["Config"]
    health = (config.get("Healthcheck") or {}).get("Test") or []
    programs = [health[1:]] if health[:1] == ["CMD"] else []
    entrypoint = config.get("Entrypoint") or []
    programs += [[*entrypoint, *VARIANT.predictor_command(f)] for f in ("sample_data/sample_text.txt", "missing.txt")]
    for argv in programs:
        code, _ = container.exec_run(argv)
        log(f"ran {' '.join(argv)}: exit {code}")


def write(names: set[str], path: Path = LIST) -> None:
    path.write_text(HEADER + "".join(f"{n}\n" for n in sorted(names)))


def main(argv: list[str] | None = None) -> int:
    # No options: --help prints what it does, anything else is refused before it measures
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    try:
        setup = prepare("cpu", variants=[VARIANT])
        with setup.wheels():
            log(f"building {TAG} with the whole standard library ...")
            build_image(VARIANT.dockerfile, TAG, setup, no_cache=False, label=TAG,
                        build_args={"STDLIB_MODULES": "all"})
        # publish: its own image, sent the hostile set and the pipeline cases from here after the requests
        trace = trace_image(TAG, parse_requests(" | ".join(SERVICE_REQUESTS)), log=log, after=exercise, publish=True)
    except (EngineError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        remove_image(TAG)
    if not trace.ok:
        print(f"error: the trace failed: {trace.reason}", file=sys.stderr)
        return 1
    bad = [f"{r} -> {s}" for r, s in trace.answers if not 200 <= s < 500]
    if bad:
        print(f"error: the service failed requests during the trace: {', '.join(bad)}", file=sys.stderr)
        return 1
    names = stdlib_names(trace)
    write(names)
    log(f"{len(names)} modules from {trace.processes} processes -> {LIST.relative_to(VARIANT.dockerfile.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
