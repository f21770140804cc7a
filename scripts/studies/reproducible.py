"""Two clean builds of the same sources, compared: the same image digest, or the files that differ.

    python -m scripts.studies.reproducible [--variants onnx_image]   # `make reproducible`
    python -m scripts.studies.reproducible --render                  # the table again from the file
    python -m scripts.studies.reproducible --compare A.tar B.tar     # two archives you made: every path that differs
    python -m scripts.studies.reproducible --keep DIR                # and keep each variant's two archives

Each variant is built twice from an empty build cache (--no-cache), each time from a fresh scratch
copy of the build context (new file times, as two CI checkouts have), with SOURCE_DATE_EPOCH set to
the project's fixed EPOCH. Where the client has buildx and the engine the containerd image store
(ENGINE=docker26-containerd), each build is written as an OCI layout with rewrite-timestamp=true:
BuildKit sets every file time newer than the epoch to the epoch, and the config's dates to it.
Elsewhere (Docker 20.10's BuildKit predates both) each build is tagged and `docker save`d.

The two archives are compared by their digest (the manifest's for an OCI layout, the config's, the
image ID, for a docker save); where they differ, the config's fields and then, layer by layer (by
diff ID), file by file: which paths differ and in what (content, mtime, mode, owner, link, only in one).
Results: results/reproducible.json, or results/reproducible-ENGINE.json under ENGINE=....
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from image_advisor.archive import blob, image_manifest, layer_tarfile, open_source
from image_advisor.errors import AdvisorError

from scripts.images.build import (
    BuildError,
    build_image,
    prepare,
    remove_image,
    rewritten_output,
    trim_build_cache,
)
from scripts.images.context import scratch_context
from scripts.infra.engine import EngineError, docker, finish_cleanly_on_sigterm, rewrites_timestamps
from scripts.results import RESULTS_ROOT, human_bytes, load_json, machine, print_table, save_json, save_rows
from scripts.studies.releases import blobs, moved
from scripts.variants import EPOCH, IMAGE_REPO, VARIANTS, Variant, select

# Both engines' results are kept (results/engines/, where ENGINE=... puts its files, is not committed).
ENGINE = os.environ.get("ENGINE", "").strip()
OUT = RESULTS_ROOT / (f"reproducible-{ENGINE}.json" if ENGINE else "reproducible.json")
SHOWN = 12  # paths kept per layer in the results file (the count is of all)


def log(msg: str) -> None:
    print(f"[reproducible] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Entry:
    """What a layer's tar says about one path."""

    kind: str
    mode: int
    owner: tuple[int, int]
    mtime: int
    content: str  # sha256 of a file's bytes, a link's target, '' otherwise


def entries(members: tarfile.TarFile) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for m in members:
        content = m.linkname if (m.issym() or m.islnk()) else ""
        if m.isfile():
            digest = hashlib.sha256()
            f = members.extractfile(m)
            assert f is not None
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(chunk)
            content = digest.hexdigest()
        found[m.name.lstrip("./").rstrip("/") or "/"] = Entry(
            m.type.decode(errors="replace"), m.mode, (m.uid, m.gid), int(m.mtime), content)
    return found


def what_differs(a: Entry | None, b: Entry | None) -> list[str]:
    if a is None or b is None:
        return ["only in one"]
    names = {"kind": "kind", "mode": "mode", "owner": "owner", "mtime": "mtime", "content": "content"}
    return [label for attr, label in names.items() if getattr(a, attr) != getattr(b, attr)]


def digest_of(path: Path) -> str:
    """The manifest digest of an OCI layout's one image; the config digest (image ID) of a docker save."""
    with open_source(path) as source:
        if source.exists("index.json") and not source.exists("manifest.json"):
            with source.open("index.json") as f:
                return json.load(f)["manifests"][0]["digest"]
        with source.open("manifest.json") as f:
            config = json.load(f)[0]["Config"]
        return "sha256:" + Path(config).name.removesuffix(".json")


def manifest_of(path: Path) -> dict | None:
    """The image manifest of an OCI layout (its blobs' sizes are what a push sends); None for a docker save."""
    with open_source(path) as source:
        if source.exists("manifest.json") or not source.exists("index.json"):
            return None
        with source.open("index.json") as f:
            digest = json.load(f)["manifests"][0]["digest"]
        with source.open(blob(digest)) as f:
            return json.load(f)


