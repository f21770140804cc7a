"""What an image is made of, in the same categories for every variant, and the pictures of it.

    file_categories(saved, analysis) -> path -> category for every file of the final filesystem
    composition(...)                 -> {category: bytes}, adding up to the image's size
    stacked_chart(...)               -> results/composition.png (one bar per variant; `make compare`)
    treemap(...)                     -> results/diagnose/<name>-treemap.png (`make diagnose`)

Every byte comes from the layer replay and the per-distribution accounting of
scripts/measure/image_layers.py (RECORD files, dpkg lists), never from guesses: a file is
put in the first category below whose rule claims it; what no rule claims is "other".
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from scripts.measure.image_layers import Analysis, SavedImage, distribution_files
from scripts.measure.report import save_figure
from scripts.results import human_bytes
from scripts.variants import ROOT

# Stacking order, bottom to top, and one colour each: the same in every chart.
CATEGORIES = {
    "OS files": "#8c8c8c",
    "Python + stdlib": "#4C72B0",
    "torch": "#C44E52",
    "CUDA libraries (nvidia-*, triton)": "#76B900",
    "transformers": "#DD8452",
    "onnxruntime": "#937860",
    "other Python deps": "#55A868",
    "installer (pip, setuptools)": "#64B5CD",
    "dev extras": "#8172B3",
    "caches (pip, apt lists)": "#DA8BC3",
    "model": "#CCB974",
    "app": "#1f1f1f",
    "hidden (wasted)": "#FF0000",
    "other": "#d9d9d9",
}
NAMED_DISTRIBUTIONS = ("torch", "transformers", "onnxruntime")
CUDA_DISTRIBUTIONS = re.compile(r"^nvidia-|^triton$|^cuda-")  # what a CUDA torch wheel brings with it
DARK = {"app", "torch", "Python + stdlib", "onnxruntime"}  # colours that need white text
INSTALLER = {"pip", "setuptools", "wheel"}
NAME_A_DEP_ABOVE = 0.05  # an "other Python deps" member this share of the image's bytes is named
# Requirement files whose packages (and their dependencies) the service runs on; the rest are dev extras.
RUNTIME_REQUIREMENTS = ("app/requirements.txt", "app/requirements-common.txt", "app/requirements-onnx.txt",
                        "app/torch-cpu.txt", "app/torch-cuda.txt")
CACHE_PATHS = re.compile(r"^(root|home/[^/]+)/\.cache/|^var/lib/apt/lists/|^var/cache/(apt|debconf)/")
MODEL_PATHS = re.compile(r"^(opt|app)/model/")
APP_PATHS = re.compile(r"^app/")
PYTHON_PATHS = re.compile(r"^usr/(local/)?lib/python3\.\d+/(?!site-packages/|dist-packages/)"
                          r"|^usr/(local/)?bin/python3|^usr/(local/)?lib/(x86_64-linux-gnu/|aarch64-linux-gnu/)?"
                          r"libpython3|^usr/(local/)?include/python3")
OS_PATHS = re.compile(r"^(usr|etc|var|lib|lib64|bin|sbin|opt|srv|root|home|tmp|run)/")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(files: tuple[str, ...] = RUNTIME_REQUIREMENTS) -> set[str]:
    names = set()
    for rel in files:
        path = ROOT / rel
        for line in path.read_text().splitlines() if path.exists() else []:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names.add(canonical(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0]))
    return names


def dependencies(metadata: str) -> set[str]:
    """Names a METADATA file requires, leaving out those only an extra asks for."""
    deps = set()
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line and "extra==" not in line:
            spec = line.split(":", 1)[1].strip()
            deps.add(canonical(re.split(r"[=<>!~;\[( ]", spec, maxsplit=1)[0]))
        elif not line.strip():
            break  # headers end at the first blank line; the long description follows
    return deps


def runtime_closure(saved: SavedImage, roots: set[str]) -> set[str]:
    """The installed distributions the roots need, following each one's METADATA."""
    requires = {}
    for path, text in saved.captured.items():
        if path.endswith(".dist-info/METADATA"):
            name = path.rsplit("/", 2)[-2].removesuffix(".dist-info").rsplit("-", 1)[0]
            requires[canonical(name)] = dependencies(text)
    needed, todo = set(), [r for r in roots if r in requires]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(d for d in requires.get(name, ()) if d in requires)
    return needed


