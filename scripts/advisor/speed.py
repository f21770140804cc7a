"""image-advisor as a user gets it, and beside dive: `make advisor-speed` -> results/advisor.json.

    python -m scripts.advisor.speed [--image bert-classifier:naive_image] [--runs 2]

1. A fresh virtualenv, `pip install ./image-advisor` (no extras): the seconds it takes, the
   virtualenv's size, and the seconds from the start of the install to the first report on
   the image (--no-trace --no-dive).
2. On the same image, in alternating rounds: `docker save IMAGE` into nothing (what the engine
   takes to hand the image out, which both tools wait for), `dive IMAGE` in CI mode (CI=true,
   its default rules) and image-advisor without the trace and dive, with the trace, and with
   both; wall seconds and the peak memory (max RSS) of each process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from image_advisor.diagnosis import DIVE

from scripts.infra.engine import EngineError, buildkit_client, docker, ensure_engine
from scripts.results import RESULTS, machine, save_json
from scripts.variants import ROOT

OUT = RESULTS / "advisor.json"


def log(msg: str) -> None:
    print(f"[advisor-speed] {msg}", file=sys.stderr, flush=True)


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds and peak RSS (bytes) of one process (the process only: dive and the trace's container are
    counted apart, dive as a process of its own when it is the command)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1) or (code == 1 and "dive" not in cmd[0]):  # dive --ci exits 1 when its rules fail
        raise EngineError(f"{' '.join(cmd[:3])} failed ({code}): {stderr[-800:]}")
    return {"seconds": round(seconds, 2), "max_rss_bytes": usage.ru_maxrss * 1024}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(tmp: Path, image: str) -> tuple[dict, Path]:
    venv = tmp / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT / "image-advisor")], check=True,
                   stderr=subprocess.DEVNULL)
    installed = time.perf_counter() - started
    tool = venv / "bin" / "image-advisor"
    timed([str(tool), image, "--no-trace", "--no-dive", "--out", str(tmp / "first")])
    first = time.perf_counter() - started
    size = du(venv)
    log(f"pip install ./image-advisor: {installed:.1f} s, venv {size / 1e6:.1f} MB, first report after {first:.1f} s")
    return ({"command": "python -m venv V && V/bin/pip install ./image-advisor", "install_seconds": round(installed, 1),
             "venv_bytes": size, "install_to_first_report_seconds": round(first, 1),
             "python": f"{sys.version_info.major}.{sys.version_info.minor}"}, tool)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="bert-classifier:naive_image")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    if DIVE is None:
        print("error: dive is not installed (make venv installs it)", file=sys.stderr)
        return 2
    try:
        ensure_engine()
        if docker("image", "inspect", args.image, check=False).returncode != 0:
            print(f"error: no image {args.image} (make build-all VARIANTS=naive_image builds it)", file=sys.stderr)
            return 2
        size = int(docker("image", "inspect", "--format", "{{.Size}}", args.image).stdout.strip())
        dive_version = subprocess.run([DIVE, "--version"], capture_output=True, text=True).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="advisor-speed-") as tmp_name:
            tmp = Path(tmp_name)
            fresh, tool = install(tmp, args.image)
            commands = {
                "docker save (the engine's export alone)": ([buildkit_client(), "save", args.image], None),
                "dive --ci": ([DIVE, args.image], {**os.environ, "CI": "true"}),
                "image-advisor --no-trace --no-dive": ([str(tool), args.image, "--no-trace", "--no-dive"], None),
                "image-advisor --no-dive (with the trace)": ([str(tool), args.image, "--no-dive"], None),
                # the fresh venv has no dive extra: the lab's dive, on PATH
                "image-advisor (trace and dive)": ([str(tool), args.image], {
                    **os.environ, "PATH": f"{Path(DIVE).parent}{os.pathsep}{os.environ['PATH']}"}),
            }
            runs: dict[str, list[dict]] = {name: [] for name in commands}
            for n in range(args.runs):
                for name, (cmd, env) in commands.items():
                    out = ["--out", str(tmp / f"r{n}")] if cmd[0] == str(tool) else []
                    runs[name].append(timed(cmd + out, env))
                    log(f"round {n + 1}: {name}: {runs[name][-1]['seconds']} s, "
                        f"{runs[name][-1]['max_rss_bytes'] / 1e6:.0f} MB")
    except (EngineError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = {name: {"seconds_median": round(statistics.median(r["seconds"] for r in rs), 2),
                   "seconds_runs": [r["seconds"] for r in rs],
                   "max_rss_bytes": max(r["max_rss_bytes"] for r in rs)} for name, rs in runs.items()}
    save_json(OUT, {"machine": machine(), "image": args.image, "image_bytes": size, "dive": dive_version,
                    "runs": args.runs, "fresh_install": fresh, "side_by_side": rows})
    for name, row in rows.items():
        print(f"{name:45s} {row['seconds_median']:7.1f} s  {row['max_rss_bytes'] / 1e6:6.0f} MB")
    print(f"written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