def config_differences(a: dict, b: dict) -> list[str]:
    """Which config fields differ: top-level keys, and history entries by index and field."""
    found = [k for k in sorted(set(a) | set(b)) if k != "history" and a.get(k) != b.get(k)]
    ha, hb = a.get("history", []), b.get("history", [])
    for i, (x, y) in enumerate(zip(ha, hb, strict=False)):
        found += [f"history[{i}].{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
    if len(ha) != len(hb):
        found.append("history (length)")
    return found


def layer_steps(config: dict) -> list[str]:
    """The instruction that wrote each layer, bottom first."""
    return [h.get("created_by", "") for h in config.get("history", []) if not h.get("empty_layer")]


def compare(a: Path, b: Path, shown: int | None = SHOWN) -> dict:
    """Same digest, or what differs: config fields, and per differing layer the paths (the first shown of
    them; None: all) and how."""
    digests = [digest_of(a), digest_of(b)]
    row: dict = {"same": digests[0] == digests[1], "digests": digests}
    manifests = [manifest_of(a), manifest_of(b)]
    if manifests[0] and manifests[1]:  # what pushing b moves to a registry (or a node) that holds a
        row["rebuild_moves_bytes"] = moved(blobs(manifests[1]), set(blobs(manifests[0])))[0]
    if row["same"]:
        return row
    with open_source(a) as sa, open_source(b) as sb:
        (ca, la), (cb, lb) = image_manifest(sa), image_manifest(sb)
        row["config"] = config_differences(ca, cb)
        ids_a, ids_b = ca.get("rootfs", {}).get("diff_ids", []), cb.get("rootfs", {}).get("diff_ids", [])
        steps = layer_steps(ca)
        layers = []
        for i, (ref_a, ref_b) in enumerate(zip(la, lb, strict=False)):
            if i < len(ids_a) and i < len(ids_b) and ids_a[i] == ids_b[i]:
                continue
            with layer_tarfile(sa, ref_a) as ta:
                ea = entries(ta)
            with layer_tarfile(sb, ref_b) as tb:
                eb = entries(tb)
            differing = sorted((p, what_differs(ea.get(p), eb.get(p))) for p in set(ea) | set(eb)
                               if ea.get(p) != eb.get(p))
            by_what = Counter(w for _, ws in differing for w in ws)
            layers.append({"index": i, "created_by": steps[i] if i < len(steps) else "", "files": len(differing),
                           "by_what": dict(sorted(by_what.items())),
                           "paths": [{"path": p, "what": w} for p, w in differing[:shown]]})
        if len(la) != len(lb):
            layers.append({"index": min(len(la), len(lb)), "created_by": "(layer count differs)", "files": 0,
                           "by_what": {}, "paths": []})
        row["layers"] = layers
    return row


def build_archive(v: Variant, ctx: Path, dest: Path, setup, rewrite: bool, label: str) -> float:
    """Build v from ctx with no cache into the archive dest; the build's seconds."""
    args = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    tag = f"{IMAGE_REPO}-scratch:reproducible-{v.name}"  # make clean-images removes these
    if rewrite:  # the same name for both: it is in the layout's index, never in the manifest compared
        return build_image(ctx / v.name / "Dockerfile", tag, setup, context=ctx, label=label, build_args=args,
                           output=rewritten_output(dest))
    seconds = build_image(ctx / v.name / "Dockerfile", tag, setup, context=ctx, label=label, build_args=args)
    try:
        docker("save", "-o", str(dest), tag, timeout=1800)
    finally:
        remove_image(tag)
    return seconds


def measure(variants: list[Variant], keep: Path | None = None) -> dict:
    setup = prepare("cpu", variants=variants)
    rewrite = rewrites_timestamps()
    log("OCI layouts with rewrite-timestamp=true" if rewrite else
        "this engine cannot rewrite timestamps (no buildx, or not the containerd store): docker save")
    rows: dict = {}
    with setup.wheels(), tempfile.TemporaryDirectory(prefix="reproducible-") as tmp:
        for v in variants:
            archives = []
            for n in "ab":
                ctx = scratch_context(Path(tmp) / f"ctx-{n}", [v])  # fresh file times each time
                archive = Path(tmp) / f"{v.name}-{n}.tar"
                seconds = build_archive(v, ctx, archive, setup, rewrite, f"{v.name} build {n}")
                log(f"{v.name}: build {n} in {seconds:.0f}s")
                archives.append(archive)
            rows[v.name] = compare(*archives)
            if keep:  # the two archives, for image-advisor or dive
                keep.mkdir(parents=True, exist_ok=True)
                for archive in archives:
                    shutil.copy(archive, keep / archive.name)
            verdict = "same digest" if rows[v.name]["same"] else \
                f"differ: {sum(layer['files'] for layer in rows[v.name]['layers'])} paths"
            log(f"{v.name}: {verdict}")
            for path in [*archives, *(Path(tmp) / f"ctx-{n}" for n in "ab")]:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            trim_build_cache()
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return {"machine": machine(), "engine": server, "measured_at": time.strftime("%Y-%m-%d"),
            "rewrite_timestamps": rewrite, "epoch": EPOCH, "variants": rows}


def summary(row: dict) -> str:
    if row["same"]:
        return "same digest"
    counts = Counter()
    for layer in row.get("layers", []):
        counts.update(layer["by_what"])
    parts = [f"{n} {w}" for w, n in counts.most_common()]
    return "differ: " + ", ".join(parts or ["config only"])


def step_name(created_by: str) -> str:
    """A history line as the Dockerfile says it, shortened: 'RUN /bin/sh -c pip install ... # buildkit'."""
    line = created_by.removesuffix(" # buildkit").replace("/bin/sh -c ", "")
    line = re.sub(r"^RUN \|\d+ (\S+=\S* )*", "RUN ", line)  # the build arguments BuildKit records
    return line if len(line) <= 60 else line[:57] + "..."


def in_order(rows: dict) -> list[tuple[str, dict]]:
    """The rows in the variants' order (a partial run merges its rows after the file's others)."""
    order = {v.name: i for i, v in enumerate(VARIANTS)}
    return sorted(rows.items(), key=lambda item: order.get(item[0], len(order)))


def markdown(data: dict) -> str:
    where = data.get("machine", {})
    how = ("OCI layouts written with rewrite-timestamp=true" if data.get("rewrite_timestamps")
           else "no timestamp rewriting: images tagged and docker save'd")
    lines = [f"_{where.get('cpu', '?')}, {where.get('cores', '?')} cores, Docker {data.get('engine', '?')}, {how}, "
             f"SOURCE_DATE_EPOCH={data.get('epoch', '?')}; measured {data.get('measured_at', '?')}_", "",
             "| variant | two clean builds | the second one's push moves | layers that differ | paths, first of them |",
             "|---|---|---|---|---|"]
    for name, row in in_order(data.get("variants", {})):
        moves = human_bytes(row["rebuild_moves_bytes"]) if "rebuild_moves_bytes" in row else "-"
        if row["same"]:
            lines.append(f"| {name} | same digest `{row['digests'][0][:19]}` | {moves} | - | - |")
            continue
        layers = "<br>".join(f"`{step_name(layer['created_by'])}`: {layer['files']} "
                             f"({', '.join(f'{n} {w}' for w, n in layer['by_what'].items())})"
                             for layer in row.get("layers", [])) or "none (the config only)"
        found = [p for layer in row.get("layers", []) for p in layer["paths"]]
        # Content first: a file time differs in every written file, a content difference is the finding.
        found.sort(key=lambda p: "content" not in p["what"])
        paths = "<br>".join(f"`{p['path']}` ({', '.join(p['what'])})" for p in found[:3])
        lines.append(f"| {name} | {summary(row)} | {moves} | {layers} | {paths or '-'} |")
    return "\n".join(lines) + "\n"


def table(data: dict) -> tuple[list[str], list[list[str]]]:
    return ["variant", "two clean builds"], [[name, summary(r)] for name, r in in_order(data.get("variants", {}))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=os.environ.get("VARIANTS", ""))
    ap.add_argument("--render", action="store_true", help="build nothing: print the table from the file")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep each variant's two archives in DIR")
    ap.add_argument("--archives", type=Path, metavar="DIR",
                    help="build nothing: compare again the archives --keep left in DIR, into the results file")
    ap.add_argument("--compare", nargs=2, metavar="ARCHIVE", type=Path, help="compare two archives; build nothing")
    args = ap.parse_args(argv)
    if args.compare:
        try:
            print(json.dumps(compare(*args.compare, shown=None), indent=1))
        except (AdvisorError, OSError, KeyError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.render:
        data = load_json(OUT)
    elif args.archives:
        data = load_json(OUT)
        for v in select(args.variants, "cpu"):
            pair = [args.archives / f"{v.name}-{n}.tar" for n in "ab"]
            if all(p.is_file() for p in pair):
                data.setdefault("variants", {})[v.name] = compare(*pair)
        save_json(OUT, data)
    else:
        finish_cleanly_on_sigterm()
        try:
            data = measure(select(args.variants, "cpu"), args.keep)
        except (EngineError, BuildError, AdvisorError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        data = save_rows(OUT, data, some=bool(args.variants.strip()))
    print_table(*table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