def distribution_category(name: str, runtime: set[str]) -> str:
    key = canonical(name)
    if key in NAMED_DISTRIBUTIONS:
        return key
    if CUDA_DISTRIBUTIONS.match(key):
        return "CUDA libraries (nvidia-*, triton)"
    if key in INSTALLER:
        return "installer (pip, setuptools)"
    return "other Python deps" if key in runtime else "dev extras"


def file_categories(saved: SavedImage, analysis: Analysis, roots: set[str] | None = None
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> category for every surviving file, path -> distribution for files a RECORD names)."""
    final = analysis.final
    runtime = runtime_closure(saved, requirement_names() if roots is None else roots)
    dist_of: dict[str, str] = {}
    for name, paths in distribution_files(saved, final).items():
        for path in paths:
            dist_of[path] = name
    categories = {path: distribution_category(dist_of[path], runtime) if path in dist_of else category_of_path(path)
                  for path, entry in final.items() if entry.size}
    return categories, dist_of


def composition(analysis: Analysis, categories: dict[str, str], dist_of: dict[str, str]) -> dict:
    """{"categories": {name: bytes}, "named_deps": {dist: bytes}, "total_bytes": n}; categories sum to total.

    categories and dist_of come from file_categories() on the same image.
    """
    final = analysis.final
    sizes: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    dep_bytes: dict[str, int] = defaultdict(int)
    for path, category in categories.items():
        sizes[category] += final[path].size
        if category == "other Python deps":
            dep_bytes[canonical(dist_of[path])] += final[path].size
    sizes["hidden (wasted)"] = analysis.wasted_bytes
    # Whatever the replay cannot see as a surviving or hidden file copy (none, in a consistent image).
    sizes["other"] += analysis.total_bytes - sum(sizes.values())
    threshold = NAME_A_DEP_ABOVE * max(analysis.total_bytes, 1)
    named = {name: size for name, size in sorted(dep_bytes.items(), key=lambda x: -x[1]) if size >= threshold}
    return {"categories": sizes, "named_deps": named, "total_bytes": analysis.total_bytes}


def category_of_path(path: str) -> str:
    if CACHE_PATHS.search(path):
        return "caches (pip, apt lists)"
    if MODEL_PATHS.search(path):
        return "model"
    if APP_PATHS.search(path):
        return "app"
    if PYTHON_PATHS.search(path):
        return "Python + stdlib"
    if "/site-packages/" in path or "/dist-packages/" in path:
        return "other"  # in a package folder but in no RECORD: caches of removed sources, stray files
    if OS_PATHS.search(path):
        return "OS files"
    return "other"


def _segments(comp: dict) -> list[tuple[str, str, int]]:
    """(label, colour key, bytes) bottom to top; large other deps get their own labelled segment."""
    out = []
    for category in CATEGORIES:
        size = comp["categories"].get(category, 0)
        if category == "other Python deps":
            for name, dep in comp.get("named_deps", {}).items():
                out.append((name, category, dep))
                size -= dep
        if size > 0:
            out.append((category, category, size))
    return out


def stacked_chart(compositions: dict[str, dict], path: Path, title: str = "") -> Path:
    """One horizontal stacked bar per variant, in the same categories and colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(compositions)
    height = 1.9 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(12, height))
    largest = max(c["total_bytes"] for c in compositions.values()) or 1
    used: list[str] = []
    for row, name in enumerate(reversed(names)):
        left = 0.0
        for label, key, size in _segments(compositions[name]):
            width = size / 1e9
            ax.barh(row, width, left=left, color=CATEGORIES[key], edgecolor="white", linewidth=0.5,
                    hatch="//" if label != key else None)
            if key not in used:
                used.append(key)
            if size > 0.07 * largest:  # label only segments wide enough to hold one
                ax.text(left + width / 2, row, f"{label}\n{human_bytes(size)}", ha="center", va="center",
                        fontsize=7, color="white" if key in DARK else "black")
            left += width
        ax.text(left + largest / 1e9 * 0.01, row, human_bytes(compositions[name]["total_bytes"]),
                va="center", fontsize=9, fontweight="bold")
    ax.set_yticks(range(len(names)), list(reversed(names)), fontsize=9)
    ax.set_xlabel("GB (1e9 bytes); hatched: a dependency holding 5 % or more of that image, named")
    ax.set_xlim(0, largest / 1e9 * 1.12)
    ax.spines[["top", "right"]].set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORIES[k]) for k in CATEGORIES if k in used]
    fig.legend(handles, [k for k in CATEGORIES if k in used], loc="lower center", ncol=6, fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.75 / height, 1, 1))
    return save_figure(fig, path)


