"""The memory a replica needs, measured in its container: idle, the peak under the load mix, the peak
during the heaviest request the limits allow; and that request under a container memory limit.

    python -m scripts.bench.memory_peak [--variants onnx_image,layered_image] [--limit-mib N] [--batch-tokens N]

Idle memory is not the figure to size a container by: a request's activations come on top. The
peaks here are `docker stats`' figure (usage less inactive page cache) sampled through the engine's
stats stream, about once a second, while the traffic runs; the heaviest request is sent six times
in a row so that its passes span several samples. make compare records the same rows.
Writes results/memory.json (results/memory-batch-tokens-N.json with --batch-tokens N: the same
run with another BATCH_TOKENS, e.g. one so large that the heaviest request is one pass).
"""

from __future__ import annotations

import argparse
import threading
import time

from scripts.bench import load
from scripts.images.container import Container, container_memory, memory_in_use
from scripts.images.smoke import under_limit
from scripts.infra.engine import EngineError, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.results import RESULTS, human_bytes, machine, print_table, save_json
from scripts.traffic import heavy
from scripts.variants import Variant, select

MEMORY_JSON = RESULTS / "memory.json"
LOAD_MIX = {"single": 80, "batch": 20}


class PeakSampler:
    """Highest memory use of a container while the block runs, from the engine's stats stream."""

    def __init__(self, container_id: str, host: str | None = None) -> None:
        self.container = sdk(host).containers.get(container_id)
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for stats in self.container.stats(stream=True, decode=True):
                if stats.get("memory_stats", {}).get("usage"):
                    self.peak = max(self.peak, memory_in_use(stats))
                    self.samples += 1
                if self._stop.is_set():
                    return
        except Exception:  # the container went away: the peak so far stands
            return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(1.2)  # one more sample after the traffic, so the last second is seen
        self._stop.set()
        self._thread.join(timeout=5)


def load_and_heavy_peaks(container: Container, load_seconds: float) -> dict:
    """Peaks under the load mix (8 clients) and during the heaviest request, on a running container."""
    host, port = container.base_url.removeprefix("http://").split(":")
    with PeakSampler(container.id, container.host) as under_load:
        level = load.run_level(host, int(port), 8, load_seconds, 100_000, LOAD_MIX)
    with PeakSampler(container.id, container.host) as under_heavy:
        statuses = heavy.heaviest(host, int(port))
    return {"memory_load_peak_bytes": under_load.peak, "memory_heavy_peak_bytes": under_heavy.peak,
            "memory_load": level.summary(), "heaviest_statuses": statuses}


def measure(variant: Variant, load_seconds: float = 20, environment: dict | None = None) -> dict:
    container = Container(variant.image, {"environment": environment or {}}).start()
    try:
        container.wait_ready()
        time.sleep(2)
        idle = container_memory(container.id)
        return {"idle_memory_bytes": idle, **load_and_heavy_peaks(container, load_seconds)}
    finally:
        container.remove()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="onnx_image,layered_image")
    ap.add_argument("--seconds", type=float, default=20, help="load phase length (default 20)")
    ap.add_argument("--batch-tokens", type=int, default=0, help="run the service with this BATCH_TOKENS")
    ap.add_argument("--limit-mib", type=int, default=0,
                    help="also run the heaviest request under this container limit (default: the variant's)")
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    try:
        ensure_engine()
        variants = select(args.variants)
        env = {"BATCH_TOKENS": str(args.batch_tokens)} if args.batch_tokens else {}
        rows, out = [], {"machine": machine(), "environment": env, "variants": {}}
        for v in variants:
            figures = measure(v, args.seconds, env)
            figures["under_limit"] = under_limit(v, args.limit_mib or v.memory_limit_mib, env)
            out["variants"][v.name] = figures
            lim = figures["under_limit"]
            peaks = [human_bytes(figures[k]) for k in ("idle_memory_bytes", "memory_load_peak_bytes",
                                                       "memory_heavy_peak_bytes")]
            rows.append([v.name, *peaks, f"{lim['limit_mib']} MiB", " ".join(map(str, lim["heaviest_statuses"])),
                         str(lim["worker_restarts"])])
    except EngineError as exc:
        raise SystemExit(f"memory_peak: {exc}") from None
    save_json(MEMORY_JSON.with_name(f"memory-batch-tokens-{args.batch_tokens}.json") if args.batch_tokens
              else MEMORY_JSON, out)
    print_table(["variant", "idle", "peak under load", "peak heaviest", "limit", "heaviest x3 under it",
                 "workers killed"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
