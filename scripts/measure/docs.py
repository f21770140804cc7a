"""Figures in the docs come from results files: blocks between markers, rendered here.

    <!-- begin NAME -->  ...generated...  <!-- end NAME -->

    python -m scripts.measure.docs            # rewrite every block in DOCS from results/
    python -m scripts.measure.docs --check    # exit 1 naming each stale block (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path

from scripts.measure.report import METRICS
from scripts.results import RESULTS, human_bytes
from scripts.variants import BY_NAME, MEMORY_LIMIT_MIB, ROOT, VARIANTS

BLOCK = re.compile(r"(<!-- begin (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)", re.S)


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else {}


def memory_table() -> str:
    """app/README.md: what a replica needs, per backend, with and without passes of BATCH_TOKENS."""
    sliced = _load("memory.json").get("variants", {})
    whole = _load("memory-batch-tokens-100000.json").get("variants", {})
    names = [n for n in sliced if n in BY_NAME]
    rows = [("idle", lambda n: human_bytes(sliced[n]["idle_memory_bytes"])),
            ("peak under load (8 clients: 80 % one sentence, 20 % batches of 32)",
             lambda n: human_bytes(sliced[n]["memory_load_peak_bytes"])),
            ("peak, heaviest allowed request (8 x 512 tokens) in one pass (`BATCH_TOKENS=100000`)",
             lambda n: human_bytes(whole[n]["memory_heavy_peak_bytes"]) if n in whole else "-"),
            ("heaviest request, passes of at most 512 tokens (the default)",
             lambda n: human_bytes(sliced[n]["memory_heavy_peak_bytes"])),
            ("documented limit (`MEMORY_LIMIT_MIB` in scripts/variants.py)",
             lambda n: f"{MEMORY_LIMIT_MIB[BY_NAME[n].runtime]} MiB"),
            ("heaviest request x3 under that limit, in one pass",
             lambda n: " ".join(map(str, whole[n]["under_limit"]["heaviest_statuses"])) if n in whole else "-"),
            ("heaviest request x3 under that limit, default passes",
             lambda n: " ".join(map(str, sliced[n]["under_limit"]["heaviest_statuses"])))]
    lines = ["| | " + " | ".join(f"{n} ({BY_NAME[n].runtime})" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cell(n) for n in names) + " |" for label, cell in rows]
    return "\n".join(lines) + "\n"


# What a variant README shows: what it bought and what it costs, against the variant before it.
VARIANT_METRICS = ("size_bytes", "push_bytes", "pull_seconds", "fresh_node_seconds", "build_seconds",
                   "rebuild_app_seconds", "cold_start_seconds", "idle_memory_bytes", "memory_load_peak_bytes",
                   "p50_ms", "os_packages")


def variant_figures(name: str) -> str:
    """A variant's rows from results/compare.json beside its predecessor's, with the ratio."""
    rows = _load("compare.json").get("variants", {})
    variant = BY_NAME[name]
    metrics = {m.key: m for m in METRICS}
    this, before = rows.get(name, {}), rows.get(variant.previous, {})
    head = f"| | {variant.previous} | {name} | change |\n|---|---|---|---|" if variant.previous else \
        f"| | {name} |\n|---|---|"
    lines = [head]
    for key in VARIANT_METRICS:
        m = metrics[key]
        if not variant.previous:
            lines.append(f"| {m.label} | {m.format(this.get(key))} |")
            continue
        a, b = before.get(key), this.get(key)
        change = f"{b / a:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else ""
        lines.append(f"| {m.label} | {m.format(a)} | {m.format(b)} | {change} |")
    return "\n".join(lines) + "\n"


def dockerfile_diff(name: str) -> str:
    """The variant's Dockerfile instructions against its predecessor's (comments and blank lines left out)."""
    variant = BY_NAME[name]

    def instructions(v) -> list[str]:
        return [line for line in v.dockerfile.read_text().splitlines() if line.strip() and not line.startswith("#")]

    diff = difflib.unified_diff(instructions(BY_NAME[variant.previous]), instructions(variant),
                                f"{variant.previous}/Dockerfile", f"{name}/Dockerfile", n=0, lineterm="")
    return "```diff\n" + "\n".join(line for line in diff if not line.startswith("@@")) + "\n```\n"


def benchmark_table() -> str:
    """app/README.md: make benchmark for both backends (results/benchmark*.json)."""
    runs = [r for r in (_load("benchmark.json"), _load("benchmark-model-onnx-int8.json")) if r]
    if not runs:
        return "(no results/benchmark*.json: run make benchmark)\n"
    machine = runs[0].get("machine", {})
    lines = [f"_{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
             f"{machine.get('measured_at', '?')[:10]}_", "",
             "| | " + " | ".join(f"{r['backend']} (`{r['model']}`)" for r in runs) + " |",
             "|---|" + "---|" * len(runs)]
    rows = [("import the runtime", lambda r: f"{r['import_seconds']:.2f} s"),
            ("load + first answer, first / repeat",
             lambda r: f"{r['first_load_seconds']:.2f} s / {r['load_seconds']:.2f} s"),
            ("/classify, 1 sentence, p50 / p95", lambda r: f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms"),
            ("/classify, batch of 32", lambda r: f"{r['batch_ms']:.0f} ms, {r['batch_texts_per_second']:.0f} texts/s")]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in runs) + " |" for label, cell in rows]
    return "\n".join(lines) + "\n"


def evaluate_table() -> str:
    """app/README.md: make evaluate's held-out accuracy of every form (results/evaluate.json)."""
    models = _load("evaluate.json").get("models", {})
    if not models:
        return "(no results/evaluate.json: run make evaluate)\n"
    first = next(iter(models.values()))["accuracy"]
    lines = ["| model | backend | held-out accuracy | right | vs torch |", "|---|---|---|---|---|"]
    lines += [f"| `{name}` | {m['backend']} | {m['accuracy']:.4f} | {m['right']}/{m['of']} | "
              f"{m['accuracy'] - first:+.4f} |" for name, m in models.items()]
    return "\n".join(lines) + "\n"


