"""Benchmark the embedded model on this machine (`make benchmark`).

    python -m scripts.bench.benchmark [--model model|model-onnx-int8] [--requests 200]

Prints and writes results/benchmark[-<model folder>].json:
  - import time of the backend's runtime (torch + transformers, or onnxruntime + tokenizers),
    and load time up to a first answer: first in a process (torch: includes transformers'
    lazy module imports) and a repeat;
  - p50/p95 latency of single-sentence POST /classify over HTTP on 127.0.0.1 against a real
    gunicorn (keep-alive connection; bounded by --requests and --max-seconds);
  - throughput of batches of 32 texts.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from app.backends import BACKENDS, backend_for, load_model
from scripts.results import RESULTS, machine, save_json
from scripts.traffic import latency
from scripts.traffic.latency import SENTENCES, free_port, post

ROOT = Path(__file__).resolve().parents[2]


def measure_load(model: str) -> dict:
    backend = backend_for(model)
    started = time.perf_counter()
    importlib.import_module(BACKENDS[backend])
    imported = time.perf_counter() - started

    def load_and_answer() -> float:
        started = time.perf_counter()
        load_model(model, device=device()).predict(["warm up"])
        return time.perf_counter() - started

    first, repeat = load_and_answer(), load_and_answer()
    return {"backend": backend, "import_seconds": round(imported, 3), "first_load_seconds": round(first, 3),
            "load_seconds": round(repeat, 3)}


def device() -> str:
    """DEVICE=cuda benchmarks on a GPU (a CUDA torch in the venv); the CPU otherwise."""
    return os.environ.get("DEVICE", "cpu").strip().lower() or "cpu"


@contextlib.contextmanager
def served(model: str, flags: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Iterator[int]:
    """app/ under gunicorn as the images run it (app/gunicorn.conf.py), serving model on a free port
    of 127.0.0.1 with any extra gunicorn flags and environment: the port once /readyz answers."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": model, "DEVICE": device(), **(env or {})}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
           "--access-logfile", "/dev/null", *flags]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, server).close()
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure_http(model: str, requests: int, batches: int, max_seconds: float) -> dict:
    with served(model) as port:
        single = latency.measure("127.0.0.1", port, requests, max_seconds)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        batch = [SENTENCES[i % len(SENTENCES)] + f" ({i})" for i in range(32)]
        deadline = time.monotonic() + max_seconds
        started, done = time.perf_counter(), 0
        while done < batches and time.monotonic() < deadline:
            post(conn, {"texts": batch})
            done += 1
        batch_seconds = time.perf_counter() - started
        return {**single, "batch_size": 32, "batches": done,
                "batch_texts_per_second": round(32 * done / batch_seconds, 1),
                "batch_ms": round(batch_seconds / done * 1000, 1)}


def wait_for(port: int, server: subprocess.Popen, timeout: float = 120) -> http.client.HTTPConnection:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read()[-2000:] if server.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return conn
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "model"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--out", type=Path, help="results file (default: results/benchmark[-<model folder>].json)")
    args = ap.parse_args(argv)
    if not Path(args.model, "config.json").exists():
        print(f"error: no model at {args.model}: run `make model`", file=sys.stderr)
        return 2
    load = measure_load(args.model)
    web = measure_http(args.model, args.requests, args.batches, args.max_seconds)
    result = {"machine": machine(), "model": Path(args.model).name, "device": device(), **load, **web}
    name = Path(args.model).name
    out = args.out or RESULTS / ("benchmark.json" if name == "model" else f"benchmark-{name}.json")
    save_json(out, result)
    print(f"backend                   : {load['backend']}")
    print(f"import the runtime        : {load['import_seconds']:.2f} s")
    print(f"load + first answer       : {load['first_load_seconds']:.2f} s first, {load['load_seconds']:.2f} s repeat")
    print(f"/classify, 1 sentence     : p50 {web['p50_ms']:.1f} ms, p95 {web['p95_ms']:.1f} ms"
          f"  over {web['requests']} requests on 127.0.0.1")
    print(f"/classify, batch of 32    : {web['batch_ms']:.0f} ms per batch, "
          f"{web['batch_texts_per_second']:.0f} texts/s")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
