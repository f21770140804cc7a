"""Benchmark the embedded model on this machine (`make benchmark`).

    python -m scripts.benchmark [--model model] [--requests 200]

Prints and writes results/benchmark.json:
  - import time of torch + transformers, and model load time (tokenizer + weights),
    first load in a process (includes transformers' lazy module imports) and a repeat load;
  - p50/p95 latency of single-sentence POST /classify over HTTP on 127.0.0.1 against a real
    gunicorn (keep-alive connection; bounded by --requests and --max-seconds);
  - throughput of batches of 32 texts.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from scripts import latency
from scripts.latency import SENTENCES, free_port, post
from scripts.results import RESULTS, machine, save_json

ROOT = Path(__file__).resolve().parent.parent


def measure_load(model: str) -> dict:
    started = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    imported = time.perf_counter() - started
    from app.classifier import Classifier

    first = Classifier(model, device="cpu").load_seconds
    repeat = Classifier(model, device="cpu").load_seconds
    return {"import_seconds": round(imported, 3), "first_load_seconds": round(first, 3),
            "load_seconds": round(repeat, 3)}


def measure_http(model: str, requests: int, batches: int, max_seconds: float) -> dict:
    port = free_port()
    env = {**os.environ, "MODEL_DIR": model, "DEVICE": "cpu"}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
           "--access-logfile", "/dev/null", "app.wsgi:app"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(port, server).close()
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
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    args = ap.parse_args(argv)
    if not Path(args.model, "config.json").exists():
        print(f"error: no model at {args.model}: run `make model`", file=sys.stderr)
        return 2
    load = measure_load(args.model)
    web = measure_http(args.model, args.requests, args.batches, args.max_seconds)
    result = {"machine": machine(), "model": args.model, **load, **web}
    save_json(RESULTS / "benchmark.json", result)
    print(f"import torch+transformers : {load['import_seconds']:.2f} s")
    print(f"model load (first/repeat) : {load['first_load_seconds']:.2f} s / {load['load_seconds']:.2f} s"
          "   (first includes transformers' lazy imports)")
    print(f"/classify, 1 sentence     : p50 {web['p50_ms']:.1f} ms, p95 {web['p95_ms']:.1f} ms"
          f"  over {web['requests']} requests on 127.0.0.1")
    print(f"/classify, batch of 32    : {web['batch_ms']:.0f} ms per batch, "
          f"{web['batch_texts_per_second']:.0f} texts/s")
    print(f"(written to {RESULTS / 'benchmark.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
