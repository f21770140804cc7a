"""Concurrent requests sharing forward passes, measured (`make batching`, VARIANTS= as elsewhere).

    python -m scripts.bench.batching                            # onnx_image and layered_image
    python -m scripts.bench.batching --variants onnx_image --duration 10

For each image, two containers one after the other: "one request per pass" (COALESCE=0
APP_THREADS=2: every request runs in forward passes of its own, no batching across requests) and
"batched" (the image's defaults: requests waiting for the model share its next pass, see
app/backends/__init__.py). Each gets single-sentence requests at 8 and at 32 connections from
two independent clients, wrk and make load's Python threads. Writes results/batching.json;
app/README.md's table is generated from it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scripts.bench.load import container_service, mix_bodies, run_level, settle_rss
from scripts.infra.engine import EngineError, finish_cleanly_on_sigterm
from scripts.results import RESULTS, human_bytes, machine, print_table, save_json
from scripts.traffic import wrk
from scripts.variants import select

MODES = {"one request per pass": {"COALESCE": "0", "APP_THREADS": "2"}, "batched": {}}
CLIENTS = ("wrk", "python")
MIX = {"single": 1}
DEFAULT_VARIANTS = "onnx_image,layered_image"


def measure_image(image: str, env: dict[str, str], levels: list[int], duration: float) -> list[dict]:
    target = container_service(image, env)
    rows = []
    try:
        run_level(target.host, target.port, 4, 2, 200, MIX)  # warm-up: every thread and the allocator
        for client in CLIENTS:
            for c in levels:
                print(f"[batching] {image} {env or 'defaults'}: {client}, {c} connections, {duration:g} s ...",
                      file=sys.stderr, flush=True)
                if client == "wrk":
                    row = wrk.run(target.host, target.port, c, duration, mix_bodies(MIX, variants=4))
                else:
                    row = run_level(target.host, target.port, c, duration, 100_000, MIX).summary()
                row.update(client=client, memory_after_bytes=settle_rss(target))
                rows.append(row)
    finally:
        target.close()
    return rows


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}; single sentences, "
             f"{data.get('duration_s', 0):.0f} s per level_", "",
             "| image | service | client | connections | req/s | p50 | p99 | errors | memory after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, modes in data.get("variants", {}).items():
        for mode, rows in modes.items():
            for r in rows:
                lines.append(f"| {name} | {mode} | {r['client']} | {r['concurrency']} | {r['throughput_rps']:.0f} | "
                             f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['errors']} | "
                             f"{human_bytes(r['memory_after_bytes']) if r.get('memory_after_bytes') else '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS") or DEFAULT_VARIANTS)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or "20"))
    ap.add_argument("--concurrency", default=(os.environ.get("CONCURRENCY") or "8,32"))
    ap.add_argument("--out", default=str(RESULTS / "batching.json"))
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    if not 0 < args.duration <= 300:
        raise SystemExit("--duration must be in (0, 300] s")
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        raise SystemExit(f"--concurrency: a comma list of whole numbers, got {args.concurrency!r}") from None
    variants = select(args.variants)
    data: dict = {"machine": machine(), "duration_s": args.duration, "variants": {}}
    try:
        for v in variants:
            data["variants"][v.name] = {mode: measure_image(v.image, env, levels, args.duration)
                                        for mode, env in MODES.items()}
    except (EngineError, wrk.WrkMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    save_json(Path(args.out), data)
    rows = [[n, mode, r["client"], str(r["concurrency"]), f"{r['throughput_rps']:.0f}", f"{r['p50_ms']} ms",
             f"{r['p99_ms']} ms", str(r["errors"])]
            for n, modes in data["variants"].items() for mode, rs in modes.items() for r in rs]
    print_table(["image", "service", "client", "connections", "req/s", "p50", "p99", "errors"], rows)
    return 1 if any(r[-1] != "0" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
