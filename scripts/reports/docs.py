"""Figures in the docs come from results files: blocks and inline figures between markers, rendered here.

    <!-- begin NAME -->  ...generated...  <!-- end NAME -->
    <!-- fig FILE PATH FORMAT -->3.4 GB<!-- /fig -->   one value: results/FILE, dotted PATH, FORMAT (FORMATS)

    python -m scripts.reports.docs            # rewrite every block in DOCS from results/
    python -m scripts.reports.docs --check    # exit 1 naming each stale block (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from scripts.reports.report import METRICS, markdown
from scripts.results import RESULTS_ROOT, human_bytes
from scripts.variants import BY_NAME, MEMORY_LIMIT_MIB, ROOT, VARIANTS

INLINE = re.compile(r"<!-- fig (?P<file>\S+) (?P<path>\S+) (?P<format>\S+) -->(?P<text>.*?)<!-- /fig -->", re.S)
FORMATS: dict[str, Callable[[float], str]] = {
    "bytes": human_bytes,
    "mib": lambda v: f"{v / 2**20:.1f} MiB",
    "s": lambda v: f"{v:.1f} s",
    "min": lambda v: f"{v / 60:.0f} min",
    "s2": lambda v: f"{v:.2f} s",
    "ms": lambda v: f"{v:.1f} ms",
    "x": lambda v: f"{v:.2f}x",
    "int": lambda v: f"{v:,}",
    "f4": lambda v: f"{v:.4f}",
    "raw": str,
}
BLOCK = re.compile(r"(<!-- begin (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)", re.S)


def _load(name: str) -> dict:
    path = RESULTS_ROOT / name
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
    return "\n".join(lines + release_rows(name)) + "\n"


def release_rows(name: str) -> list[str]:
    """What each kind of release moves (results/releases.json, make releases), beside the predecessor's."""
    releases = importlib.import_module("scripts.studies.releases")  # found by name, as command_table's modules

    rows = _load("releases.json").get("variants", {})
    variant = BY_NAME[name]
    this, before = rows.get(name), rows.get(variant.previous)
    if not this or (variant.previous and not before):
        return []
    lines = []
    for change in releases.CHANGES:
        b = this["changes"].get(change)
        label = f"a release after: {change} (pushed / pulled)"
        if not variant.previous:
            lines.append(f"| {label} | {releases.cell(b)} |")
            continue
        a = before["changes"].get(change)
        ratio = f"{b['push_bytes'] / a['push_bytes']:.2f}x" if a and b and a["push_bytes"] else ""
        lines.append(f"| {label} | {releases.cell(a)} | {releases.cell(b)} | {ratio} |")
    return lines


def instruction_diff(before: Path, after: Path) -> str:
    """after's instructions against before's (comments and blank lines left out), as a diff block."""
    def instructions(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]

    diff = difflib.unified_diff(instructions(before), instructions(after), f"{before.parent.name}/{before.name}",
                                f"{after.parent.name}/{after.name}", n=0, lineterm="")
    return "```diff\n" + "\n".join(line for line in diff if not line.startswith("@@")) + "\n```\n"


def dockerfile_diff(name: str) -> str:
    """The walk's step: this variant's step Dockerfile against the previous variant's Dockerfile."""
    variant = BY_NAME[name]
    return instruction_diff(BY_NAME[variant.previous].dockerfile, variant.step_dockerfile)


TRY_IT = """```bash
docker build -f {name}/Dockerfile -t bert-classifier:{name} .   # Docker only: the model is built inside
docker run -d --rm --name bert -p 127.0.0.1:8000:8000 bert-classifier:{name}
until curl -fs localhost:8000/readyz >/dev/null; do sleep 1; done           # the model loads in seconds
curl -s localhost:8000/classify -H 'content-type: application/json' -d '{{"text":"I love this movie"}}'
docker stop bert
docker run --rm -it -v /var/run/docker.sock:/var/run/docker.sock wagoodman/dive bert-classifier:{name}
make diagnose VARIANT={name}       # where the bytes are and what to change (the lab's venv: make venv)
```
"""


