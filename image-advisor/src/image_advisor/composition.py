"""What an image is made of, in the same categories for every image (pictures.py draws them).

    file_categories(saved, analysis, runtime) -> path -> category for every file of the final filesystem
    composition(...)                          -> {category: bytes}, adding up to the image's size

Every byte comes from the layer replay and the per-distribution accounting of layers.py
(RECORD files, dpkg lists), never from guesses: a file is put in the first category below
whose rule claims it; what no rule claims is "other". A Python distribution is "dev extras"
when it is a known test, lint, notebook or build tool, or, where the profile names the
service's runtime distributions, when neither they nor what they require include it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from image_advisor.layers import Analysis, SavedImage, distribution_files

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
# Distributions a service never needs at run time: tests, linters, notebooks, REPLs, docs, build tools.
DEV_DISTRIBUTIONS = re.compile(
    r"^(pytest.*|coverage|hypothesis|tox|nox|black|ruff|flake8|pylint|mypy|isort|pre-commit|bandit|"
    r"jupyter.*|jupyterlab.*|notebook|nbconvert|nbformat|nbclient|ipykernel|ipython|ipywidgets|"
    r"sphinx.*|mkdocs.*|debugpy|line-profiler|memory-profiler|snakeviz|pandas-stubs|types-.*|"
    r"cython|pybind11|scikit-build.*|meson|meson-python|ninja|cmake|build|twine|hatchling|flit-core|poetry.*)$")
CACHE_PATHS = re.compile(r"^(root|home/[^/]+)/\.cache/|^var/lib/apt/lists/|^var/cache/(apt|debconf)/")
MODEL_PATHS = re.compile(r"^(opt|app)/model/")
APP_PATHS = re.compile(r"^app/")
PYTHON_PATHS = re.compile(r"^usr/(local/)?lib/python3\.\d+/(?!site-packages/|dist-packages/)"
                          r"|^usr/(local/)?bin/python3|^usr/(local/)?lib/(x86_64-linux-gnu/|aarch64-linux-gnu/)?"
                          r"libpython3|^usr/(local/)?include/python3")
OS_PATHS = re.compile(r"^(usr|etc|var|lib|lib64|bin|sbin|opt|srv|root|home|tmp|run)/")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
    return closure(roots, requires)


def closure(roots: Iterable[str], requires: dict[str, set[str]]) -> set[str]:
    """roots and everything they require, among the distributions requires knows."""
    seen, todo = set(), [r for r in roots if r in requires]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(d for d in requires.get(name, ()) if d in requires)
    return seen


def distribution_category(name: str, runtime: set[str] | None) -> str:
    """runtime: the closure of the profile's runtime distributions, or None without one."""
    key = canonical(name)
    if key in NAMED_DISTRIBUTIONS:
        return key
    if CUDA_DISTRIBUTIONS.match(key):
        return "CUDA libraries (nvidia-*, triton)"
    if key in INSTALLER:
        return "installer (pip, setuptools)"
    if DEV_DISTRIBUTIONS.match(key):
        return "dev extras"
    return "other Python deps" if runtime is None or key in runtime else "dev extras"


def file_categories(saved: SavedImage, analysis: Analysis, roots: set[str] | None = None
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> category for every surviving file, path -> distribution for files a RECORD names);
    roots: the service's runtime distributions (a profile's), or None where nothing says."""
    final = analysis.final
    runtime = None if roots is None else runtime_closure(saved, {canonical(r) for r in roots})
    dist_of: dict[str, str] = {}
    for name, paths in distribution_files(saved, final).items():
        for path in paths:
            dist_of[path] = name
    of_distribution = {name: distribution_category(name, runtime) for name in set(dist_of.values())}
    categories = {path: of_distribution[dist_of[path]] if path in dist_of else category_of_path(path)
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
