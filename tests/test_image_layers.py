"""Waste accounting on synthetic layers: every case has an exact expected figure."""

from __future__ import annotations

from scripts.image_layers import analyze, dive_style_waste, largest_dirs, layers_from_entries


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
