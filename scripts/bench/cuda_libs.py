"""Which CUDA libraries the service loads, against those a CUDA image ships.

    python -m scripts.bench.cuda_libs [--variant multi_stage_build] [--image REF] [--json]
    python -m scripts.bench.cuda_libs --trimmed multi_stage_build,distroless_image    # `make cuda-trim`

Runs the service's own model load and one prediction inside a throw-away container of the
image, then reads /proc/self/maps: every shared library the process has mapped. Beside that,
every shared library under site-packages' nvidia/, torch/lib/ and triton/ with its size.
Grouped by the Python distribution whose RECORD lists the file (nvidia-cublas, nvidia-cudnn-cu13
...), so "shipped but never loaded" names what could be left out.

Without a GPU the model runs on the CPU (DEVICE=auto), so "loaded" is what import and CPU
inference need: a lower bound of what a GPU run loads (cuDNN's engine libraries, NVRTC and
the driver's libcuda are opened only once a GPU is in use). The result says which it was.

--trimmed builds the named variants' CUDA images with CUDA_TRIM=1 (scripts/images/trim_venv.py's
CUDA_INFERENCE_ONLY list left out), smoke-tests them on the CPU, probes them again and
writes results/cuda-trim.json beside the untrimmed sizes in results/compare-cuda.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

from scripts.infra.engine import EngineError, docker, ensure_engine
from scripts.results import RESULTS, human_bytes, load_json, machine, print_table, save_json
from scripts.variants import BY_NAME, Variant, select

# Runs inside the image, with its Python. Prints one JSON line.
PROBE = r"""
import json, os, sysconfig
from pathlib import Path
from app.backends import load_model
model = load_model(os.environ.get("MODEL_DIR", "/app/model"))
model.predict(["I love this movie", "A dull, lifeless mess"])
maps = [line.split(None, 5) for line in open("/proc/self/maps")]
loaded = sorted({os.path.realpath(f[5].strip()) for f in maps if len(f) == 6 and ".so" in f[5]})
site = Path(sysconfig.get_paths()["purelib"])
shipped = {}
for top in ("nvidia", "torch/lib", "triton"):
    for p in (site / top).rglob("*.so*"):
        if p.is_file() and not p.is_symlink():
            shipped[os.path.realpath(p)] = p.stat().st_size
from importlib.metadata import distributions
owner = {}
for dist in distributions():
    for f in dist.files or ():
        real = os.path.realpath(dist.locate_file(f))
        if real in shipped:
            owner[real] = dist.metadata["Name"]
print(json.dumps({"device": model.describe().get("device"), "site_packages": str(site),
                  "loaded": loaded, "shipped": shipped, "owner": owner}))
"""


def distribution_of(path: str, site: str) -> str:
    """Where no RECORD names a library: its folder under site-packages stands for its distribution."""
    rel = path.removeprefix(site.rstrip("/") + "/")
    parts = rel.split("/")
    if parts[0] == "nvidia" and len(parts) > 2:
        return f"nvidia/{parts[1]}"  # one folder per nvidia-*-cu12 wheel (cublas, cudnn, nccl ...)
    return parts[0]  # torch, triton


def summarize(probe: dict) -> dict:
    """Per distribution: bytes shipped, bytes loaded, and the libraries on each side."""
    site, loaded = probe["site_packages"], set(probe["loaded"])
    groups: dict[str, dict] = defaultdict(lambda: {"shipped_bytes": 0, "loaded_bytes": 0,
                                                   "loaded": [], "not_loaded": []})
    for path, size in sorted(probe["shipped"].items()):
        g = groups[probe.get("owner", {}).get(path) or distribution_of(path, site)]
        g["shipped_bytes"] += size
        name = path.rsplit("/", 1)[1]
        if path in loaded:
            g["loaded_bytes"] += size
            g["loaded"].append([name, size])
        else:
            g["not_loaded"].append([name, size])
    by_dist = dict(sorted(groups.items(), key=lambda kv: -kv[1]["shipped_bytes"]))
    return {
        "device": probe["device"],
        "shipped_bytes": sum(g["shipped_bytes"] for g in by_dist.values()),
        "loaded_bytes": sum(g["loaded_bytes"] for g in by_dist.values()),
        "never_loaded_distributions": [d for d, g in by_dist.items() if g["loaded_bytes"] == 0],
        "by_distribution": by_dist,
    }


def measure(variant: Variant, image: str | None = None) -> dict:
    """Run the probe in a container of the image (the variant's own by default)."""
    image = image or variant.image
    proc = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "-e", "DEVICE=auto", image,
                  *variant.python, "-c", PROBE, check=False, timeout=600)
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), "")
    if proc.returncode != 0 or not line:
        raise EngineError(f"CUDA library probe failed in {image} (exit {proc.returncode}):\n{proc.stderr[-1500:]}")
    return summarize(json.loads(line))


