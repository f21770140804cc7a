"""This repository's onnx_image beside the servers readers would pick instead (`make peers`).

    python -m scripts.bench.peers [--peers fastapi,litserve] [--packagings default,slim] [--skip push,advisor]
    python -m scripts.bench.peers --render          # the table again from results/peers.json

The same int8 model and tokenizer behind FastAPI, LitServe, BentoML, KServe and Ray Serve
(peers/, listed in scripts/peers.py), each packaged the way its docs do it ("default") and the
way this repository does ("slim"). Every image is built cold, must answer the sample sentences
right (scripts/images/peer_images.py), then gets the harness make compare uses: size, push size
to a throwaway registry, first answer after `docker run` (median of START_RUNS=5) beside
`docker run` of the image's own Python doing nothing, p50/p95 of single sentences, wrk at 8 and
32 connections (single sentences, 20 s each) with the memory peak under it, idle memory before
that and memory after make compare's hostile-traffic set, and what image-advisor finds. Every request asks about one
sentence as {"texts": [s]}, which every server here accepts. Rows are saved after each image to
results/peers.partial.json; results/peers.json, .md and .png when the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from image_advisor.diagnosis import advise_image, examine, run_trace
from image_advisor.errors import AdvisorError
from image_advisor.pictures import stacked_chart
from image_advisor.trace import ProbeRequest

from scripts.advisor.profile import profile
from scripts.bench.memory_peak import PeakSampler
from scripts.images.build import BuildError, image_size, trim_build_cache
from scripts.images.container import POSITIVE, Container, container_memory
from scripts.images.peer_images import ONNX, WrongAnswer, build, check_answers, prepared, select, wait_first_answer
from scripts.infra import registry
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm, publish_address, sdk
from scripts.peers import Peer
from scripts.results import RESULTS, human_bytes, load_json, machine, markdown_table, print_table, save_json
from scripts.traffic import hostile, latency, wrk

OUT = RESULTS / "peers.json"
PARTIAL = RESULTS / "peers.partial.json"
SKIPPABLE = ("push", "advisor")
WRK_SECONDS = 20
LEVELS = (8, 32)
# onnx_image as the harness sees a peer: the same contract, at app/'s /classify.
THIS = Peer("onnx_image", "this repository (onnx_image)")


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def python_floor(image: str, runs: int) -> float:
    """Median seconds of `docker run` of the image's own Python doing nothing (the engine's floor)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        container = sdk().containers.run(image, ["-c", "pass"], entrypoint=["python"], detach=True, read_only=True)
        try:
            container.wait(timeout=60)
            times.append(time.perf_counter() - started)
        finally:
            container.remove(force=True)
    return statistics.median(times)


def first_answers(image: str, peer: Peer, options: dict, runs: int) -> list[float]:
    """Seconds from `docker run` to the first right answer, one fresh container per run."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        container = Container(image, options).start()
        try:
            times.append(round(wait_first_answer(container, peer, started), 2))
        finally:
            container.remove()
    return times


def serving(image: str, peer: Peer, options: dict) -> dict:
    """Latency, throughput under wrk, memory and the hostile set, on one running container."""
    container = Container(image, options).start()
    try:
        wait_first_answer(container, peer, time.perf_counter())
        check_answers(container.base_url, peer)
        host, port = container.base_url.removeprefix("http://").split(":")
        figures = latency.measure(host, int(port), requests=200, max_seconds=120, path=peer.path, field=peer.field)
        time.sleep(2)  # warmed up by the latency run; settled, as make compare waits before reading memory
        figures["idle_memory_bytes"] = container_memory(container.id)
        bodies = [(json.dumps({peer.field: [s]}).encode(), 1.0) for s in latency.SENTENCES]
        with PeakSampler(container.id, container.host) as under_load:
            for c in LEVELS:
                row = wrk.run(host, int(port), c, WRK_SECONDS, bodies, path=peer.path)
                figures.update({f"rps_c{c}": row["throughput_rps"], f"p99_c{c}_ms": row["p99_ms"],
                                f"errors_c{c}": row["errors"]})
        figures["memory_load_peak_bytes"] = under_load.peak
        outcomes = hostile.run_all(host, int(port), path=peer.path, probe=peer.probe)
        figures["hostile_passed"] = f"{sum(o.passed for o in outcomes)}/{len(outcomes)}"
        figures["hostile_status_right"] = f"{sum(map(status_right, outcomes))}/{len(outcomes)}"
        figures["hostile_failed"] = [o.scenario for o in outcomes if not o.passed]
        time.sleep(2)
        figures["memory_after_hostile_bytes"] = container_memory(container.id)
        if not container.running():
            raise EngineError(f"{image} died under the hostile set:\n{container.logs()}")
        return figures
    finally:
        container.remove()


# The status each bad request should get, by scenario (built once: the oversized bodies are megabytes).
WANTED_STATUS = {name: status for name, _, status in hostile.bad_requests()}


def status_right(outcome: hostile.Outcome) -> bool:
    """Passed, or a bad request refused with the right status in another shape than app/'s JSON."""
    want = WANTED_STATUS.get(outcome.scenario)
    return outcome.passed or (want is not None and outcome.detail.startswith(f"HTTP {want} "))