def try_it(name: str) -> str:
    """The same few commands for every variant, from one template."""
    return TRY_IT.format(name=name)


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


PROGRESSION_FIXES = ("slim_image", "multi_stage_build", "distroless_image", "onnx_image")


def _diagnosed(name: str) -> dict:
    return _load(f"diagnose/{name}.json")


def findings_table(name: str) -> str:
    """The advisor's ranked findings for one image (results/diagnose/<name>.json)."""
    report = _diagnosed(name)
    advice = report.get("advice")
    if not advice:
        return f"(no findings in results/diagnose/{name}.json: run make diagnose VARIANT={name})\n"
    lines = [f"`make diagnose VARIANT={name}`: {len(advice['findings'])} findings, "
             f"{human_bytes(advice['addressable_bytes'])} of {human_bytes(advice['total_bytes'])} addressable "
             f"({advice['addressable_share']:.0%}), no byte counted twice.", "",
             "| # | rule | saves | confidence | shown in |", "|---|---|---|---|---|"]
    for n, f in enumerate(advice["findings"], 1):
        saves = human_bytes(f["bytes"]) if f["bytes"] else "-"
        saves += f", {f['seconds']:.2f} s per start" if f.get("seconds") else ""
        demo = f"`{f['demo']}`" if f["demo"] else "-"
        lines.append(f"| {n} | `{f['rule']}`: {f['title']} | {saves} | {f['confidence']} | {demo} |")
    return "\n".join(lines) + "\n"


def prediction_table() -> str:
    """What the advisor predicts on naive_image for each fix, beside what make compare measured."""
    advice = _diagnosed("naive_image").get("advice")
    rows = _load("compare.json").get("variants", {})
    if not advice or "naive_image" not in rows:
        return "(needs results/diagnose/naive_image.json and results/compare.json)\n"
    order = [v.name for v in VARIANTS]
    by_demo: dict[str, int] = {}
    for f in advice["findings"]:
        by_demo[f["demo"]] = by_demo.get(f["demo"], 0) + f["bytes"]
    naive = rows["naive_image"]["size_bytes"]
    lines = ["| fix, as the folder shows it | predicted, this step | measured, this step | "
             "predicted, naive to here | measured, naive to here | gap |", "|---|---|---|---|---|---|"]
    for name in PROGRESSION_FIXES:
        if name not in rows:
            continue
        previous = BY_NAME[name].previous
        while previous and previous not in PROGRESSION_FIXES + ("naive_image",):
            previous = BY_NAME[previous].previous
        step = by_demo.get(name, 0)
        measured_step = rows[previous]["size_bytes"] - rows[name]["size_bytes"]
        upto = sum(by_demo.get(n, 0) for n in order[1:order.index(name) + 1])
        measured = naive - rows[name]["size_bytes"]
        lines.append(f"| `{name}` (after {previous}) | {human_bytes(step)} | "
                     f"{human_bytes(measured_step)} | {human_bytes(upto)} | {human_bytes(measured)} | "
                     f"{(upto - measured) / measured:+.0%} |")
    return "\n".join(lines) + "\n"


def never_imported_table() -> str:
    """For each image: the distributions the trace never saw imported or mapped, largest first."""
    lines = ["| image | never imported during the trace (bytes on disk) |", "|---|---|"]
    for v in VARIANTS:
        dists = (_diagnosed(v.name).get("advice") or {}).get("distributions_never_imported")
        if dists is None:
            lines.append(f"| {v.name} | (no trace in results/diagnose/{v.name}.json) |")
            continue
        shown = ", ".join(f"{n} {human_bytes(b)}" for n, b in dists[:8])
        more = f" and {len(dists) - 8} more ({human_bytes(sum(b for _, b in dists[8:]))})" if len(dists) > 8 else ""
        lines.append(f"| {v.name} | {len(dists)}: {shown or 'none'}{more} |")
    return "\n".join(lines) + "\n"