def directory_boxes(files: dict[str, tuple[int, str]], min_share: float = 0.03,
                    max_depth: int = 8) -> list[tuple[str, int, str]]:
    """Boxes to draw from {file path: (bytes, category)}: (directory, bytes, main category).

    Each directory holding at least min_share of the bytes is opened (down to max_depth);
    what it holds outside its drawn children is one box of its own, named "<dir> (rest)".
    """
    tree: dict[str, int] = defaultdict(int)
    mix: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    children: dict[str, set[str]] = defaultdict(set)
    for path, (size, category) in files.items():
        parts = path.split("/")[:-1]
        for depth in range(0, min(len(parts), max_depth) + 1):
            directory = "/".join(parts[:depth])
            tree[directory] += size
            mix[directory][category] += size
            if depth < min(len(parts), max_depth):
                children[directory].add("/".join(parts[:depth + 1]))
    total = tree[""] or 1
    boxes: list[tuple[str, int, str]] = []

    def open_dir(directory: str, depth: int) -> None:
        big = [c for c in children[directory] if tree[c] >= min_share * total] if depth < max_depth else []
        for child in big:
            open_dir(child, depth + 1)
        rest = tree[directory] - sum(tree[c] for c in big)
        if rest > 0:
            own = {cat: n - sum(mix[c][cat] for c in big) for cat, n in mix[directory].items()}
            boxes.append((directory + (" (rest)" if big else ""), rest, max(own, key=own.get)))

    open_dir("", 0)
    return sorted(boxes, key=lambda b: -b[1])


def short(directory: str) -> str:
    """A box label: site-packages paths shortened to the package part."""
    return "/" + re.sub(r"^.*?/(site|dist)-packages/", "site-packages/", directory)


def treemap(categories: dict[str, str], final: dict, path: Path, title: str) -> Path:
    """The final filesystem as rectangles, largest first, coloured by each box's main category.

    "(smaller dirs)" boxes hold what a directory has outside its own drawn boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import squarify

    files = {p: (final[p].size, category) for p, category in categories.items()}
    total = sum(size for size, _ in files.values()) or 1
    boxes = [b for b in directory_boxes(files) if b[1] >= 0.002 * total]
    fig, ax = plt.subplots(figsize=(12, 7))
    rects = squarify.squarify(squarify.normalize_sizes([b[1] for b in boxes], 100, 60), 0, 0, 100, 60)
    for (name, size, key), rect in zip(boxes, rects, strict=True):
        base = name.removesuffix(" (rest)")
        ax.add_patch(plt.Rectangle((rect["x"], rect["y"]), rect["dx"], rect["dy"], facecolor=CATEGORIES[key],
                                   edgecolor="white", linewidth=1.5))
        if rect["dx"] * rect["dy"] > 14 and rect["dx"] > 10:
            label = short(base)
            if len(label) > rect["dx"] * 1.5:  # too long for its box: keep the end of the path
                label = "…/" + "/".join(label.split("/")[-2:])
            label += " (smaller dirs)" if name.endswith(" (rest)") else ""
            ax.text(rect["x"] + rect["dx"] / 2, rect["y"] + rect["dy"] / 2,
                    f"{label}\n{human_bytes(size)} ({size / total:.0%})", ha="center", va="center",
                    fontsize=7 if rect["dx"] > 18 else 6, wrap=True, color="white" if key in DARK else "black")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in CATEGORIES.values()]
    ax.legend(handles, list(CATEGORIES), loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=7, fontsize=7,
              frameon=False)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 60)
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
