"""The stand-in bases' sizes: what a push would send, and the table the docs carry."""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile

from scripts.studies import stand_ins


def test_the_counted_size_is_the_gzip_stream_a_push_would_send():
    rng = random.Random(0)  # text-like bytes, several reads long, on which levels 6 and 9 differ
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(400)]
    data = b" ".join(rng.choice(words) for _ in range(400_000))
    expected = len(gzip.compress(data, compresslevel=6, mtime=0))
    assert stand_ins.gzip_size(io.BytesIO(data)) == expected
    assert stand_ins.gzip_size(io.BytesIO(b"")) == len(gzip.compress(b"", compresslevel=6, mtime=0))


def test_a_layer_kept_compressed_is_counted_as_its_tar(tmp_path):
    """The same layer saved plain (the classic store) and gzip-compressed (as the containerd store may keep it)
    counts the same bytes."""
    layer = b"layer tar bytes " * 10_000
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        info = tarfile.TarInfo("usr/share/x")
        info.size = len(layer)
        tar.addfile(info, io.BytesIO(layer))
    plain_layer = inner.getvalue()
    counts = []
    for body in (plain_layer, gzip.compress(plain_layer)):
        archive = tmp_path / f"saved-{len(counts)}.tar"
        manifest = json.dumps([{"Config": "c.json", "RepoTags": [], "Layers": ["l0/layer.tar"]}]).encode()
        with tarfile.open(archive, "w") as out:
            for name, data in (("c.json", b'{"rootfs": {"diff_ids": []}, "history": []}'),
                               ("l0/layer.tar", body), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
        counts.append(stand_ins.layers_compressed(archive))
    assert counts[0] == counts[1] == (1, stand_ins.gzip_size(io.BytesIO(plain_layer)))


def test_the_table_sets_each_stand_in_beside_its_published_figure():
    row = {"official": "python:3.11-slim", "stand_in": "local/python:3.11-slim", "size_bytes": 142_000_000,
           "compressed_bytes": 52_800_000, "measured_at": "2026-12-06"}
    cc = {**row, "official": "gcr.io/distroless/cc-debian13:nonroot",
          "stand_in": "local/distroless-cc-debian13:nonroot", "compressed_bytes": 9_800_000}
    text = stand_ins.markdown({"gzip_level": 6, "bases": {"PYTHON_SLIM_IMAGE": row, "DISTROLESS_CC13_IMAGE": cc}})
    slim, distroless = text.splitlines()[2:4]
    assert "| 142 MB | 52.8 MB | 47.8 MB | 1.10 | docker-library/repo-info" in slim
    assert "| 9.8 MB | n/a | n/a | not published" in distroless and "2026-12-06" in distroless