def baseline_table() -> str:
    """make diagnose IMAGE=bert-classifier:slim_image BASELINE=bert-classifier:naive_image, summarised."""
    report = _load("diagnose/bert-classifier_slim_image.json")
    diff = report.get("baseline")
    if not diff:
        return "(run make diagnose IMAGE=bert-classifier:slim_image BASELINE=bert-classifier:naive_image)\n"
    lines = [f"`{report['image']}` against `{diff['baseline']}`: {human_bytes(report['total_bytes'])} against "
             f"{human_bytes(diff['baseline_bytes'])} ({diff['growth_pct']:+.1f} %). Findings fixed: "
             f"{', '.join(f'`{r}`' for r in diff['fixed']) or 'none'}; introduced: "
             f"{', '.join(f'`{r}`' for r in diff['introduced']) or 'none'}.", "",
             "| by | what | before | after |", "|---|---|---|---|"]
    for kind, label in (("categories", "category"), ("distributions", "distribution"), ("os_packages", "OS package")):
        for row in diff[kind][:5]:
            lines.append(f"| {label} | {row['name']} | {human_bytes(row['before']) if row['before'] else '-'} | "
                         f"{human_bytes(row['after']) if row['after'] else '-'} |")
    return "\n".join(lines) + "\n"


def history_excerpt(name: str) -> str:
    """The first tables of `make diagnose VARIANT=name`, from results/diagnose/<name>.json."""
    report = _diagnosed(name)
    if not report:
        return f"(no results/diagnose/{name}.json: run make diagnose VARIANT={name})\n"
    lines = ["```", f"image {report['image']}: {human_bytes(report['total_bytes'])} in {len(report['layers'])} layers, "
             f"user {report['user']}", "", "#  size      created by"]
    lines += [f"{i:<2} {human_bytes(layer['size_bytes']):<9} {(layer.get('instruction') or '')[:90]}"
              for i, layer in enumerate(report["layers"])]
    lines += ["", f"wasted: {human_bytes(report['wasted_bytes'])} (ours), "
              f"{human_bytes(report['dive_style_wasted_bytes'])} (dive's way of counting)", "```"]
    return "\n".join(lines) + "\n"


