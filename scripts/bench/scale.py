"""Scale-out on a swarm of fresh nodes, per variant (`make scale`, VARIANTS= as elsewhere).

For each variant, a new swarm (scripts/infra/swarm.py: NODES engines, one registry) so no node
has seen any layer of it: the image is pushed, a service started at one replica (timed until
that replica answers /classify: pull plus start on one node), then scaled to one replica per
node (timed until every replica answers: the other nodes pull from the one registry at the
same time). Then, under a bounded single-sentence load from this machine spread over every
node and failing over between them (scripts/traffic/spread.py):

- rolling update: to a new tag that differs by one small layer, one task at a time (stop-first,
  next task once the new one is healthy): requests sent, failed, retried, p99, update time;
- node loss: at one replica fewer than nodes (one node spare, which holds the image from the
  scale-out), a worker with a replica has its engine container removed: seconds until the
  spare node answers in its place, requests failed.

A replica that never answers ends the variant with the tasks' states, after a bounded wait.
Writes results/scale.json, results/scale.md and results/scale.png (`--render` redraws the last two
from the JSON without measuring).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from docker.errors import ImageNotFound

from scripts.infra.engine import EngineError, docker, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.infra.swarm import rollout_image, swarm_cluster
from scripts.reports.report import save_figure
from scripts.results import RESULTS, human_bytes, load_json, machine, print_table, save_json
from scripts.traffic.spread import SpreadLoad
from scripts.variants import select

SERVICE = "classifier"
SETTLE_SECONDS = 3  # steady traffic before and after each event, so the figures cover all of it


def measure(variant, nodes: int) -> dict:
    try:
        sdk().images.get(variant.image)
    except ImageNotFound:
        raise EngineError(f"no image {variant.image} (build it first: make build-all)") from None
    with swarm_cluster(nodes, log=lambda m: print(m, file=sys.stderr, flush=True)) as cluster:
        print(f"[scale] {variant.name}: pushing to the cluster's registry ...", file=sys.stderr, flush=True)
        ref = cluster.push(variant.image)
        cluster.deploy(SERVICE, ref, replicas=1)
        first = cluster.wait_answering(SERVICE, 1)
        print(f"[scale] {variant.name}: first replica answers after {first:.1f} s; scaling to {nodes} ...",
              file=sys.stderr, flush=True)
        out = cluster.scale(SERVICE, nodes)
        row = {"image": variant.image, "size_bytes": sdk().images.get(variant.image).attrs["Size"],
               "nodes": nodes, "first_replica_seconds": round(first, 1), "scale_out_seconds": round(out, 1),
               # the single node's figure for the same image, as make compare last measured it
               "fresh_node_seconds": load_json(RESULTS / "compare.json").get("variants", {})
               .get(variant.name, {}).get("fresh_node_seconds")}
        row["rolling_update"] = rolling_update(cluster, variant)
        if nodes >= 3:
            row["node_loss"] = node_loss(cluster, variant.name, nodes)
        return row


def rolling_update(cluster, variant) -> dict:
    log(f"[scale] {variant.name}: rolling update to a new tag under load ...")
    tag = rollout_image(variant.image)
    try:
        ref = cluster.push(tag)
    finally:
        docker("rmi", tag, check=False)
    with SpreadLoad([n.service_url for n in cluster.nodes]) as load:
        time.sleep(SETTLE_SECONDS)
        seconds = cluster.update(SERVICE, ref)
        cluster.wait_answering(SERVICE, len(cluster.nodes))
        time.sleep(SETTLE_SECONDS)
    return {"update_seconds": round(seconds, 1), **load.summary()}


def node_loss(cluster, name: str, nodes: int) -> dict:
    cluster.scale(SERVICE, nodes - 1)
    deadline = time.monotonic() + 120
    while len(cluster.answering()) != nodes - 1 and time.monotonic() < deadline:
        time.sleep(0.5)  # the scaled-away task drains
    workers = [n for n in cluster.nodes_running(SERVICE) if n is not cluster.manager]
    if not workers:
        raise EngineError(f"{SERVICE}: no worker runs a replica; tasks:\n{cluster.tasks(SERVICE)}")
    urls = [n.service_url for n in cluster.nodes]
    log(f"[scale] {name}: {nodes - 1} replicas, one node spare; removing {workers[0].container} under load ...")
    with SpreadLoad(urls) as load:
        time.sleep(SETTLE_SECONDS)
        cluster.kill(workers[0])
        seconds = cluster.wait_answering(SERVICE, nodes - 1)
        time.sleep(SETTLE_SECONDS)
    return {"recovery_seconds": round(seconds, 1), **load.summary()}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def markdown(data: dict) -> str:
    rows = data["variants"]
    lines = [f"_{data['machine'].get('cpu', '?')}, {data['machine'].get('cores', '?')} cores, "
             f"{data['machine'].get('measured_at', '?')[:10]}; swarm of {data['nodes']} fresh nodes_", "",
             "| variant | image size | first replica answers (service create) | "
             f"1 → {data['nodes']} replicas, all answering | single-node fresh node (make compare, the same day) |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        fresh = f"{r['fresh_node_seconds']:.1f} s" if r.get("fresh_node_seconds") else "-"
        lines.append(f"| {name} | {human_bytes(r['size_bytes']) if r.get('size_bytes') else '-'} | "
                     f"{r['first_replica_seconds']:.1f} s | {r['scale_out_seconds']:.1f} s | {fresh} |")
    events = [(n, r) for n, r in rows.items() if "rolling_update" in r]
    if events:
        lines += ["", "Under a single-sentence load from 4 clients spread over the nodes (a request a replica does not "
                  "answer goes to the next: _retried_; _failed_: no replica answered):", "",
                  "| variant | rolling update: time | requests | failed | retried | p99 | "
                  "node loss: back to full count | requests | failed | retried |", "|---" * 10 + "|"]
        for name, r in events:
            u, k = r["rolling_update"], r.get("node_loss")
            loss = (f"{k['recovery_seconds']:.1f} s | {k['requests']:,} | {k['failed']} | {k['retried']}" if k
                    else "- | - | - | -")
            lines.append(f"| {name} | {u['update_seconds']:.1f} s | {u['requests']:,} | {u['failed']} | "
                         f"{u['retried']} | {u['p99_ms']:.0f} ms | {loss} |")
    return "\n".join(lines) + "\n"


# The bars of the chart: (label, how to read the seconds from a variant's row).
CHART_BARS = (
    ("single node, fresh (make compare)", lambda r: r.get("fresh_node_seconds")),
    ("first replica", lambda r: r.get("first_replica_seconds")),
    ("1 → N replicas, all answering", lambda r: r.get("scale_out_seconds")),
    ("rolling update", lambda r: r.get("rolling_update", {}).get("update_seconds")),
    ("node loss: back to full count", lambda r: r.get("node_loss", {}).get("recovery_seconds")),
)


def chart(data: dict, path: Path) -> Path:
    """Grouped bars, one group per variant: the seconds each swarm event took beside the single node's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["variants"]
    names = list(rows)
    width = 0.8 / len(CHART_BARS)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (label, read) in enumerate(CHART_BARS):
        values = [read(rows[n]) or 0 for n in names]
        xs = [x + (i - (len(CHART_BARS) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(xs, values, width, label=label.replace("N", str(data["nodes"])))
        for bar, v in zip(bars, values, strict=True):
            if v:
                ax.annotate(f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=6)
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title(f"Docker Swarm of {data['nodes']} fresh nodes: seconds per event (lower is better)", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=int(os.environ.get("NODES") or "3"))
    ap.add_argument("--render", action="store_true", help="redraw scale.md and scale.png from scale.json only")
    args = ap.parse_args(argv)
    path = RESULTS / "scale.json"
    if args.render:
        data = load_json(path)
        (RESULTS / "scale.md").write_text(markdown(data))
        print(chart(data, RESULTS / "scale.png"))
        return 0
    finish_cleanly_on_sigterm()
    variants = select(os.environ.get("VARIANTS"))
    data = load_json(path) if path.exists() else {}
    data.update(machine=machine(), nodes=args.nodes)
    data.setdefault("variants", {})
    try:
        ensure_engine()
        for variant in variants:
            data["variants"][variant.name] = measure(variant, args.nodes)
            save_json(path, data)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (RESULTS / "scale.md").write_text(markdown(data))
    chart(data, RESULTS / "scale.png")
    print_table(["variant", "first replica", f"1 -> {args.nodes}"],
                [[n, f"{r['first_replica_seconds']:.1f} s", f"{r['scale_out_seconds']:.1f} s"]
                 for n, r in data["variants"].items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
