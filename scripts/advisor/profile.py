"""What this repository knows about its own images, as the profile image-advisor takes (`make diagnose`).

    python -m scripts.advisor.profile [--variant NAME] > profile.json

image-advisor (image-advisor/) knows nothing of this repository; this module tells it: the
service's runtime distributions (app/requirements*.txt), the requests the trace sends (every
route and both batch forms), the folder of this repository that shows each fix, the stand-in
and official bases to measure against (scripts/infra/bases.py), the torch-to-ONNX figures
measured here (results/compare.json) and each variant's dive rules.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from image_advisor.composition import canonical
from image_advisor.profile import Profile

from scripts.infra import bases
from scripts.results import RESULTS, load_json
from scripts.variants import BY_NAME, ROOT, Variant

# What this repository's service is sent (the smoke test's requests: every route and both batch forms).
SERVICE_REQUESTS = (
    "GET /healthz",
    "GET /readyz",
    'POST /classify {"text": "I love this movie, the acting is wonderful."}',
    'POST /classify {"texts": ["A dull, lifeless mess.", "' + "a long and rather wonderful film " * 60 + '"]}',
    "GET /openapi.json",
    "GET /",
)
# Requirement files whose packages (and their dependencies) the service runs on; the rest are dev extras.
RUNTIME_REQUIREMENTS = ("app/requirements.txt", "app/requirements-common.txt", "app/requirements-onnx.txt",
                        "app/torch-cpu.txt", "app/torch-cuda.txt")
ONNX_REQUIREMENTS = ("app/requirements-onnx.txt", "app/requirements-common.txt")  # what onnx_image installs
# The bases the advisor measures an image against (scripts/infra/bases.py names them, official and stand-in).
REFERENCE_BASES = {"slim": ("PYTHON_SLIM_IMAGE",), "distroless": ("DISTROLESS_IMAGE", "DISTROLESS13_IMAGE")}
# Which step of the walk shows each fix (a finding key: its rule, or rule/branch).
SHOWN_IN = {
    "cache-pip": "slim_image", "cache-uv": "layered_image", "cache-apt": "slim_image", "cache-apt-lists": "slim_image",
    "deleted-in-later-layer": "distroless_image", "build-context": ".dockerignore",
    "dev-distributions": "slim_image", "installer-in-runtime/venv": "multi_stage_build",
    "installer-in-runtime/base": "distroless_image", "build-files-in-packages": "multi_stage_build",
    "never-imported": "slim_image", "cuda-unmapped": "slim_image", "unmapped-libraries": "multi_stage_build",
    "full-base": "slim_image", "distroless-base": "distroless_image", "build-toolchain/slim": "slim_image",
    "build-toolchain/stage": "multi_stage_build", "sources-beside-bytecode": "distroless_image",
    "torch-for-onnx": "onnx_image", "stdlib-without-bytecode": "distroless_image",
    "attack-surface": "distroless_image",
}
# Fixes that name this repository's own tools and steps.
FIXES = {
    "cache-apt": "install only the OS packages the service needs (slim_image installs none), and end that RUN with "
                 "apt-get clean && rm -rf /var/lib/apt/lists/*",
    "cache-apt-lists": "install only the OS packages the service needs (slim_image installs none), and end the RUN "
                       "that runs apt-get update with rm -rf /var/lib/apt/lists/*",
    "installer-in-runtime/venv": "install into a venv in a build stage and COPY --from only the venv, with pip and "
                                 "setuptools removed (scripts/images/trim_venv.py)",
    "build-files-in-packages": "delete them in the build stage (scripts/images/trim_venv.py's list) before COPY --from",
    "cuda-unmapped": "if the service runs on CPUs, install the CPU build of torch "
                     "(--index-url https://download.pytorch.org/whl/cpu); on GPUs see docs/cuda.md",
    "unmapped-libraries": "leave out the parts you never load in the build stage only with a test that exercises "
                          "every code path you ship (as scripts/images/trim_venv.py does), or install a build "
                          "without them",
    "build-toolchain/slim": "FROM {image}: the slim base has no compilers (slim_image); where something must be "
                            "compiled, do it in a build stage and COPY --from only what it built (multi_stage_build)",
    "build-toolchain/stage": "compile in a build stage and COPY --from only what it built into a slim runtime stage "
                             "(multi_stage_build)",
    "sources-beside-bytecode": "keep the bytecode only (python -m compileall -b, then delete the .py: "
                               "scripts/images/trim_venv.py --bytecode-only); tracebacks then show no source lines",
    "torch-for-onnx": "export the model to ONNX, quantize it to int8, and serve it with onnxruntime and tokenizers "
                      "only (check accuracy: make evaluate)",
}


def requirement_names(files: tuple[str, ...] = RUNTIME_REQUIREMENTS) -> set[str]:
    names = set()
    for rel in files:
        path = ROOT / rel
        for line in path.read_text().splitlines() if path.exists() else []:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names.add(canonical(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0]))
    return names


def onnx_reference() -> dict | None:
    """This repository's measured onnx_image and torch model, for the torch-for-onnx estimate."""
    variants = load_json(RESULTS / "compare.json").get("variants", {})
    onnx = variants.get("onnx_image", {}).get("composition", {}).get("categories")
    torch = next((v["composition"]["categories"] for v in variants.values()
                  if v.get("composition", {}).get("categories", {}).get("torch")), None)
    if not onnx or not torch:
        return None
    return {"onnxruntime_bytes": onnx["onnxruntime"], "onnx_model_bytes": onnx["model"],
            "torch_model_bytes": torch["model"],
            "kept": sorted(requirement_names(ONNX_REQUIREMENTS) | {"numpy"}),  # onnx_image's numpy is Debian's
            "ratio_from": "this repository", "source": "onnx_image, results/compare.json"}


def profile(variant: Variant | None = None, ours: bool = True) -> Profile:
    """The profile for one of the six (variant), another image of this repository's service (ours), or a
    foreign image: that gets the repository's bases and nothing of its service."""
    refs = {name: [r for arg in args for r in (bases.BY_ARG[arg].official, bases.BY_ARG[arg].local)]
            for name, args in REFERENCE_BASES.items()}
    if not ours and variant is None:
        return Profile(reference_bases=refs)
    rules = variant.dockerfile.parent / ".dive-ci" if variant else None
    return Profile(runtime=requirement_names(), probe=list(SERVICE_REQUESTS), shown_in=dict(SHOWN_IN),
                   fixes=dict(FIXES), reference_bases=refs, onnx_reference=onnx_reference(),
                   dive_rules=str(rules.relative_to(ROOT)) if rules else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=sorted(BY_NAME))
    args = ap.parse_args(argv)
    json.dump(profile(BY_NAME.get(args.variant or "")).to_json(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
