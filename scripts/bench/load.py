"""Load and abuse a running service (`make load`): latency, errors, throughput, memory; hostile checks.

    python -m scripts.bench.load                                # the local service on model/, started here
    python -m scripts.bench.load --image bert-classifier:onnx_image
    python -m scripts.bench.load --url http://127.0.0.1:8000 --concurrency 8 --duration 20
    python -m scripts.bench.load --mix single=80,batch=20,max=0 --concurrency 8,32 --duration 60
    python -m scripts.bench.load --image bert-classifier:onnx_image --client wrk --env COALESCE=0

For each concurrency level: that many clients, each on its own keep-alive connection,
send requests drawn from the mix (single: one sentence; batch: 32 sentences; max: the
largest request MAX_TOKENS allows, 8 texts of 512 tokens) until --duration seconds or
--max-requests have passed. Prints and writes results/load.json: requests, errors,
p50/p95/p99, throughput, and the service's memory (RSS) idle before and after. Then the
hostile scenarios of scripts/traffic/hostile.py, each PASS or FAIL. Traffic goes only to the
127.0.0.1 address of the service this command started or was given. --client wrk drives the
levels with wrk (scripts/traffic/wrk.py) instead of Python threads; --env NAME=VALUE sets the
service's environment (COALESCE=0 APP_THREADS=2: one request per forward pass, as before batching).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from scripts.images.container import Container, container_memory
from scripts.infra.engine import EngineError, ensure_engine, finish_cleanly_on_sigterm
from scripts.results import RESULTS, human_bytes, machine, print_table, save_json
from scripts.traffic import heavy, hostile, wrk
from scripts.traffic.latency import SENTENCES, free_port, percentile
from scripts.variants import ROOT

MIX_BODIES = {
    "single": lambda i: {"text": SENTENCES[i % len(SENTENCES)]},
    "batch": lambda i: {"texts": [f"{SENTENCES[j % len(SENTENCES)]} ({i})" for j in range(32)]},
    "max": heavy.heaviest_body,
}


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in MIX_BODIES or not weight.strip().isdigit():
            raise SystemExit(f"--mix: give name=weight pairs from {', '.join(MIX_BODIES)}, got {part!r}")
        mix[name.strip()] = int(weight)
    if not any(mix.values()):
        raise SystemExit("--mix: at least one weight must be above 0")
    return mix


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise SystemExit(f"--env: give NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def mix_bodies(mix: dict[str, int], variants: int = 16) -> list[tuple[bytes, int]]:
    """The mix as fixed (body, weight) pairs for wrk: a few bodies of each kind, weight shared among them."""
    pairs = []
    for kind, weight in mix.items():
        count = variants if kind != "max" else 1
        pairs += [(json.dumps(MIX_BODIES[kind](i)).encode(), weight / count) for i in range(count) if weight]
    return pairs


@dataclass
class Level:
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = self.latencies_ms
        done = len(lat) + sum(self.errors.values())
        return {"concurrency": self.concurrency, "requests": done, "errors": sum(self.errors.values()),
                "error_kinds": self.errors, "seconds": round(self.seconds, 1),
                "throughput_rps": round(done / self.seconds, 1) if self.seconds else 0,
                **{f"p{q}_ms": round(percentile(lat, q / 100), 1) if lat else None for q in (50, 95, 99)}}


def run_level(host: str, port: int, concurrency: int, duration: float, max_requests: int,
              mix: dict[str, int]) -> Level:
    level = Level(concurrency)
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    budget = [max_requests]
    kinds, weights = list(mix), list(mix.values())

    def client(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        i = 0
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            body = json.dumps(MIX_BODIES[rng.choices(kinds, weights)[0]](i)).encode()
            i += 1
            started = time.perf_counter()
            try:
                conn.request("POST", "/classify", body, {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                error = None if resp.status == 200 else f"HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if error:
                    level.errors[error] = level.errors.get(error, 0) + 1
                else:
                    level.latencies_ms.append(elapsed)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 120)
    level.seconds = time.perf_counter() - started
    return level


class Target:
    """The service under load: its address, and how to read its memory."""

    def __init__(self, host: str, port: int, rss=None, close=None) -> None:
        self.host, self.port = host, port
        self.rss = rss or (lambda: None)
        self.close = close or (lambda: None)


def local_service(model: str, extra_env: dict[str, str]) -> Target:
    """gunicorn with app/gunicorn.conf.py on a free port; RSS is the master's plus its workers'."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": model, "PORT": str(port), **extra_env}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "app/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                             "--access-logfile", "/dev/null"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_ready("127.0.0.1", port, lambda: proc.poll() is None)

    def close() -> None:
        proc.terminate()
        proc.wait(timeout=30)

    return Target("127.0.0.1", port, rss=lambda: tree_rss(proc.pid), close=close)


