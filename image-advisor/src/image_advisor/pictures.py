"""The pictures of an image's composition: one stacked bar per image, and a treemap of one image.

    stacked_chart(compositions, path)   one horizontal bar per image, in composition.py's categories
    treemap(categories, final, path)    the final filesystem as rectangles, coloured by category

They need matplotlib (and squarify for the treemap): `pip install image-advisor[pictures]`.
Without them, available() is False and the reports are written without pictures.
"""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from pathlib import Path

from image_advisor.composition import CATEGORIES, DARK
from image_advisor.units import human_bytes


def available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("matplotlib", "squarify"))


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure as a PNG (110 dpi), and free it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
