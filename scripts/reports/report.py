"""Turn compare's raw figures into a Markdown table (with ratios to naive) and a PNG chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scripts.results import human_bytes

BASELINE = "naive_image"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # bytes | s | ms | count | bool | ratio
    ratio: bool = True  # show "x naive" beside the value

    def format(self, value) -> str:
        if value is None:
            return "n/a"
        if self.unit == "bytes":
            return human_bytes(value)
        if self.unit == "s":
            return f"{value:.1f} s"
        if self.unit == "ms":
            return f"{value:.1f} ms"
        if self.unit == "bool":
            return "yes" if value else "no"
        if self.unit == "ratio":
            return f"{value:.4f}"
        return str(value)


METRICS = (
    Metric("size_bytes", "image size", "bytes"),
    Metric("layers", "layers", "count", ratio=False),
    Metric("push_bytes", "push size (compressed)", "bytes"),
    Metric("pull_seconds", "pull into an empty engine", "s"),
    Metric("fresh_node_seconds", "fresh node: pull + run to first /classify", "s"),
    Metric("build_seconds", "cold build", "s"),
    Metric("rebuild_app_seconds", "rebuild after app/ edit", "s"),
    Metric("rebuild_model_seconds", "rebuild after model change", "s"),
    Metric("cold_start_seconds", "cold start (run to first /classify), median", "s"),
    Metric("idle_memory_bytes", "idle memory", "bytes"),
    Metric("memory_load_peak_bytes", "memory under load, peak (concurrency 8)", "bytes"),
    Metric("memory_heavy_peak_bytes", "memory for the heaviest allowed request, peak", "bytes"),
    Metric("p50_ms", "latency p50", "ms"),
    Metric("p95_ms", "latency p95", "ms"),
    Metric("p99_c8_ms", "p99 at concurrency 8 (80 % single, 20 % batch of 32)", "ms"),
    Metric("hostile_passed", "hostile checks passed", "text", ratio=False),
    Metric("runs_as_root", "runs as root", "bool", ratio=False),
    Metric("shell", "shell in image", "bool", ratio=False),
    Metric("os_packages", "OS packages", "count"),
    Metric("wasted_bytes", "wasted bytes (ours)", "bytes", ratio=False),
    Metric("dive_wasted_bytes", "wasted bytes (dive)", "bytes", ratio=False),
    Metric("dive_efficiency", "dive efficiency", "ratio", ratio=False),
)
CHART_METRICS = ("size_bytes", "push_bytes", "fresh_node_seconds", "build_seconds", "rebuild_app_seconds",
                 "cold_start_seconds")


def ratio(value, base) -> str:
    if value is None or not base or isinstance(value, bool):
        return ""
    return f" ({value / base:.2f}x)"


def markdown(variants: dict[str, dict], header: str = "") -> str:
    """Metrics as rows, variants as columns; numeric cells carry their ratio to naive."""
    names = list(variants)
    base = variants.get(BASELINE, {})
    lines = [header] if header else []
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for m in METRICS:
        cells = []
        for name in names:
            value = variants[name].get(m.key)
            cell = m.format(value)
            if m.ratio and name != BASELINE:
                cell += ratio(value, base.get(m.key))
            cells.append(cell)
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def terminal_rows(variants: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    names = list(variants)
    rows = [[m.label, *(m.format(variants[n].get(m.key)) for n in names)] for m in METRICS]
    return ["metric", *names], rows


def chart(variants: dict[str, dict], path: Path, title: str = "") -> Path:
    """One bar panel per headline metric, variants side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {m.key: m for m in METRICS}
    names = list(variants)
    fig, axes = plt.subplots(1, len(CHART_METRICS), figsize=(4 * len(CHART_METRICS), 4.2))
    for ax, key in zip(axes, CHART_METRICS, strict=True):
        metric = by_key[key]
        values = [variants[n].get(key) or 0 for n in names]
        scale, unit = (1e9, "GB") if metric.unit == "bytes" else (1, metric.unit)
        bars = ax.bar(range(len(names)), [v / scale for v in values], color="#4C72B0")
        if names and names[0] == BASELINE:
            bars[0].set_color("#C44E52")  # the baseline in red
        ax.set_title(f"{metric.label} ({unit})", fontsize=10)
        ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate(metric.format(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as the PNG every chart here uses (110 dpi), and free it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
