"""make releases: what a release moves is read from manifests, each change edits what it names."""

from __future__ import annotations

from safetensors import safe_open

from scripts.images.context import scratch_context
from scripts.model import assemble as assembly
from scripts.results import load_json, save_rows
from scripts.studies import releases
from scripts.variants import BY_NAME, ROOT


def manifest(config: str, *layers: tuple[str, int]) -> dict:
    return {"config": {"digest": config, "size": 7}, "layers": [{"digest": d, "size": s} for d, s in layers]}


def test_only_blobs_the_other_side_lacks_move():
    first = releases.blobs(manifest("c1", ("base", 100), ("deps", 50), ("app", 3)))
    edited = releases.blobs(manifest("c2", ("base", 100), ("deps", 50), ("app2", 4)))
    assert releases.moved(first, set()) == (160, 4)  # the first release moves everything
    assert releases.moved(edited, set(first)) == (11, 2)  # the new app layer and the new config
    assert releases.moved(first, set(first)) == (0, 0)  # an unchanged rebuild with equal digests moves nothing


def test_each_change_edits_what_it_names(tmp_path):
    ctx = scratch_context(tmp_path / "ctx", [BY_NAME["onnx_image"]])
    before = {rel: (ctx / rel).read_bytes() for rel in ("app/server.py", "app/requirements-common.txt",
                                                        "model_parts/trained_top.safetensors")}
    touched = []
    for change in releases.CHANGES:
        releases.edit(ctx, change, 42)
        now = {rel: (ctx / rel).read_bytes() for rel in before}
        touched.append(sorted(rel for rel in before if now[rel] != before[rel]))
        before = now
    assert touched == [["app/server.py"], ["app/requirements-common.txt"], ["model_parts/trained_top.safetensors"], []]
    with safe_open(str(ctx / "model_parts/trained_top.safetensors"), "np") as part:
        assert part.metadata()["edited"] == "42"
        bias = part.get_tensor(assembly.NUDGED)
    with safe_open(str(ROOT / "model_parts/trained_top.safetensors"), "np") as part:
        committed = part.get_tensor(assembly.NUDGED)
    assert abs(float(bias[0] - committed[0]) - 1e-3) < 1e-6 and (bias[1:] == committed[1:]).all()
    assert (ROOT / "app/server.py").read_bytes() != (ctx / "app/server.py").read_bytes()  # the tree is untouched


def test_table_names_every_change():
    row = {"push_bytes": 2_000_000, "pull_bytes": 1_000_000}
    rows = {"first": row, "changes": {c: row for c in releases.CHANGES}}
    data = {"engine": "20.10", "variants": {"onnx_image": rows}}
    text = releases.markdown(data)
    assert all(change in text for change in releases.CHANGES)
    assert text.count("2.0 MB / 1.0 MB") == 1 + len(releases.CHANGES)


def test_a_run_of_some_variants_keeps_the_other_rows_and_a_full_run_replaces_them(tmp_path):
    path = tmp_path / "releases.json"
    save_rows(path, {"engine": "a", "variants": {"naive_image": 1, "onnx_image": 2}}, some=False)
    assert save_rows(path, {"engine": "b", "variants": {"onnx_image": 3}}, some=True) == \
        {"engine": "b", "variants": {"naive_image": 1, "onnx_image": 3}}
    assert load_json(path)["variants"] == {"naive_image": 1, "onnx_image": 3}
    save_rows(path, {"engine": "c", "variants": {"slim_image": 4}}, some=False)
    assert load_json(path) == {"engine": "c", "variants": {"slim_image": 4}}
