"""Who else uses the cores while the model runs, tried on onnx_image (`make runtime-threads`).

    python -m scripts.bench.runtime_threads [--image bert-classifier:onnx_image] [--rounds 6] [--seconds 8]

One forward pass runs at a time (app/backends) and ONNX Runtime's threads take every core for it.
Two other things may run on those cores: the tokenizer's own thread pool (Rust `tokenizers`
splits encode_batch over one unless TOKENIZERS_PARALLELISM=false, which app/ sets) and the
runtime's threads busy-waiting between the parallel parts of a pass (ONNX Runtime's default;
app/ turns it off, INTRA_OP_SPINNING=1 turns it on). This runs the image three ways: as app/
ships, and with each of the two library defaults back, one container each, measured in turn round after round
(single-sentence p50/p95 over one keep-alive connection, then wrk at 8 and 32 connections, as
`make peers` measures them); it keeps the median of the rounds, and of each round's ratio to app/
as it ships (the machine drifts over a run). -> results/runtime-threads.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from scripts.images.container import Container
from scripts.images.peer_images import WrongAnswer, check_answers, wait_first_answer
from scripts.infra.engine import EngineError, docker, ensure_engine, finish_cleanly_on_sigterm
from scripts.peers import Peer
from scripts.results import RESULTS, machine, save_json
from scripts.traffic import latency, wrk

OUT = RESULTS / "runtime-threads.json"
LEVELS = (8, 32)
# name -> (what it is, the environment the container gets); "app" is app/ as it ships.
OPTIONS = {
    "app": ("as app/ ships: the tokenizer on the calling thread, the runtime's threads sleep between parts", {}),
    "tokenizer-pool": ("the tokenizer's own thread pool (its library's default)", {"TOKENIZERS_PARALLELISM": "true"}),
    "spinning": ("the runtime's threads spin between parts (its library's default)", {"INTRA_OP_SPINNING": "1"}),
}
FIGURES = ("p50_ms", "p95_ms", *(f"{k}_c{c}" for c in LEVELS for k in ("rps", "p99")))
SERVICE = Peer("onnx_image", "this repository (onnx_image)")


def log(msg: str) -> None:
    print(f"[runtime-threads] {msg}", file=sys.stderr, flush=True)


def one_round(container: Container, seconds: float) -> dict:
    host, port = container.base_url.removeprefix("http://").split(":")
    figures = latency.measure(host, int(port), requests=200, max_seconds=120, field="texts")
    out = {"p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"]}
    bodies = [(json.dumps({"texts": [s]}).encode(), 1.0) for s in latency.SENTENCES]
    for c in LEVELS:
        row = wrk.run(host, int(port), c, seconds, bodies)
        if row["errors"]:
            raise EngineError(f"{row['errors']} errors at {c} connections")
        out[f"rps_c{c}"], out[f"p99_c{c}"] = row["throughput_rps"], row["p99_ms"]
    return out


def summarize(runs: list[dict]) -> dict:
    """The median of the rounds for each figure, and the rounds themselves."""
    return {**{k: round(statistics.median(r[k] for r in runs), 2) for k in FIGURES}, "rounds": runs}


def ratios(options: dict) -> None:
    """Each option against app/ as it ships, round by round (the machine drifts over a run; each round
    measures all three within a minute): the median of the rounds' ratios. Times: lower is better;
    requests a second: higher."""
    base = options["app"]["rounds"]
    for figures in options.values():
        figures["vs_app"] = {k: round(statistics.median(r[k] / b[k] for r, b in zip(figures["rounds"], base,
                                                                                      strict=True)), 2)
                             for k in FIGURES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="bert-classifier:onnx_image")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=8, help="wrk's seconds per level and round")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    containers: dict[str, Container] = {}
    try:
        ensure_engine()
        if docker("image", "inspect", args.image, check=False).returncode != 0:
            print(f"error: no image {args.image} (make build VARIANT=onnx_image)", file=sys.stderr)
            return 2
        for name, (_, env) in OPTIONS.items():
            containers[name] = Container(args.image, {"environment": env}).start()
            wait_first_answer(containers[name], SERVICE, time.perf_counter())
            check_answers(containers[name].base_url, SERVICE)
        runs: dict[str, list[dict]] = {name: [] for name in OPTIONS}
        for n in range(1, args.rounds + 1):
            for name, container in containers.items():
                log(f"round {n}/{args.rounds}: {name} ...")
                runs[name].append(one_round(container, args.seconds))
    except (EngineError, WrongAnswer, wrk.WrkMissing, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for container in containers.values():
            container.remove()
    options = {name: {"label": OPTIONS[name][0], "env": OPTIONS[name][1], **summarize(runs[name])}
               for name in OPTIONS}
    ratios(options)
    save_json(OUT, {"machine": machine(), "image": args.image, "rounds": args.rounds, "wrk_seconds": args.seconds,
                    "requests": 200, "options": options})
    for name, f in options.items():
        print(f"{name:15s} p50 {f['p50_ms']:.2f} ms  p95 {f['p95_ms']:.2f} ms  "
                + "  ".join(f"c{c} {f[f'rps_c{c}']:.0f} req/s p99 {f[f'p99_c{c}']:.1f} ms" for c in LEVELS)
              + f"  (against app/, round by round: p50 {f['vs_app']['p50_ms']}x, "
              f"c32 {f['vs_app']['rps_c32']}x req/s)")
    log(f"wrote {OUT.relative_to(RESULTS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