SUMMARY_METRICS = ("size_bytes", "push_bytes", "fresh_node_seconds", "rebuild_app_seconds", "cold_start_seconds",
                   "idle_memory_bytes", "memory_load_peak_bytes", "p50_ms", "runs_as_root", "shell")


def compare_summary() -> str:
    """README: the headline rows of results/compare.json, each with its ratio to naive."""
    data = _load("compare.json")
    rows = data.get("variants", {})
    names = [v.name for v in VARIANTS if v.name in rows]
    metrics = {m.key: m for m in METRICS}
    lines = [f"_{data.get('machine', {}).get('cpu', 'machine unknown')}, "
             f"{data.get('machine', {}).get('cores', '?')} cores; measured {_measured(rows)}_", "",
             "| | " + " | ".join(f"[{n}]({n}/README.md)" for n in names) + " |", "|---|" + "---|" * len(names)]
    base = rows.get("naive_image", {})
    for key in SUMMARY_METRICS:
        m = metrics[key]
        cells = []
        for n in names:
            value, ref = rows[n].get(key), base.get(key)
            ratio = (f" ({value / ref:.2f}x)" if m.ratio and n != "naive_image" and isinstance(value, (int, float))
                     and not isinstance(value, bool) and isinstance(ref, (int, float)) and ref else "")
            cells.append(m.format(value) + ratio)
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _measured(rows: dict) -> str:
    days = sorted({r.get("measured_at", "")[:10] for r in rows.values() if r.get("measured_at")})
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}" if days else "?"


RENDERERS: dict[str, Callable[[], str]] = {
    "memory": memory_table,
    "compare-summary": compare_summary,
    "benchmark": benchmark_table,
    "evaluate": evaluate_table,
    **{f"figures-{v.name}": (lambda n=v.name: variant_figures(n)) for v in VARIANTS},
    **{f"diff-{v.name}": (lambda n=v.name: dockerfile_diff(n)) for v in VARIANTS if v.previous},
}
DOCS = (ROOT / "README.md", ROOT / "app" / "README.md", *(v.dockerfile.parent / "README.md" for v in VARIANTS))


def rendered(text: str) -> str:
    def fill(m: re.Match) -> str:
        render = RENDERERS.get(m.group("name"))
        if render is None:
            raise SystemExit(f"docs: no renderer for block {m.group('name')!r}")
        return m.group(1) + render() + m.group(4)

    return BLOCK.sub(fill, text)


def stale(paths: tuple[Path, ...] = DOCS) -> list[str]:
    """Blocks whose text differs from what the results files give now."""
    out = []
    for path in paths:
        if not path.is_file():
            out.append(f"{path.relative_to(ROOT)}: missing")
            continue
        text = path.read_text()
        for m in BLOCK.finditer(text):
            if rendered(m.group(0)) != m.group(0):
                out.append(f"{path.relative_to(ROOT)}: block {m.group('name')!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="report stale blocks instead of rewriting them")
    args = ap.parse_args(argv)
    if args.check:
        problems = stale()
        for p in problems:
            print(f"stale: {p} (python -m scripts.measure.docs rewrites it)")
        return 1 if problems else 0
    for path in DOCS:
        path.write_text(rendered(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
