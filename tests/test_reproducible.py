"""make reproducible's comparison: two archives of one image are the same digest, or the files that differ
are named with what differs. The archives are OCI layouts made here, as BuildKit writes them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

from scripts.studies import reproducible
from scripts.variants import EPOCH, ROOT, VARIANTS

SOURCES = {"opt/app/server.py": b"print('hi')\n", "opt/app/model.bin": b"\x00" * 64}


def raw_layer(files: dict[str, bytes], mtimes: dict[str, int] | None = None) -> bytes:
    """An uncompressed layer holding files, each at its time in mtimes (else the epoch)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), (mtimes or {}).get(name, EPOCH)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def layer(files: dict[str, bytes], mtimes: dict[str, int]) -> bytes:
    return gzip.compress(raw_layer(files, mtimes), mtime=0)


def oci_layout(path: Path, layers: list[bytes], created: str = "1980-01-01T00:00:00Z",
               media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip", decompress=gzip.decompress) -> Path:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    diff_ids = ["sha256:" + hashlib.sha256(decompress(x)).hexdigest() for x in layers]
    config = {"architecture": "amd64", "os": "linux", "created": created,
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": created, "created_by": f"RUN step {i}"} for i in range(len(layers))]}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(json.dumps(config).encode())},
                "layers": [{"mediaType": media_type, **put(x)} for x in layers]}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"],
                                                **put(json.dumps(manifest).encode()),
                                                "platform": {"architecture": "amd64", "os": "linux"}}]}
    with tarfile.open(path, "w") as tar:
        files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", json.dumps(index).encode()),
                 *((f"blobs/sha256/{d.split(':')[1]}", b) for d, b in blobs.items())]
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_two_identical_builds_are_the_same_digest(tmp_path):
    base = layer({"etc/os-release": b"debian\n"}, {})
    a = oci_layout(tmp_path / "a.tar", [base, layer(SOURCES, {})])
    b = oci_layout(tmp_path / "b.tar", [base, layer(SOURCES, {})])
    assert reproducible.compare(a, b) == {"same": True, "digests": [reproducible.digest_of(a)] * 2,
                                          "rebuild_moves_bytes": 0}


def test_a_planted_build_timestamp_is_named_by_path_and_kind(tmp_path):
    """The check must fail on a file whose bytes hold the build's time, and name it; a file whose
    time alone differs is named as mtime, the layer that did not change is not listed."""
    base = layer({"etc/os-release": b"debian\n"}, {})
    a = oci_layout(tmp_path / "a.tar", [base, layer({**SOURCES, "opt/built-at": b"1765000000\n"}, {})],
                   created="2026-12-06T09:00:00Z")
    b = oci_layout(tmp_path / "b.tar", [base, layer({**SOURCES, "opt/built-at": b"1765000042\n"},
                                               {"opt/app/server.py": EPOCH + 42})], created="2026-12-06T09:00:42Z")
    row = reproducible.compare(a, b)
    assert row["same"] is False and row["digests"][0] != row["digests"][1]
    assert "created" in row["config"] and "history[1].created" in row["config"]
    [changed] = row["layers"]  # the base layer is the same in both
    assert changed["index"] == 1 and changed["created_by"] == "RUN step 1"
    assert changed["paths"] == [{"path": "opt/app/server.py", "what": ["mtime"]},
                                {"path": "opt/built-at", "what": ["content"]}]
    assert changed["by_what"] == {"content": 1, "mtime": 1}
    assert reproducible.summary(row) == "differ: 1 content, 1 mtime"
    manifest = reproducible.manifest_of(b)  # a registry holding a gets b's config and changed layer, not the base
    assert row["rebuild_moves_bytes"] == manifest["config"]["size"] + manifest["layers"][1]["size"]


def test_compare_on_the_command_line_says_one_line_for_a_file_that_is_not_an_archive(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    assert reproducible.main(["--compare", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_every_stage_that_compiles_python_or_adds_a_user_pins_the_epoch_first():
    """Bytecode written with SOURCE_DATE_EPOCH in the environment holds the source's hash, not its time, so
    it stays valid once BuildKit rewrites the file times, and useradd dates the account from it, not from
    the day of the build. So in every stage that installs Python packages or adds a user, the project's
    EPOCH is that ARG's default, declared before those steps (an ARG is per stage)."""
    needs = re.compile(r"^RUN .*(pip install|uv pip install|useradd)|^RUN --mount.*\\\n\s+/opt/uv/bin/uv pip install",
                       re.M)
    for path in sorted({p for v in VARIANTS for p in (v.dockerfile, v.step_dockerfile)}):
        stages = re.split(r"^FROM ", path.read_text(), flags=re.M)[1:]
        copied = re.findall(r"^COPY --from=(\S+) (\S+)", stages[-1], re.M)
        # Stages the image takes only a model folder from (model, export) ship none of their bytecode.
        model_only = {name for name, _ in copied} - {name for name, src in copied if not src.startswith("/opt/model")}
        for stage in stages:
            step = needs.search(stage)
            if not step or stage.split("\n", 1)[0].split(" AS ")[-1].strip() in model_only:
                continue
            declared = re.search(rf"^ARG SOURCE_DATE_EPOCH={EPOCH}$", stage[:step.start()], re.M)
            assert declared, f"{path.relative_to(ROOT)}: {step.group(0)[:50]!r} before ARG SOURCE_DATE_EPOCH={EPOCH}"


def test_the_committed_runs_differ_only_where_docs_releases_says():
    """docs/releases.md: with the times rewritten every variant but naive_image is one digest and its rebuild
    moves nothing; on either engine only naive_image's apt and pip caches differ in content, in the two
    steps that write them. Checked against both committed runs, so a new run that breaks the prose fails."""
    caches = ("var/cache/apt/", "root/.cache/pip/")
    for name in ("reproducible.json", "reproducible-docker26-containerd.json"):
        run = json.loads((ROOT / "results" / name).read_text())
        assert set(run["variants"]) == {v.name for v in VARIANTS}, name
        for variant, row in run["variants"].items():
            if run["rewrite_timestamps"] and variant != "naive_image":
                assert row["same"] and row["rebuild_moves_bytes"] == 0, (name, variant)
            content = [layer for layer in row.get("layers", []) if layer["by_what"].get("content")]
            if variant != "naive_image":
                assert not content, (name, variant, content)
                continue
            shell = re.compile(r"^RUN (\|\d+ )?(\S+=\S+ )*/bin/sh -c ")  # the build args BuildKit records first
            steps = [shell.sub("", layer["created_by"]) for layer in content]
            assert [s.split()[:2] for s in steps] == [["apt-get", "update"], ["pip", "install"]], (name, steps)
            paths = [p["path"] for layer in content for p in layer["paths"] if "content" in p["what"]]
            assert paths and all(p.startswith(caches) for p in paths), (name, paths)
