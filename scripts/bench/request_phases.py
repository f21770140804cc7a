"""Where one sentence's /classify time goes, per variant: the model's own work against everything around it.

    python -m scripts.bench.request_phases [--variants onnx_image,layered_image] [--requests 300]
    make request-phases VARIANTS=onnx_image

Two parts, each with nothing else running:

  in a throw-away container of the image (its interpreter, libraries, model and settings), TIMER
  times the median of REQUESTS calls of each layer of the service, every layer containing the one
  before it (the forward pass on the model thread, as the service runs it):
      tokenizer           the backend's tokenizer on the sentence
      forward pass        tokenizing, input arrays, the runtime's pass, softmax (_predict_batch)
      model thread        model.predict: the hand-off to the model thread and back
      Flask               the WSGI app: JSON parsing, the checks, the answer's JSON (app/server.py)
      ASGI front          app/asgi.py: the hop from the event loop to an app thread
  from this machine, against the image running as the service (gunicorn, published port):
      HTTP                a /classify round trip over one keep-alive connection

Each phase is its layer's median less the median of the layer inside it, so the phases add up to
the HTTP median. A /healthz round trip (no model work, no app thread) is recorded beside them:
the floor that gunicorn's asyncio worker, TCP and the engine's port put under every request.
Writes results/request_phases.json (other variants' rows kept); make compare's latency rows are
the same HTTP round trip measured under compare's own sequence.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time

from scripts.images.container import Container
from scripts.infra.engine import PROJECT_LABEL, EngineError, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.results import RESULTS, load_json, machine, print_table, save_json
from scripts.traffic import latency
from scripts.variants import VARIANTS, Variant, select

RESULTS_JSON = RESULTS / "request_phases.json"
SENTENCE = "I love this movie"
PHASES = ("tokenizer", "forward pass", "model thread", "Flask", "ASGI front", "HTTP")
MODEL_WORK = ("tokenizer", "forward pass")  # what any server would pay for this model and runtime

# Run by the image's own Python, in /app (its WORKDIR), with the image's environment.
TIMER = r"""
import asyncio, json, statistics, sys, time
n, text = int(sys.argv[1]), sys.argv[2]
from app.asgi import app as front, run_wsgi, wsgi_environ
flask_app = front.wsgi_app
model = flask_app.extensions["model"]
body = json.dumps({"text": text}).encode()
scope = {"type": "http", "method": "POST", "path": "/classify", "raw_path": b"/classify", "query_string": b"",
         "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}

def median_ms(call):
    for _ in range(max(10, n // 10)):
        call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000

async def through_front():
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    async def send(message):
        pass
    times = []
    for i in range(n + max(10, n // 10)):
        started = time.perf_counter()
        await front(scope, receive, send)
        times.append(time.perf_counter() - started)
    return statistics.median(times[-n:]) * 1000

# The forward pass is timed where the service runs it, on the model thread: a pass from this thread too
# would give torch a second OpenMP team, whose spinning threads slow the first on a small machine.
passes = []
forward = model._predict_batch
def timed_pass(texts, release=False):
    started = time.perf_counter()
    try:
        return forward(texts, release)
    finally:
        passes.append(time.perf_counter() - started)
model._predict_batch = timed_pass
through_model_thread = median_ms(lambda: model.predict([text]))
model._predict_batch = forward
layers = {"tokenizer": median_ms(lambda: model._token_counts([text])),
          "forward pass": statistics.median(passes[-n:]) * 1000,
          "model thread": through_model_thread,
          "Flask": median_ms(lambda: run_wsgi(flask_app, wsgi_environ(scope, body))),
          "ASGI front": asyncio.run(through_front())}
print(json.dumps(layers))
"""


def in_image(image: str, requests: int, timeout: float = 300) -> dict[str, float]:
    """TIMER's medians (ms), each layer including the ones inside it, from a throw-away container."""
    client = sdk()
    python = client.images.get(image).attrs["Config"].get("Entrypoint") or ["python"]  # distroless: /venv/bin/python
    container = client.containers.create(image, entrypoint=python, command=["-c", TIMER, str(requests), SENTENCE],
                                        labels={PROJECT_LABEL: "scripts.bench.request_phases"})
    try:
        container.start()
        status = container.wait(timeout=timeout).get("StatusCode")
        lines = container.logs(stdout=True, stderr=False).decode(errors="replace").strip().splitlines()
        if status != 0 or not lines:
            tail = container.logs(tail=5).decode(errors="replace")
            raise EngineError(f"the request timer failed in {image} (exit {status}): {tail}")
        return json.loads(lines[-1])
    finally:
        container.remove(force=True)


def healthz_ms(base_url: str, requests: int) -> float:
    """Median /healthz round trip (ms) over one keep-alive connection, bounded in count."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times = []
    try:
        for _ in range(requests + max(10, requests // 10)):
            started = time.perf_counter()
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise EngineError(f"GET /healthz answered {resp.status}")
            times.append(time.perf_counter() - started)
    finally:
        conn.close()
    return statistics.median(times[-requests:]) * 1000


def phases(layers: dict[str, float]) -> dict[str, float]:
    """Each layer's median less the one inside it (ms), in PHASES order; a negative difference (noise) is 0."""
    out, inside = {}, 0.0
    for name in PHASES:
        out[name] = round(max(0.0, layers[name] - inside), 3)
        inside = max(inside, layers[name])
    return out


def measure(variant: Variant, requests: int) -> dict:
    layers = in_image(variant.image, requests)
    container = Container(variant.image).start()
    try:
        container.wait_ready()
        host, port = container.base_url.removeprefix("http://").rsplit(":", 1)
        layers["HTTP"] = latency.measure(host, int(port), requests, warmup=max(10, requests // 10),
                                         texts=[SENTENCE])["p50_ms"]  # the same round trip make compare times
        floor = healthz_ms(container.base_url, requests)
    finally:
        container.remove()
    split = phases(layers)
    model_work = sum(split[k] for k in MODEL_WORK)
    return {"phases_ms": split, "total_ms": round(sum(split.values()), 3), "model_work_ms": round(model_work, 3),
            "healthz_ms": round(floor, 3), "requests": requests}


def record(rows: dict[str, dict], path=RESULTS_JSON) -> dict:
    data = load_json(path) if path.exists() else {}
    data["machine"] = machine()
    data["sentence"] = SENTENCE
    data["variants"] = {v.name: r for v in VARIANTS if (r := {**data.get("variants", {}), **rows}.get(v.name))}
    save_json(path, data)
    return data


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}; medians of "
             f"single-sentence requests (\"{data.get('sentence', SENTENCE)}\")_", "",
             "| variant | " + " | ".join(PHASES) + " | total | the model's own work | /healthz round trip |",
             "|---" * (len(PHASES) + 4) + "|"]
    for v in VARIANTS:
        if row := data.get("variants", {}).get(v.name):
            p = row["phases_ms"]
            share = row["model_work_ms"] / row["total_ms"] if row["total_ms"] else 0
            lines.append(f"| {v.name} | " + " | ".join(f"{p[k]:.2f} ms" for k in PHASES) +
                         f" | {row['total_ms']:.2f} ms | {row['model_work_ms']:.2f} ms ({share:.0%}) |"
                         f" {row['healthz_ms']:.2f} ms |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=None, help="comma-separated (default: every variant)")
    ap.add_argument("--requests", type=int, default=300, help="timed calls per layer (default 300)")
    args = ap.parse_args(argv)
    if not 10 <= args.requests <= 5000:
        print(f"error: --requests must be between 10 and 5000, got {args.requests}", file=sys.stderr)
        return 2
    finish_cleanly_on_sigterm()
    rows: dict[str, dict] = {}
    try:
        variants = select(args.variants)
        ensure_engine()
        for v in variants:
            print(f"[request-phases] {v.name}: {args.requests} requests per layer ...", file=sys.stderr, flush=True)
            rows[v.name] = measure(v, args.requests)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = record(rows)
    print_table(["variant", *PHASES, "total", "healthz"],
                [[n, *(f"{r['phases_ms'][k]:.2f}" for k in PHASES), f"{r['total_ms']:.2f}", f"{r['healthz_ms']:.2f}"]
                 for n, r in rows.items()])
    print(f"wrote {RESULTS_JSON.relative_to(RESULTS.parent)} ({len(data['variants'])} variants)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