def pushed(image: str, infra: registry.Infra) -> int:
    tag = image.replace(":", "-").replace("/", "-")
    ref = infra.push_ref("peers", tag)
    docker("tag", image, ref)
    try:
        docker("push", ref, timeout=1800)
        return registry.pushed_bytes(infra.registry, "peers", tag)[0]
    finally:
        docker("rmi", ref, check=False)


def advice(image: str, peer: Peer) -> dict:
    """image-advisor on the image as on any foreign one: its bytes, and a trace of it answering one request."""
    os.environ.setdefault("IMAGE_ADVISOR_ADDRESS", publish_address())
    judged_alike = profile(None, ours=False)  # onnx_image too: no knowledge of this repository's service
    probe = [ProbeRequest("POST", peer.path, json.dumps({"texts": [POSITIVE]}).encode())]
    try:
        examined = examine(image, judged_alike, with_dive=False)
        trace, bytecode = run_trace(image, probe, examined)
        found = advise_image(examined, trace, bytecode, judged_alike)
    except AdvisorError as exc:
        raise EngineError(f"image-advisor on {image}: {exc}") from None
    return {"advisor_findings": len(found["findings"]), "advisor_addressable_bytes": found["addressable_bytes"],
            "advisor_rules": [f["rule"] for f in found["findings"]], "advisor_traced": trace.ok,
            "composition": examined.report["composition"]}


def measure_image(image: str, peer: Peer, options: dict, runs: int, skip: set[str],
                  infra: registry.Infra | None) -> dict:
    log(f"{image}: first answer x{runs}, and its Python doing nothing x{runs} ...")
    starts = first_answers(image, peer, options, runs)
    floor = python_floor(image, runs)
    figures = {"image": image, "server": peer.title, "size_bytes": image_size(image),
               "first_answer_seconds": round(statistics.median(starts), 2), "first_answer_runs": starts,
               "python_floor_seconds": round(floor, 2),
               "first_answer_over_floor": round(statistics.median(starts) / floor, 2)}
    log(f"{image}: latency, wrk at {' and '.join(map(str, LEVELS))} connections, the hostile set ...")
    figures.update(serving(image, peer, options))
    if infra:
        figures["push_bytes"] = pushed(image, infra)
    if "advisor" not in skip:
        log(f"{image}: image-advisor ...")
        figures.update(advice(image, peer))
    figures["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return figures


# (column, key, how to print it, smaller is better?)
ROWS = (
    ("image size", "size_bytes", human_bytes, True),
    ("push size", "push_bytes", human_bytes, True),
    ("first answer after docker run", "first_answer_seconds", lambda v: f"{v:.2f} s", True),
    ("docker run of its Python doing nothing", "python_floor_seconds", lambda v: f"{v:.2f} s", True),
    ("first answer / that floor", "first_answer_over_floor", lambda v: f"{v:.2f}x", True),
    ("idle memory", "idle_memory_bytes", human_bytes, True),
    ("memory under load (peak)", "memory_load_peak_bytes", human_bytes, True),
    ("memory after the hostile set", "memory_after_hostile_bytes", human_bytes, True),
    ("p50, one sentence", "p50_ms", lambda v: f"{v:.1f} ms", True),
    ("p95, one sentence", "p95_ms", lambda v: f"{v:.1f} ms", True),
    ("req/s, 8 connections", "rps_c8", lambda v: f"{v:.0f}", False),
    ("p99, 8 connections", "p99_c8_ms", lambda v: f"{v:.1f} ms", True),
    ("req/s, 32 connections", "rps_c32", lambda v: f"{v:.0f}", False),
    ("p99, 32 connections", "p99_c32_ms", lambda v: f"{v:.1f} ms", True),
    ("hostile set passed", "hostile_passed", str, None),
    ("... right status, any body", "hostile_status_right", str, None),
    ("advisor: findings, addressable", "advisor_findings", None, None),
)


def cell(row: dict, key: str, fmt) -> str:
    if key == "advisor_findings":
        return f"{row[key]}, {human_bytes(row['advisor_addressable_bytes'])}" if key in row else "-"
    return fmt(row[key]) if row.get(key) is not None else "-"


def ratio(images: dict, key: str, smaller: bool) -> str:
    """onnx_image against the best peer on one row: >= 1.0x means onnx_image is at least as good."""
    ours = images.get(THIS.name, {}).get(key)
    theirs = [r[key] for name, r in images.items() if name != THIS.name and r.get(key) is not None]
    if ours is None or not theirs or not ours:
        return "-"
    best = min(theirs) if smaller else max(theirs)
    return f"{best / ours if smaller else ours / best:.2f}x"


def table(data: dict) -> tuple[list[str], list[list[str]]]:
    images = data["images"]
    header = ["", *images, "onnx_image vs best peer"]
    rows = []
    for label, key, fmt, smaller in ROWS:
        rows.append([label, *(cell(r, key, fmt) for r in images.values()),
                     ratio(images, key, smaller) if smaller is not None else "-"])
    return header, rows


def markdown(data: dict) -> str:
    m = data.get("machine", {})
    header, rows = table(data)
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}: one `make peers` "
             f"run; first answers are medians of {data.get('start_runs', '?')}; wrk {WRK_SECONDS} s per level_", "",
             *markdown_table(header, rows)]
    return "\n".join(lines) + "\n"


