"""make compression's figures from two OCI layouts of the same files, gzip and zstd layers: the same
bytes unpacked, push bytes as the manifest adds them up."""

from __future__ import annotations

import gzip
import os

from backports import zstd

from scripts.studies import compression
from tests.test_reproducible import oci_layout, raw_layer


def test_gzip_and_zstd_layouts_of_one_image_unpack_to_the_same_bytes(tmp_path):
    layers = [raw_layer({"usr/lib/libx.so": os.urandom(50_000)}),
              raw_layer({"opt/venv/model.bin": b"\x01\x02" * 200_000, "opt/venv/m.py": b"x = 1\n" * 1000})]
    g = compression.figures(oci_layout(tmp_path / "g.tar", [gzip.compress(x, mtime=0) for x in layers]))
    z = compression.figures(oci_layout(tmp_path / "z.tar", [zstd.compress(x) for x in layers],
                                       media_type="application/vnd.oci.image.layer.v1.tar+zstd",
                                       decompress=zstd.decompress))
    assert g["unpacked_bytes"] == z["unpacked_bytes"] == sum(map(len, layers))
    assert g["media_types"] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    assert z["media_types"] == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    for row in (g, z):  # the config is pushed too: more than the layers alone
        assert row["push_bytes"] > row["layer_bytes"] > 0 and row["layers"] == 2
    assert z["layer_bytes"] != g["layer_bytes"]


def test_the_table_pairs_gzip_and_zstd_with_their_ratio_and_names_what_an_older_engine_said():
    g = {"push_bytes": 100_000_000, "push_seconds": 2.0, "pull_seconds": 4.0, "fresh_node_seconds": 5.0,
         "decompress_seconds": 2.0}
    z = {"push_bytes": 90_000_000, "push_seconds": 2.0, "pull_seconds": 3.0, "fresh_node_seconds": 4.5,
         "decompress_seconds": 0.5}
    data = {"variants": {"onnx_image": {"gzip": g, "zstd": z}, "naive_image": {"gzip": g, "zstd": {}}},
            "older_engine": {"engine": "20.10.24", "image": "onnx_image", "pull": "archive/tar: invalid tar header"}}
    header, body = compression.table(data)
    assert body[0][0] == "naive_image" and body[0][1] == "-"  # a row measured in part: no figure made up
    assert body[1] == ["onnx_image", "100 MB / 90.0 MB (0.90x)", "2.0 s / 2.0 s (1.00x)", "4.0 s / 3.0 s (0.75x)",
                       "5.0 s / 4.5 s (0.90x)", "2.0 s / 0.5 s (0.25x)"]
    assert len(header) == len(body[1])
    assert "Docker 20.10.24 pulling onnx_image with zstd layers: `archive/tar: invalid tar header`" in \
        compression.markdown(data)
