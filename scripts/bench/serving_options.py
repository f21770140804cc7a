"""What the servers on uvicorn have that app/'s gunicorn does not, tried on app/ (`make serving-options`).

    python -m scripts.bench.serving_options [--model model-onnx-int8] [--rounds 5] [--requests 400]

uvicorn parses HTTP in C (httptools) on uvloop's event loop; gunicorn's asgi worker, which app/
runs on, offers both too: --asgi-loop uvloop and --http-parser fast (the gunicorn_h1c extension).
This installs uvloop and gunicorn_h1c into a scratch folder (pip, from the index pip is set up
for), runs app/ on this machine under each of the four combinations in turn, round after round,
and measures the p50 of single-sentence POST /classify (the round trip `make peers` times) and the
hostile set. -> results/serving-options.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.bench.benchmark import served
from scripts.results import RESULTS, machine, save_json
from scripts.traffic import hostile, latency
from scripts.variants import ROOT

OUT = RESULTS / "serving-options.json"
EXTRAS = ("uvloop", "gunicorn_h1c")
LOOPS = {"asyncio": "asyncio", "uvloop": "uvloop"}
PARSERS = {"python": "Python parser", "h1c": "C parser (gunicorn_h1c)"}
# gunicorn flags of each combination; the first is app/'s own (gunicorn's defaults without the extras)
OPTIONS = {f"{loop}-{parser}": ["--asgi-loop", loop, "--http-parser", "fast" if parser == "h1c" else "python"]
           for parser in PARSERS for loop in LOOPS}


def label(name: str) -> str:
    loop, parser = name.split("-")
    return f"{LOOPS[loop]}, {PARSERS[parser]}"


def log(msg: str) -> None:
    print(f"[serving-options] {msg}", file=sys.stderr, flush=True)


def install_extras(target: Path) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *EXTRAS],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(EXTRAS)} failed: {proc.stderr.strip()[-500:]}")
    versions = {}
    for info in target.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        versions[name] = version
    return versions


def run_once(model: str, extras: Path, flags: list[str], requests: int, hostile_set: bool) -> dict:
    with served(model, tuple(flags), env={"PYTHONPATH": str(extras)}) as port:
        result = {"p50_ms": latency.measure("127.0.0.1", port, requests=requests)["p50_ms"]}
        if hostile_set:
            outcomes = hostile.check_bad_requests("127.0.0.1", port)
            result["hostile_passed"] = f"{sum(o.passed for o in outcomes)}/{len(outcomes)}"
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model-onnx-int8"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args(argv)
    if not Path(args.model, "config.json").exists():
        print(f"error: no model at {args.model}: run `make model`", file=sys.stderr)
        return 2
    runs: dict[str, list[float]] = {name: [] for name in OPTIONS}
    hostile_passed: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="serving-options-") as tmp:
            versions = install_extras(Path(tmp))
            for n in range(args.rounds):
                for name, flags in OPTIONS.items():
                    result = run_once(args.model, Path(tmp), flags, args.requests, hostile_set=n == 0)
                    runs[name].append(result["p50_ms"])
                    hostile_passed.setdefault(name, result.get("hostile_passed", ""))
                log(f"round {n + 1}: " + ", ".join(f"{label(name)} {v[-1]:.2f} ms" for name, v in runs.items()))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    base = statistics.median(runs[next(iter(OPTIONS))])
    options = {name: {"label": label(name), "flags": " ".join(OPTIONS[name]),
                      "p50_ms_median": round(statistics.median(v), 2), "p50_ms_runs": v,
                      "vs_app": round(statistics.median(v) / base, 2),
                      "hostile_passed": hostile_passed[name]} for name, v in runs.items()}
    save_json(OUT, {"machine": machine(), "model": Path(args.model).name, "requests_per_run": args.requests,
                    "rounds": args.rounds, "extras": versions, "options": options})
    for row in options.values():
        print(f"{row['label']:34} p50 {row['p50_ms_median']:.2f} ms ({row['vs_app']:.2f}x), "
              f"hostile set {row['hostile_passed']}")
    print(f"written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