def container_service(image: str, extra_env: dict[str, str]) -> Target:
    ensure_engine()
    container = Container(image, {"environment": extra_env} if extra_env else {}).start()
    container.wait_ready()
    host, port = urllib.parse.urlsplit(container.base_url).hostname, urllib.parse.urlsplit(container.base_url).port

    def rss() -> int:
        return container_memory(container.id)

    return Target(host, port, rss=rss, close=container.remove)


def tree_rss(pid: int) -> int:
    """RSS of a process and its children, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total


def wait_ready(host: str, port: int, alive, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise EngineError("the service exited before it was ready")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise EngineError(f"the service on {host}:{port} was not ready within {timeout:.0f}s")


def settle_rss(target: Target) -> int | None:
    time.sleep(2)  # let the last responses go out and the allocator settle
    return target.rss()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running service (its memory is then not measured)")
    where.add_argument("--image", help="start this image in a container and load it")
    ap.add_argument("--model", default=os.environ.get("MODEL_DIR", "model"), help="for the local service")
    ap.add_argument("--concurrency", default=(os.environ.get("CONCURRENCY") or "8,32"))
    ap.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or "60"))
    ap.add_argument("--max-requests", type=int, default=100_000, help="per level, whatever the duration")
    ap.add_argument("--mix", default=(os.environ.get("MIX") or "single=80,batch=20"))
    ap.add_argument("--client", choices=["python", "wrk"], default=(os.environ.get("CLIENT") or "python"),
                    help="what sends the load: Python threads (default) or wrk")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="the service's environment (repeatable), e.g. COALESCE=0")
    ap.add_argument("--no-hostile", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    mix = parse_mix(args.mix)
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        raise SystemExit(f"--concurrency: a comma list of whole numbers, got {args.concurrency!r}") from None
    if not 0 < args.duration <= 3600 or not all(0 < c <= 256 for c in levels):
        raise SystemExit("--duration must be in (0, 3600] s and each concurrency in 1..256")
    extra_env = parse_env(args.env + os.environ.get("LOAD_ENV", "").split())
    if extra_env and args.url:
        raise SystemExit("--env sets the environment of a service this command starts, not of --url")
    if args.client == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("--client wrk: wrk is not installed (Debian: apt-get install wrk)")
    try:
        if args.url:
            parts = urllib.parse.urlsplit(args.url)
            target, name = Target(parts.hostname or "127.0.0.1", parts.port or 80), args.url
        elif args.image:
            target, name = container_service(args.image, extra_env), args.image
        else:
            target, name = local_service(args.model, extra_env), f"local service on {args.model}"
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results: dict = {"machine": machine(), "target": name, "env": extra_env, "client": args.client, "mix": mix,
                     "duration_s": args.duration, "levels": []}
    try:
        for c in levels:
            before = settle_rss(target)
            print(f"[load] concurrency {c}, {args.duration:g}s, mix {args.mix} ...", file=sys.stderr, flush=True)
            if args.client == "wrk":
                summary = wrk.run(target.host, target.port, c, args.duration, mix_bodies(mix))
            else:
                summary = run_level(target.host, target.port, c, args.duration, args.max_requests, mix).summary()
            summary.update(rss_before_bytes=before, rss_after_bytes=settle_rss(target))
            results["levels"].append(summary)
        if not args.no_hostile:
            print("[load] hostile scenarios ...", file=sys.stderr, flush=True)
            outcomes = hostile.run_all(target.host, target.port)
            results["hostile"] = hostile.as_dicts(outcomes)
            results["rss_after_hostile_bytes"] = settle_rss(target)
    finally:
        target.close()
    save_json(args.out, results)
    mem = lambda v: human_bytes(v) if v is not None else "n/a"  # noqa: E731
    print_table(["concurrency", "requests", "errors", "p50", "p95", "p99", "req/s", "RSS before", "RSS after"],
                [[str(s["concurrency"]), str(s["requests"]), str(s["errors"]), f"{s['p50_ms']} ms", f"{s['p95_ms']} ms",
                  f"{s['p99_ms']} ms", str(s["throughput_rps"]), mem(s["rss_before_bytes"]), mem(s["rss_after_bytes"])]
                 for s in results["levels"]])
    if "hostile" in results:
        print()
        print_table(["hostile scenario", "result", "detail"],
                    [[o["scenario"], "PASS" if o["passed"] else "FAIL", o["detail"][:90]] for o in results["hostile"]])
    print(f"\n(written to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out})")
    failed = any(s["errors"] for s in results["levels"]) or not all(o["passed"] for o in results.get("hostile", []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
