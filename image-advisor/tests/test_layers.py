"""Waste accounting on synthetic layers: every case has an exact expected figure."""

from __future__ import annotations

from image_advisor.layers import analyze, dive_style_waste, largest_dirs, layers_from_entries


def test_overwrite_counts_only_the_hidden_copy():
    layers = layers_from_entries([[("a", 100, "file")], [("a", 30, "file")]])
    result = analyze(layers)
    assert result.wasted_bytes == 100
    assert result.final["a"].size == 30
    assert dive_style_waste(layers) == 130  # dive also counts the surviving copy


def test_deleted_file():
    layers = layers_from_entries([[("etc/big", 100, "file")], [("etc/.wh.big", 0, "file")]])
    result = analyze(layers)
    assert result.wasted_bytes == 100 and "etc/big" not in result.final
    assert dive_style_waste(layers) == 100


def test_deleted_directory_counts_every_file_beneath_it():
    layers = layers_from_entries([
        [("d", 0, "dir"), ("d/x", 40, "file"), ("d/sub", 0, "dir"), ("d/sub/y", 60, "file")],
        [(".wh.d", 0, "file")],
    ])
    result = analyze(layers)
    assert result.wasted_bytes == 100
    assert not any(p.startswith("d") for p in result.final)
    assert dive_style_waste(layers) == 0  # dive matches the whiteout to "d" only (its issue #684)


def test_chmod_in_a_later_layer_copies_the_file_up():
    layers = layers_from_entries([[("bin/tool", 50, "file")], [("bin/tool", 50, "file")]])
    assert analyze(layers).wasted_bytes == 50
    assert dive_style_waste(layers) == 100


def test_opaque_directory_hides_lower_contents_only():
    layers = layers_from_entries([
        [("cache", 0, "dir"), ("cache/old", 10, "file")],
        [("cache", 0, "dir"), ("cache/.wh..wh..opq", 0, "file"), ("cache/new", 5, "file")],
    ])
    result = analyze(layers)
    assert result.wasted_bytes == 10
    assert set(result.final) == {"cache", "cache/new"}


def test_directory_replaced_by_a_file():
    layers = layers_from_entries([[("p", 0, "dir"), ("p/a", 7, "file")], [("p", 3, "file")]])
    result = analyze(layers)
    assert result.wasted_bytes == 7 and result.final["p"].size == 3


def test_recreated_after_delete_counts_once():
    layers = layers_from_entries([[("f", 8, "file")], [(".wh.f", 0, "file")], [("f", 9, "file")]])
    result = analyze(layers)
    assert result.wasted_bytes == 8 and result.final["f"].size == 9


def test_same_directory_in_many_layers_is_not_waste():
    layers = layers_from_entries([[("usr", 0, "dir"), ("usr/a", 1, "file")], [("usr", 0, "dir"), ("usr/b", 2, "file")]])
    result = analyze(layers)
    assert result.wasted_bytes == 0 and result.final_bytes == 3


def test_largest_dirs_points_at_the_informative_level():
    layers = layers_from_entries([[("usr/lib/python/torch/lib.so", 900, "file"),
                                   ("usr/lib/python/np/x.so", 100, "file"),
                                   ("etc/conf", 10, "file")]])
    dirs = dict(largest_dirs(analyze(layers).final))
    assert dirs["/usr/lib/python"] == 1000  # /usr and /usr/lib only repeat this figure
    assert "/usr" not in dirs and "/usr/lib" not in dirs
    assert dirs["/etc"] == 10


def test_instruction_drops_buildkit_arg_prefix():
    from image_advisor.layers import instruction

    assert instruction("RUN |2 A=1 B=http://x/ /bin/sh -c pip install -r r.txt # buildkit") == \
        "RUN pip install -r r.txt # buildkit"
    assert instruction("RUN /bin/sh -c apt-get update # buildkit") == "RUN apt-get update # buildkit"
    assert instruction("COPY app /app/app # buildkit") == "COPY app /app/app # buildkit"
    assert instruction("") == "(base image layer)"


def test_python_distributions_from_record():
    from image_advisor.layers import Entry, SavedImage, python_distributions

    site = "usr/lib/python3.11/site-packages"
    final = {f"{site}/torch/__init__.py": Entry(f"{site}/torch/__init__.py", 10),
             f"{site}/torch/lib.so": Entry(f"{site}/torch/lib.so", 90),
             f"{site}/torch-2.13.0+cpu.dist-info/RECORD": Entry(f"{site}/torch-2.13.0+cpu.dist-info/RECORD", 5),
             f"{site}/tiny/mod.pyc": Entry(f"{site}/tiny/mod.pyc", 7),  # bytecode-only: .py gone
             f"{site}/tiny-1.0.dist-info/RECORD": Entry(f"{site}/tiny-1.0.dist-info/RECORD", 1)}
    saved = SavedImage([], {}, {
        f"{site}/torch-2.13.0+cpu.dist-info/RECORD": "torch/__init__.py,sha256=x,10\ntorch/lib.so,,90\n"
                                                     "torch-2.13.0+cpu.dist-info/RECORD,,\n",
        f"{site}/tiny-1.0.dist-info/RECORD": "tiny/mod.py,sha256=y,3\n",
    })
    assert python_distributions(saved, final) == [("torch", 105, 3), ("tiny", 7, 1)]


