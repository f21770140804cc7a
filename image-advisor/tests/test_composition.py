"""Image composition: every byte in one category, and the pictures of it (synthetic layers, no engine)."""

from __future__ import annotations

import pytest

from image_advisor.composition import (
    CATEGORIES,
    composition,
    dependencies,
    file_categories,
)
from image_advisor.layers import SavedImage, analyze, layers_from_entries
from image_advisor.pictures import directory_boxes, stacked_chart, treemap

SITE = "venv/lib/python3.11/site-packages"


def record(*paths: str) -> str:
    return "".join(f"{p},sha256=x,1\n" for p in paths)


def metadata(*requires: str) -> str:
    return "Metadata-Version: 2.1\nName: x\n" + "".join(f"Requires-Dist: {r}\n" for r in requires) + "\nlong text\n"


def synthetic() -> tuple[SavedImage, object]:
    layers = layers_from_entries([
        [("usr/bin/bash", 1000, "file"), ("usr/lib/python3.11/os.py", 300, "file"),
         ("var/lib/apt/lists/big", 400, "file")],
        [("var/lib/apt/lists/.wh.big", 0, "file"), ("root/.cache/pip/wheel", 50, "file")],
        [(f"{SITE}/torch/lib.so", 5000, "file"), (f"{SITE}/flask/app.py", 700, "file"),
         (f"{SITE}/markupsafe/x.so", 30, "file"), (f"{SITE}/pandas/core.so", 800, "file"),
         (f"{SITE}/pip/__init__.py", 60, "file"), (f"{SITE}/stray.pth", 5, "file"),
         (f"{SITE}/torch-2.13.0.dist-info/RECORD", 0, "file"), (f"{SITE}/flask-3.1.3.dist-info/RECORD", 0, "file"),
         (f"{SITE}/markupsafe-3.0.4.dist-info/RECORD", 0, "file"),
         (f"{SITE}/pandas-3.1.1.dist-info/RECORD", 0, "file"), (f"{SITE}/pip-25.dist-info/RECORD", 0, "file")],
        [("opt/model/model.onnx", 2000, "file"), ("app/app/server.py", 20, "file"), ("weird/thing", 7, "file")],
    ])
    captured = {
        f"{SITE}/torch-2.13.0.dist-info/RECORD": record("torch/lib.so"),
        f"{SITE}/flask-3.1.3.dist-info/RECORD": record("flask/app.py"),
        f"{SITE}/markupsafe-3.0.4.dist-info/RECORD": record("markupsafe/x.so"),
        f"{SITE}/pandas-3.1.1.dist-info/RECORD": record("pandas/core.so"),
        f"{SITE}/pip-25.dist-info/RECORD": record("pip/__init__.py"),
        f"{SITE}/flask-3.1.3.dist-info/METADATA": metadata("MarkupSafe>=2.1", "pytest; extra == 'test'"),
        f"{SITE}/torch-2.13.0.dist-info/METADATA": metadata(),
        f"{SITE}/markupsafe-3.0.4.dist-info/METADATA": metadata(),
        f"{SITE}/pandas-3.1.1.dist-info/METADATA": metadata(),
    }
    return SavedImage(layers, {}, captured), analyze(layers)


def test_categories_add_up_to_the_image_and_each_byte_lands_once():
    saved, analysis = synthetic()
    categories, dist_of = file_categories(saved, analysis, roots={"torch", "flask"})
    comp = composition(analysis, categories, dist_of)
    sizes = comp["categories"]
    assert sum(sizes.values()) == comp["total_bytes"] == analysis.total_bytes == 10372
    assert sizes["OS files"] == 1000
    assert sizes["Python + stdlib"] == 300
    assert sizes["torch"] == 5000
    assert sizes["other Python deps"] == 730  # flask + markupsafe, which flask requires
    assert sizes["dev extras"] == 800  # pandas: installed, but nothing the service runs needs it
    assert sizes["installer (pip, setuptools)"] == 60
    assert sizes["caches (pip, apt lists)"] == 50  # the apt lists survive only as a hidden copy
    assert sizes["hidden (wasted)"] == 400
    assert sizes["model"] == 2000 and sizes["app"] == 20
    assert sizes["other"] == 5 + 7  # a stray file in site-packages, and a path no rule knows
    assert set(sizes) == set(CATEGORIES)


def test_without_a_runtime_list_only_known_tools_are_dev_extras():
    saved, analysis = synthetic()
    layers = saved.layers + layers_from_entries([[(f"{SITE}/pytest/main.py", 90, "file"),
                                                  (f"{SITE}/pytest-9.0.dist-info/RECORD", 0, "file")]])
    captured = {**saved.captured, f"{SITE}/pytest-9.0.dist-info/RECORD": record("pytest/main.py")}
    saved, analysis = SavedImage(layers, {}, captured), analyze(layers)
    sizes = composition(analysis, *file_categories(saved, analysis, roots=None))["categories"]
    assert sizes["dev extras"] == 90  # pytest; pandas, which a profile's runtime list would call dev extras, is not
    assert sizes["other Python deps"] == 700 + 30 + 800
    with_profile = composition(analysis, *file_categories(saved, analysis, roots={"torch", "flask"}))["categories"]
    assert with_profile["dev extras"] == 800 + 90


def test_large_runtime_dependencies_are_named():
    saved, analysis = synthetic()
    categories, dist_of = file_categories(saved, analysis, roots={"torch", "flask"})
    # flask holds >= 5 % of the image: its own segment; markupsafe stays in "other Python deps"
    assert composition(analysis, categories, dist_of)["named_deps"] == {"flask": 700}


def test_dependencies_skip_extras_and_the_long_description():
    text = metadata("numpy>=1.21", "sympy; extra == 'symbolic'", "packaging (>=20)") + "Requires-Dist: fake\n"
    assert dependencies(text) == {"numpy", "packaging"}


def test_directory_boxes_cover_every_byte_and_take_their_own_colour():
    files = {"usr/lib/a.so": (600, "torch"), "usr/lib/b.so": (300, "torch"), "usr/bin/x": (50, "OS files"),
             "etc/conf": (50, "OS files")}
    boxes = {name: (size, key) for name, size, key in directory_boxes(files, min_share=0.1)}
    assert sum(size for size, _ in boxes.values()) == 1000
    # Small dirs fold into their parent's "(rest)" box, coloured by what is in it, not by its drawn children.
    assert boxes == {"usr/lib": (900, "torch"), "usr (rest)": (50, "OS files"), " (rest)": (50, "OS files")}


def test_pictures_are_pngs(tmp_path):
    pytest.importorskip("matplotlib", reason="the pictures extra is not installed")
    saved, analysis = synthetic()
    categories, dist_of = file_categories(saved, analysis, roots={"torch", "flask"})
    comp = composition(analysis, categories, dist_of)
    chart = stacked_chart({"naive_image": comp, "onnx_image": comp}, tmp_path / "c.png", "t")
    tree = treemap(categories, analysis.final, tmp_path / "t.png", "t")
    for path in (chart, tree):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
