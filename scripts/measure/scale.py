"""Scale-out on a swarm of fresh nodes, per variant (`make scale`, VARIANTS= as elsewhere).

For each variant, a new swarm (scripts/infra/swarm.py: NODES engines, one registry) so no node
has seen any layer of it: the image is pushed, a service started at one replica (timed until
that replica answers /classify: pull plus start on one node), then scaled to one replica per
node (timed until every replica answers: the other nodes pull from the one registry at the
same time). Writes results/scale.json and results/scale.md.

Not measured yet: a rolling update under load and the loss of a node (issue #17).
"""

from __future__ import annotations

import argparse
import os
import sys

from docker.errors import ImageNotFound

from scripts.infra.engine import EngineError, ensure_engine, finish_cleanly_on_sigterm, sdk
from scripts.infra.swarm import swarm_cluster
from scripts.results import RESULTS, human_bytes, load_json, machine, print_table, save_json
from scripts.variants import select

SERVICE = "classifier"


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
        return {"image": variant.image, "nodes": nodes, "first_replica_seconds": round(first, 1),
                "scale_out_seconds": round(out, 1)}


def markdown(data: dict) -> str:
    rows = data["variants"]
    sizes = load_json(RESULTS / "compare.json").get("variants", {})
    lines = [f"_{data['machine'].get('cpu', '?')}, {data['machine'].get('cores', '?')} cores, "
             f"{data['machine'].get('measured_at', '?')[:10]}; swarm of {data['nodes']} fresh nodes_", "",
             "| variant | image size | first replica answers (service create) | "
             f"1 → {data['nodes']} replicas, all answering | single-node fresh node (make compare) |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        row = sizes.get(name, {})
        fresh = f"{row['fresh_node_seconds']:.1f} s" if row.get("fresh_node_seconds") else "-"
        lines.append(f"| {name} | {human_bytes(row['size_bytes']) if row.get('size_bytes') else '-'} | "
                     f"{r['first_replica_seconds']:.1f} s | {r['scale_out_seconds']:.1f} s | {fresh} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=int(os.environ.get("NODES", "3")))
    args = ap.parse_args(argv)
    finish_cleanly_on_sigterm()
    variants = select(os.environ.get("VARIANTS"))
    path = RESULTS / "scale.json"
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
    print_table(["variant", "first replica", f"1 -> {args.nodes}"],
                [[n, f"{r['first_replica_seconds']:.1f} s", f"{r['scale_out_seconds']:.1f} s"]
                 for n, r in data["variants"].items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