def composition_table() -> str:
    """Every image's bytes by category (results/compare.json), in MB."""
    rows = _load("compare.json").get("variants", {})
    names = [v.name for v in VARIANTS if v.name in rows]
    if not names:
        return "(no results/compare.json: run make compare)\n"
    categories = list(rows[names[0]]["composition"]["categories"])
    lines = ["| category | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for cat in categories:
        values = [rows[n]["composition"]["categories"].get(cat, 0) for n in names]
        if any(values):
            lines.append(f"| {cat} | " + " | ".join(human_bytes(v) if v else "-" for v in values) + " |")
    lines.append("| **total** | " + " | ".join(f"**{human_bytes(rows[n]['size_bytes'])}**" for n in names) + " |")
    return "\n".join(lines) + "\n"


def load_table() -> str:
    """app/README.md: make load's levels for onnx_image and layered_image (results/load-<image>.json)."""
    runs = [(n, _load(f"load-{n}.json")) for n in ("onnx_image", "layered_image")]
    runs = [(n, r) for n, r in runs if r]
    if not runs:
        return "(no results/load-*.json: run make load IMAGE=bert-classifier:onnx_image)\n"
    machine = runs[0][1].get("machine", {})
    lines = [f"_{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('measured_at', '?')[:10]}; "
             f"{runs[0][1].get('duration_s', 0):.0f} s per level_", "",
             "| image | concurrency | requests | errors | p50 | p95 | p99 | req/s | memory before | after | "
             "hostile scenarios passed |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs:
        hostile = run.get("hostile", [])
        passed = f"{sum(h['passed'] for h in hostile)}/{len(hostile)}"
        for level in run["levels"]:
            lines.append(f"| {name} | {level['concurrency']} | {level['requests']:,} | {level['errors']} | "
                         f"{level['p50_ms']:.1f} ms | {level['p95_ms']:.1f} ms | {level['p99_ms']:.1f} ms | "
                         f"{level['throughput_rps']:.1f} | {human_bytes(level['rss_before_bytes'])} | "
                         f"{human_bytes(level['rss_after_bytes'])} | {passed} |")
    return "\n".join(lines) + "\n"


def hostile_table() -> str:
    """app/README.md: /healthz and /classify under slow clients, per image (results/smoke.json)."""
    variants = _load("smoke.json").get("variants", {})
    lines = ["| image | /healthz under slow clients | /classify under slow clients |", "|---|---|---|"]
    for v in VARIANTS:
        hostile = {h["scenario"]: h["detail"].split(";")[0] for h in variants.get(v.name, {}).get("hostile", [])}
        if hostile:
            lines.append(f"| {v.name} | {hostile.get('/healthz under slow clients', '-')} | "
                         f"{hostile.get('/classify under slow clients', '-')} |")
    return "\n".join(lines) + "\n"


def _machine_line(data: dict) -> str:
    machine = data.get("machine", {})
    when = _measured(data.get("variants", {}))
    when = data.get("measured_at", "?")[:10] if when == "?" else when
    return f"_{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, measured {when}_"


def engines_build_ratio() -> str:
    """docs/engines.md: how much longer cold builds took on the containerd store than on the classic one."""
    engines = _load("engines.json").get("engines", {})
    classic = engines.get("docker26", {}).get("images", {})
    containerd = engines.get("docker26-containerd", {}).get("images", {})
    ratios = {n: containerd[n]["build_seconds"] / classic[n]["build_seconds"] for n in classic
              if n in containerd and classic[n].get("build_seconds") and containerd[n].get("build_seconds")}
    if not ratios:
        return "  (no results/engines.json: run make engines)\n"
    low, high = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
    return (f"  {ratios[low]:.2f}-{ratios[high]:.2f}x as long ({low} {ratios[low]:.2f}x, "
            f"{high} {ratios[high]:.2f}x).\n  ")


def advisor_speed_table() -> str:
    """image-advisor/README.md: a fresh install, and the tool beside dive --ci (results/advisor.json)."""
    data = _load("advisor.json")
    if not data.get("side_by_side"):
        return "(no results/advisor.json: run make advisor-speed)\n"
    m, fresh = data["machine"], data["fresh_install"]
    lines = [f"_{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('measured_at', '?')[:10]}; "
             f"`{data['image']}` ({human_bytes(data['image_bytes'])}), {data['dive']}, median of {data['runs']} "
             "alternating rounds (`make advisor-speed`)_", "",
             f"`{fresh['command']}` (Python {fresh['python']}): {fresh['install_seconds']:.1f} s, a virtualenv of "
             f"{human_bytes(fresh['venv_bytes'])}; the first report, `--no-trace --no-dive`, "
             f"{fresh['install_to_first_report_seconds']:.1f} s after the install began.", "",
             "| command | seconds | peak memory of the process |", "|---|---|---|"]
    for name, row in data["side_by_side"].items():
        runs = ", ".join(f"{x:.1f}" for x in row["seconds_runs"])
        lines.append(f"| `{name}` | {row['seconds_median']:.1f} ({runs}) | {human_bytes(row['max_rss_bytes'])} |")
    lines += ["", "Peak memory is the process's largest resident set; where the tool runs dive, the larger of the "
              "two processes. The trace's container is not counted."]
    return "\n".join(lines) + "\n"


def advisor_image_table() -> str:
    """image-advisor/README.md: the tool's own image, as its own report sees it (results/advisor-image.json)."""
    data = _load("advisor-image.json")
    if not data.get("diagnosed"):
        return "(no results/advisor-image.json: run make advisor-image)\n"
    seen = data["diagnosed"]
    lines = [f"_`make advisor-image`, {data['machine'].get('measured_at', '?')[:10]}: FROM `{data['base']}`_", "",
             f"`{data['image']}` is {human_bytes(data['size_bytes'])} in {seen['layers']} layers. Its own report "
             f"(`--no-trace`) finds {human_bytes(seen['addressable_bytes'])} addressable:", "",
             "| finding | bytes |", "|---|---|"]
    lines += [f"| `{rule}` | {human_bytes(size) if size else '-'} |" for rule, size in seen["findings"]]
    return "\n".join(lines) + "\n"


def cuda_sizes() -> str:
    """docs/cuda.md: CPU and CUDA sizes and push sizes side by side, each with its ratio to its own naive."""
    cpu, cuda = _load("compare.json").get("variants", {}), _load("compare-cuda.json").get("variants", {})
    names = [v.name for v in VARIANTS if v.name in cuda]
    if not names:
        return "(no results/compare-cuda.json: run make compare FLAVOR=cuda)\n"

    def cell(rows: dict, name: str, key: str) -> str:
        value, base = rows.get(name, {}).get(key), rows.get("naive_image", {}).get(key)
        return f"{human_bytes(value)} ({value / base:.2f}x)" if value and base else "-"

    lines = ["| variant | CPU image | CUDA image | CPU push | CUDA push | CUDA: of which CUDA libraries + triton |",
             "|---|---|---|---|---|---|"]
    for n in names:
        libs = cuda[n].get("composition", {}).get("categories", {}).get("CUDA libraries (nvidia-*, triton)", 0)
        lines.append(f"| {n} | {cell(cpu, n, 'size_bytes')} | {cell(cuda, n, 'size_bytes')} | "
                     f"{cell(cpu, n, 'push_bytes')} | {cell(cuda, n, 'push_bytes')} | {human_bytes(libs)} |")
    return "\n".join(lines) + "\n"


def cuda_compare() -> str:
    """docs/cuda.md: the whole make compare FLAVOR=cuda table (results/compare-cuda.json)."""
    data = _load("compare-cuda.json")
    if not data.get("variants"):
        return "(no results/compare-cuda.json: run make compare FLAVOR=cuda)\n"
    return _machine_line(data) + "\n\n" + markdown(data["variants"])


def cuda_libs_table() -> str:
    """docs/cuda.md: naive_image's CUDA libraries, shipped against loaded (results/compare-cuda.json)."""
    libs = _load("compare-cuda.json").get("variants", {}).get("naive_image", {}).get("cuda_libs")
    if not libs:
        return "(no cuda_libs row in results/compare-cuda.json)\n"
    lines = ["| distribution | shipped | loaded | libraries loaded |", "|---|---|---|---|"]
    for name, d in sorted(libs["by_distribution"].items(), key=lambda x: -x[1]["shipped_bytes"]):
        lines.append(f"| {name} | {human_bytes(d['shipped_bytes'])} | {human_bytes(d['loaded_bytes'])} | "
                     f"{len(d['loaded'])}/{len(d['loaded']) + len(d['not_loaded'])} |")
    lines.append(f"| total | {human_bytes(libs['shipped_bytes'])} | {human_bytes(libs['loaded_bytes'])} | |")
    return "\n".join(lines) + "\n"


def cuda_trim_table() -> str:
    """docs/cuda.md: CUDA_TRIM=1 against the default CUDA images (results/cuda-trim.json)."""
    data = _load("cuda-trim.json")
    if not data.get("variants"):
        return "(no results/cuda-trim.json: run make cuda-trim)\n"
    lines = [_machine_line(data), "", "| variant | default CUDA image | with `CUDA_TRIM=1` | less | "
             "shared libraries shipped / loaded | smoke (CPU) |", "|---|---|---|---|---|---|"]
    for name, v in data["variants"].items():
        libs = v.get("cuda_libs", {})
        lines.append(f"| {name} | {human_bytes(v['untrimmed_size_bytes'])} | {human_bytes(v['size_bytes'])} | "
                     f"{human_bytes(v['saved_bytes'])} | {human_bytes(libs.get('shipped_bytes', 0))} / "
                     f"{human_bytes(libs.get('loaded_bytes', 0))} | "
                     f"{'PASS' if not v.get('smoke_failures') else 'FAIL: ' + '; '.join(v['smoke_failures'])} |")
    return "\n".join(lines) + "\n"


def _ready(smoke: dict) -> str:
    return f"{smoke['ready_seconds']:.1f} s" if smoke.get("ready_seconds") else "-"


def arm64_table() -> str:
    """docs/platforms.md: the arm64 images built and smoke-tested under emulation, beside amd64's."""
    arm, smoke = _load("build-arm64.json").get("variants", {}), _load("smoke-arm64.json").get("variants", {})
    amd, amd_smoke = _load("build.json").get("variants", {}), _load("smoke.json").get("variants", {})
    if not arm:
        return "(no results/build-arm64.json: run make build-all PLATFORM=linux/arm64)\n"
    lines = ["| image | built | arm64 size | amd64 size | arm64 cold build (emulated) | amd64 cold build | "
             "arm64 ready after | amd64 ready after | smoke arm64 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, b in arm.items():
        a, sm = amd.get(name, {}), smoke.get(name, {})
        failures = sm.get("failures")
        verdict = "-" if failures is None else "PASS" if not failures else "FAIL: " + "; ".join(failures)
        lines.append(f"| `{name}` | {b.get('built_at', '?')[:10]} | {human_bytes(b['size_bytes'])} | "
                     f"{human_bytes(a['size_bytes']) if a else '-'} | {b['build_seconds']:.0f} s | "
                     f"{a['build_seconds']:.0f} s | {_ready(sm)} | {_ready(amd_smoke.get(name, {}))} | {verdict} |"
                     if a else f"| `{name}` | {human_bytes(b['size_bytes'])} | - | {b['build_seconds']:.0f} s | - |")
    return "\n".join(lines) + "\n"


def command_table(module: str, results: str, command: str, key: str = "variants") -> Callable[[], str]:
    """A block a measuring command renders itself: module's markdown() of results/<results> (imported only
    when rendered: the measuring modules pull in the engine's client)."""
    def render() -> str:
        data = _load(results)
        if not data.get(key):
            return f"(no results/{results}: run {command})\n"
        return importlib.import_module(module).markdown(data)

    return render


RENDERERS: dict[str, Callable[[], str]] = {
    "batching": command_table("scripts.bench.batching", "batching.json", "make batching"),  # app/README.md
    "surface": command_table("scripts.studies.sbom", "surface.json", "make sbom"),  # docs/diagnose.md
    "startup": command_table("scripts.bench.startup", "startup.json", "make startup"),  # docs/measurement.md
    "request-phases": command_table("scripts.bench.request_phases", "request_phases.json", "make request-phases"),
    "scale": command_table("scripts.bench.scale", "scale.json", "make scale"),  # docs/deploy.md
    "onnx-cuts": command_table("scripts.studies.onnx_cuts", "onnx-cuts.json", "make onnx-cuts", "cuts"),
    "engines": command_table("scripts.studies.engine_sizes", "engines.json", "make engines", "engines"),
    "engines-summary": lambda: importlib.import_module("scripts.studies.engine_sizes").summary(_load("engines.json")),
    "stand-ins": command_table("scripts.studies.stand_ins", "stand-ins.json", "make stand-ins", "bases"),
    "installers": command_table("scripts.bench.installers", "installers.json", "make installers", "installers"),
    "releases": command_table("scripts.studies.releases", "releases.json", "make releases"),  # docs/releases.md
    "releases-docker26-containerd": command_table(
        "scripts.studies.releases", "releases-docker26-containerd.json",
        "ENGINE=docker26-containerd make releases"),  # docs/releases.md
    "peers": command_table("scripts.bench.peers", "peers.json", "make peers", "images"),  # docs/peers.md
    "compression": command_table("scripts.studies.compression", "compression.json",
                                 "ENGINE=docker26-containerd make compression"),  # docs/releases.md
    "reproducible": command_table("scripts.studies.reproducible", "reproducible.json", "make reproducible"),
    "reproducible-docker26-containerd": command_table(
        "scripts.studies.reproducible", "reproducible-docker26-containerd.json",
        "ENGINE=docker26-containerd make reproducible"),  # docs/releases.md
    "arm64": arm64_table,
    "advisor-speed": advisor_speed_table,  # image-advisor/README.md
    "engines-build-ratio": engines_build_ratio,  # docs/engines.md
    "advisor-image": advisor_image_table,  # image-advisor/README.md
    "cuda-sizes": cuda_sizes,
    "cuda-compare": cuda_compare,
    "cuda-libs": cuda_libs_table,
    "cuda-trim": cuda_trim_table,
    "load": load_table,
    "hostile": hostile_table,
    "history-naive_image": lambda: history_excerpt("naive_image"),
    "composition": composition_table,
    "findings-naive_image": lambda: findings_table("naive_image"),
    "findings-onnx_image": lambda: findings_table("onnx_image"),
    "predicted-vs-measured": prediction_table,
    "never-imported": never_imported_table,
    "diagnose-baseline": baseline_table,
    "memory": memory_table,
    "compare-summary": compare_summary,
    "benchmark": benchmark_table,
    "evaluate": evaluate_table,
    **{f"figures-{v.name}": (lambda n=v.name: variant_figures(n)) for v in VARIANTS},
    **{f"diff-{v.name}": (lambda n=v.name: dockerfile_diff(n)) for v in VARIANTS if v.previous},
    **{f"floor-{v.name}": (lambda v=v: instruction_diff(v.step_dockerfile, v.dockerfile)) for v in VARIANTS if v.step},
    **{f"try-{v.name}": (lambda n=v.name: try_it(n)) for v in VARIANTS},
}
DOCS = (ROOT / "README.md", ROOT / "app" / "README.md", ROOT / "image-advisor" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *(v.dockerfile.parent / "README.md" for v in VARIANTS))


def figure(file: str, path: str, form: str) -> str:
    """One value of a results file, formatted: figure("compare.json", "variants.naive_image.size_bytes", "bytes")."""
    value: object = _load(file)
    for key in path.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise SystemExit(f"docs: results/{file} has no {path} (stopped at {key!r})")
    if form not in FORMATS:
        raise SystemExit(f"docs: unknown figure format {form!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[form](value)


def rendered(text: str) -> str:
    def fill(m: re.Match) -> str:
        render = RENDERERS.get(m.group("name"))
        if render is None:
            raise SystemExit(f"docs: no renderer for block {m.group('name')!r}")
        return m.group(1) + render() + m.group(4)

    def fill_inline(m: re.Match) -> str:
        start = m.group(0)[:m.start("text") - m.start()]
        return start + figure(m.group("file"), m.group("path"), m.group("format")) + "<!-- /fig -->"

    return INLINE.sub(fill_inline, BLOCK.sub(fill, text))


def stale(paths: tuple[Path, ...] | None = None) -> list[str]:
    """Blocks whose text differs from what the results files give now (in every page of DOCS by default)."""
    out = []
    for path in DOCS if paths is None else paths:
        if not path.is_file():
            out.append(f"{path.relative_to(ROOT)}: missing")
            continue
        text = path.read_text()
        for m in BLOCK.finditer(text):
            if rendered(m.group(0)) != m.group(0):
                out.append(f"{path.relative_to(ROOT)}: block {m.group('name')!r}")
        for m in INLINE.finditer(BLOCK.sub("", text)):
            if rendered(m.group(0)) != m.group(0):
                expected = figure(m.group("file"), m.group("path"), m.group("format"))
                out.append(f"{path.relative_to(ROOT)}: figure {m.group('file')} {m.group('path')} "
                           f"({m.group('text')!r} should be {expected!r})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="report stale blocks instead of rewriting them")
    args = ap.parse_args(argv)
    if args.check:
        problems = stale()
        for p in problems:
            print(f"stale: {p} (python -m scripts.reports.docs rewrites it)")
        return 1 if problems else 0
    rewrite()
    return 0


def rewrite(paths: tuple[Path, ...] | None = None) -> list[Path]:
    """Render every block and inline figure of paths (DOCS) from results/; the pages whose text changed."""
    changed = []
    for path in DOCS if paths is None else paths:
        text = path.read_text()
        if (new := rendered(text)) != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    raise SystemExit(main())