def rows(summary: dict) -> list[list[str]]:
    out = []
    for dist, g in summary["by_distribution"].items():
        out.append([dist, human_bytes(g["shipped_bytes"]), human_bytes(g["loaded_bytes"]),
                    f"{len(g['loaded'])}/{len(g['loaded']) + len(g['not_loaded'])}"])
    out.append(["total", human_bytes(summary["shipped_bytes"]), human_bytes(summary["loaded_bytes"]), ""])
    return out


HEADER = ["distribution", "shipped", "loaded", "libraries loaded"]


def markdown(data: dict) -> str:
    """The loaded-vs-shipped table of the first variant that has one (the torch install is shared)."""
    for name, figures in data.items():
        if "cuda_libs" in figures:
            s = figures["cuda_libs"]
            lines = [f"\n### CUDA libraries: shipped vs loaded ({name}, service on {s['device']})\n",
                     "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
            lines += ["| " + " | ".join(r) + " |" for r in rows(s)]
            return "\n".join(lines) + "\n"
    return ""


def trimmed(names: str) -> dict:
    """Build, smoke and probe each variant's CUDA image with CUDA_TRIM=1; sizes beside the untrimmed ones."""
    from scripts.images.build import build_image, image_size, keep_images, prepare, remove_image
    from scripts.images.smoke import smoke_variant

    untrimmed = load_json(RESULTS / "compare-cuda.json").get("variants", {})
    variants = select(names, "cuda")
    setup = prepare("cuda", variants=variants)
    setup.cuda_trim = True
    out: dict = {}
    with setup.wheels():
        for v in variants:
            tag = f"{v.image}-trim"
            print(f"[cuda-trim] {v.name}: building {tag} (CUDA_TRIM=1) ...", file=sys.stderr, flush=True)
            seconds = build_image(v.dockerfile, tag, setup, label=f"{v.name} CUDA_TRIM=1")
            size = image_size(tag)
            smoke = smoke_variant(v, image=tag)
            libs = measure(v, tag)
            before = untrimmed.get(v.name, {}).get("size_bytes")
            out[v.name] = {"image": tag, "size_bytes": size, "build_seconds": round(seconds, 1),
                           "untrimmed_size_bytes": before, "saved_bytes": before - size if before else None,
                           "smoke_failures": smoke["failures"], "cuda_libs": libs}
            print(f"[cuda-trim] {v.name}: {human_bytes(size)}"
                  + (f" (untrimmed {human_bytes(before)}, {human_bytes(before - size)} less)" if before else "")
                  + f"; smoke {'PASS' if not smoke['failures'] else 'FAIL: ' + '; '.join(smoke['failures'])}",
                  file=sys.stderr, flush=True)
            if not keep_images("cuda"):
                remove_image(tag)
    save_json(RESULTS / "cuda-trim.json", {"machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                           "variants": out})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="multi_stage_build", choices=[n for n, v in BY_NAME.items()
                                                                      if v.runtime == "torch"])
    ap.add_argument("--image", help="image to probe (default: the variant's cuda image)")
    ap.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    ap.add_argument("--trimmed", metavar="VARIANTS", help="build, smoke and probe these with CUDA_TRIM=1")
    args = ap.parse_args(argv)
    variant = BY_NAME[args.variant].with_flavor("cuda")
    try:
        ensure_engine()
        if args.trimmed:
            results = trimmed(args.trimmed)
            return 0 if all(not r["smoke_failures"] for r in results.values()) else 1
        summary = measure(variant, args.image)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(HEADER, rows(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