def test_record_paths_resolve_as_pip_wrote_them():
    """RECORD names files relative to site-packages (scripts up and out of it with ../), or absolute; a .py is also
    counted through its bytecode, beside it or in __pycache__ with the site's Python tag."""
    from image_advisor.layers import Entry, SavedImage, distribution_files

    site = "usr/local/lib/python3.12/site-packages"
    owned = [f"{site}/tool/__init__.py", f"{site}/tool/__pycache__/__init__.cpython-312.pyc", f"{site}/top.pyc",
             "usr/local/bin/tool", "etc/tool.conf"]
    others = [f"{site}/tool/__pycache__/__init__.cpython-311.pyc", f"{site}/tool/other.py"]
    final = {p: Entry(p, 1) for p in owned + others}
    record = "tool/__init__.py,sha256=x,1\ntop.py,,\n../../../bin/tool,,\n/etc/tool.conf,,\n\n"
    saved = SavedImage([], {}, {f"{site}/tool-1.0.dist-info/RECORD": record})
    final[f"{site}/tool-1.0.dist-info/RECORD"] = Entry(f"{site}/tool-1.0.dist-info/RECORD", 1)
    assert distribution_files(saved, final) == {"tool": set(owned)}


def _layer_tar(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            tar.addfile(tarfile.TarInfo(name))
    return out.getvalue()


def _write_archive(path, layout: str) -> None:
    """One image, two layers, saved the classic store's way (manifest.json) or the containerd store's
    (an OCI layout: index.json, blobs/sha256/..., layers gzipped, an index in front of the manifest)."""
    import gzip
    import hashlib
    import io
    import json
    import tarfile

    layers = [_layer_tar({"app/a.bin": b"a" * 100, "etc/os-release": b'ID=debian\nVERSION_ID="12"\n'}),
              _layer_tar({"app/b.bin": b"b" * 10}, whiteouts=("app/.wh.a.bin",))]
    config = json.dumps({"config": {"User": "1000"}, "history": [{"created_by": "COPY a"}, {"created_by": "RUN rm"}],
                         "rootfs": {"type": "layers"}}).encode()
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{digest}"] = data
        return digest

    if layout == "docker":
        files = {"config.json": config, "l0/layer.tar": layers[0], "l1/layer.tar": layers[1],
                 "manifest.json": json.dumps([{"Config": "config.json", "Layers": ["l0/layer.tar", "l1/layer.tar"]}])
                 .encode()}
    else:
        gz = "application/vnd.oci.image.layer.v1.tar+gzip"
        manifest = {"schemaVersion": 2, "config": {"digest": f"sha256:{put(config)}"},
                    "layers": [{"mediaType": gz, "digest": f"sha256:{put(gzip.compress(x))}"} for x in layers]}
        inner_index = {"schemaVersion": 2, "manifests": [{"digest": f"sha256:{put(json.dumps(manifest).encode())}"}]}
        index = {"schemaVersion": 2, "manifests": [{"digest": f"sha256:{put(json.dumps(inner_index).encode())}"}]}
        files = {**blobs, "oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index).encode()}
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_classic_and_oci_layout_archives_read_the_same(tmp_path):
    from image_advisor.layers import read_saved

    results = []
    for layout in ("docker", "oci"):
        _write_archive(tmp_path / f"{layout}.tar", layout)
        saved = read_saved(tmp_path / f"{layout}.tar")
        analysis = analyze(saved.layers)
        results.append(([x.created_by for x in saved.layers], [x.size for x in saved.layers], analysis.wasted_bytes,
                         sorted(analysis.final), saved.config["config"]["User"], saved.captured["etc/os-release"]))
    assert results[0] == results[1]
    assert results[0][2] == 100  # a.bin, deleted in the second layer
    assert results[0][1] == [100 + 26, 10]


def test_an_archive_that_is_not_docker_save_is_a_clear_error(tmp_path):
    import tarfile

    import pytest

    from image_advisor.errors import ArchiveError
    from image_advisor.layers import read_saved

    with tarfile.open(tmp_path / "x.tar", "w"):
        pass
    with pytest.raises(ArchiveError, match="neither manifest.json nor index.json"):
        read_saved(tmp_path / "x.tar")


def test_normalize_is_normpath_from_the_root():
    """Every name, plain or not, comes out as posixpath.normpath would make it from /, without the leading slash."""
    import itertools
    import posixpath

    from image_advisor.layers import normalize

    parts = ["", "/", "//", ".", "..", "a", "b.c", "./", "../", "a/", "/a", "a//b", "a/./b", "a/../b", "...", ".wh.x"]
    for combo in itertools.product(parts, repeat=3):
        name = "".join(combo)
        assert normalize(name) == posixpath.normpath("/" + name).lstrip("/"), name