def chart(data: dict, path: Path) -> Path | None:
    """Where each image's bytes are (image-advisor's categories), every server and packaging."""
    bars = {name: r["composition"] for name, r in data["images"].items() if r.get("composition")}
    return stacked_chart(bars, path, title="The same model behind each server: where the bytes are") if bars else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=os.environ.get("PEERS", ""))
    ap.add_argument("--packagings", default=os.environ.get("PACKAGINGS", ""))
    ap.add_argument("--skip", default="", help=f"comma list of: {', '.join(SKIPPABLE)}")
    ap.add_argument("--render", action="store_true", help="measure nothing: print the table from results/peers.json")
    args = ap.parse_args(argv)
    if args.render:
        data = load_json(OUT)
        if not data.get("images"):
            print(f"error: no measurements in {OUT}; run make peers", file=sys.stderr)
            return 2
        print_table(*table(data))
        return 0
    skip = {s for s in args.skip.replace(",", " ").split() if s}
    if skip - set(SKIPPABLE):
        print(f"error: unknown step(s) {sorted(skip - set(SKIPPABLE))}; choose from {', '.join(SKIPPABLE)}",
              file=sys.stderr)
        return 2
    runs = int(os.environ.get("START_RUNS") or 5)
    chosen = select(args.peers, args.packagings)
    if shutil.which("wrk") is None:
        print("error: make peers drives its load with wrk, which is not installed (Debian: apt-get install wrk)",
              file=sys.stderr)
        return 2
    finish_cleanly_on_sigterm()
    images: dict[str, dict] = {}
    data = {"machine": machine(), "start_runs": runs, "wrk_seconds": WRK_SECONDS, "images": images}
    try:
        setup = prepared()
        with contextlib.ExitStack() as stack:
            infra = None if "push" in skip else stack.enter_context(registry.measurement_infra())
            images[THIS.name] = measure_image(ONNX.image, THIS, {}, runs, skip, infra)
            save_json(PARTIAL, data)
            for peer, packaging in chosen:
                image = peer.image(packaging)
                log(f"{image}: building it cold ...")
                built = build(peer, packaging, setup)
                figures = measure_image(image, peer, peer.run_options(packaging), runs, skip, infra)
                images[f"{peer.name}-{packaging}"] = {**figures, "packaging": packaging,
                                                        "build_seconds": built["build_seconds"]}
                save_json(PARTIAL, data)
                trim_build_cache()
    except (EngineError, BuildError, WrongAnswer, wrk.WrkMissing) as exc:
        print(f"error: {exc}\n(rows measured so far: {PARTIAL})", file=sys.stderr)
        return 1
    save_json(OUT, data)
    PARTIAL.unlink(missing_ok=True)
    (RESULTS / "peers.md").write_text(markdown(data))
    chart(data, RESULTS / "peers.png")
    print_table(*table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
