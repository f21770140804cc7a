"""An image given as a file: docker save archives and OCI layouts, as tars or directories, any layer compression."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import resource
import signal
import tarfile
import time
from pathlib import Path

import pytest
from backports import zstd
from tarballs import tar_bytes

from image_advisor import engine
from image_advisor.archive import default_platform
from image_advisor.engine import save_chunks, saved_image
from image_advisor.errors import AdvisorError, ArchiveError
from image_advisor.layers import analyze, read_saved, read_stream

OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


layer_tar = tar_bytes


LAYERS = [layer_tar({"app/a.bin": b"a" * 5000, "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
                     "usr/lib/python3.11/site-packages/x-1.0.dist-info/RECORD": b"x/__init__.py,,3\n",
                     "usr/lib/python3.11/site-packages/x/__init__.py": b"x=1"}),
          layer_tar({"app/b.bin": b"b" * 700}, whiteouts=("app/.wh.a.bin",))]
CONFIG = {"architecture": "amd64", "os": "linux", "config": {"User": "1000"},
          "history": [{"created_by": "COPY . /"}, {"created_by": "RUN rm /app/a.bin"}], "rootfs": {"type": "layers"}}


def estargz_like(data: bytes) -> bytes:
    """Several gzip members back to back, as eStargz writes a layer (one member per chunk)."""
    return b"".join(gzip.compress(data[i:i + 1024]) for i in range(0, len(data), 1024))


COMPRESS = {OCI_TAR: lambda b: b, OCI_GZIP: gzip.compress, OCI_ZSTD: zstd.compress, "estargz": estargz_like}


class Layout:
    """An OCI image layout being written: blobs by digest, then index.json."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}

    def put(self, data: bytes | dict, media_type: str = "") -> dict:
        raw = json.dumps(data).encode() if isinstance(data, dict) else data
        digest = hashlib.sha256(raw).hexdigest()
        self.files[f"blobs/sha256/{digest}"] = raw
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(raw)}

    def image(self, compression: str = OCI_GZIP, config: dict = CONFIG, layers: list[bytes] = LAYERS) -> dict:
        media = OCI_GZIP if compression == "estargz" else compression
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": self.put(config, "application/vnd.oci.image.config.v1+json"),
                    "layers": [self.put(COMPRESS[compression](x), media) for x in layers]}
        return self.put(manifest, MANIFEST)

    def index(self, manifests: list[dict]) -> dict:
        return {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}

    def write(self, path: Path, index: dict, as_dir: bool = False) -> Path:
        files = {**self.files, "index.json": json.dumps(index).encode()}
        if as_dir:
            for name, data in files.items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_bytes(data)
            return path
        write_tar(path, files)
        return path


def write_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def docker_save(path: Path) -> Path:
    config = json.dumps(CONFIG).encode()
    write_tar(path, {"c.json": config, "l0/layer.tar": LAYERS[0], "l1/layer.tar": LAYERS[1],
                     "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l0/layer.tar", "l1/layer.tar"]}])
                     .encode()})
    return path


def summary(path: Path, platform: str = "") -> tuple:
    saved = read_saved(path, platform)
    analysis = analyze(saved.layers)
    return ([x.created_by for x in saved.layers], [x.size for x in saved.layers], analysis.wasted_bytes,
            {p: e.size for p, e in analysis.final.items()}, saved.captured)


def test_every_layout_and_compression_reads_the_same_bytes(tmp_path):
    expected = summary(docker_save(tmp_path / "saved.tar"))
    assert expected[1] == [5000 + 26 + 17 + 3, 700] and expected[2] == 5000
    assert "usr/lib/python3.11/site-packages/x-1.0.dist-info/RECORD" in expected[4]
    for n, compression in enumerate(COMPRESS):
        layout = Layout()
        index = layout.index([layout.image(compression)])
        assert summary(layout.write(tmp_path / f"{n}.tar", index)) == expected, compression
        assert summary(layout.write(tmp_path / f"dir{n}", index, as_dir=True)) == expected, compression


def test_zstd_layers_really_are_zstd(tmp_path):
    layout = Layout()
    manifest = layout.image(OCI_ZSTD)
    listed = json.loads(layout.files[manifest["digest"].replace("sha256:", "blobs/sha256/")])
    blob = layout.files[listed["layers"][0]["digest"].replace("sha256:", "blobs/sha256/")]
    assert blob[:4] == b"\x28\xb5\x2f\xfd"


def platform_image(layout: Layout, arch: str, marker: bytes, variant: str = "") -> dict:
    descriptor = layout.image(OCI_GZIP, {**CONFIG, "architecture": arch}, [layer_tar({"arch": marker})])
    platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    return {**descriptor, "platform": platform}


def test_a_multi_platform_index_gives_the_requested_platform(tmp_path):
    layout = Layout()
    attestation = {**layout.put(b"{}", MANIFEST), "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    images = [platform_image(layout, "amd64", b"x86"), platform_image(layout, "arm64", b"arm", "v8"), attestation]
    inner = layout.put(layout.index(images), INDEX)
    path = layout.write(tmp_path / "multi.tar", layout.index([inner]))
    assert read_saved(path, "linux/arm64").captured == {}
    assert summary(path, "linux/arm64")[1] == [3]
    assert summary(path, "linux/arm64/v8")[1] == [3]
    assert summary(path, "linux/amd64")[3] == {"arch": 3}
    with pytest.raises(ArchiveError, match=r"has no image for linux/s390x: it holds linux/amd64, linux/arm64/v8 "
                                           r"\(choose one with --platform\)$"):
        read_saved(path, "linux/s390x")


def test_an_index_with_only_some_platforms_present_takes_the_one_held(tmp_path):
    layout = Layout()
    arm = platform_image(layout, "arm64", b"arm")
    amd = platform_image(layout, "amd64", b"x86")
    del layout.files[amd["digest"].replace("sha256:", "blobs/sha256/")]  # docker save of one pulled platform
    path = layout.write(tmp_path / "one.tar", layout.index([amd, arm]))
    with pytest.raises(ArchiveError, match="it holds linux/arm64"):
        read_saved(path, "linux/amd64")
    assert summary(path, "linux/arm64")[3] == {"arch": 3}
    assert default_platform().startswith("linux/")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: write_tar(p, {"hello.txt": b"hi"}), "neither manifest.json nor index.json"),
    (lambda p: p.write_bytes(b"not a tar at all" * 100), "not a tar archive, or it is truncated"),
    (lambda p: p.write_bytes(docker_save(p.with_suffix(".full")).read_bytes()[:3000]), "truncated"),
    (lambda p: write_tar(p, {"manifest.json": b"{\"a\": 1}"}), "not a `docker save` manifest"),
    (lambda p: write_tar(p, {"index.json": b"[1, 2"}), "index.json is not JSON"),
    (lambda p: write_tar(p, {"manifest.json": json.dumps([{"Config": "c.json", "Layers": ["../../etc/passwd"]}])
                             .encode(), "c.json": b"{}"}), "a path outside itself: refused"),
], ids=["not-an-image", "not-a-tar", "truncated", "bad-manifest", "bad-json", "path-outside"])
def test_what_cannot_be_read_is_one_line_naming_it(tmp_path, make, message):
    path = tmp_path / "x.tar"
    make(path)
    with pytest.raises(ArchiveError, match=message) as caught:
        read_saved(path)
    assert "\n" not in str(caught.value)


def test_unknown_media_types_are_named(tmp_path):
    layout = Layout()
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                "config": layout.put({}, "application/vnd.cncf.helm.config.v1+json"),
                "layers": [layout.put(b"chart", "application/vnd.cncf.helm.chart.content.v1.tar+gzip")]}
    path = layout.write(tmp_path / "helm.tar", layout.index([layout.put(manifest, MANIFEST)]))
    with pytest.raises(ArchiveError, match="not a container image \\(its config is application/vnd.cncf.helm"):
        read_saved(path)
    layout = Layout()
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": layout.put(CONFIG, ""),
                "layers": [layout.put(b"wasm", "application/vnd.wasm.content.layer.v1+wasm")]}
    path = layout.write(tmp_path / "wasm.tar", layout.index([layout.put(manifest, MANIFEST)]))
    with pytest.raises(ArchiveError, match="unknown media type application/vnd.wasm.content.layer.v1\\+wasm"):
        read_saved(path)


def test_a_layout_directory_cannot_be_led_outside_itself(tmp_path):
    outside = tmp_path / "secret"
    outside.write_bytes(b"{}")
    layout = Layout()
    index = layout.index([layout.image(OCI_GZIP)])
    root = layout.write(tmp_path / "layout", index, as_dir=True)
    (root / "index.json").unlink()
    (root / "index.json").symlink_to(outside)
    with pytest.raises(ArchiveError, match="links outside the layout: refused"):
        read_saved(root)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(ArchiveError, match="no such file or directory"):
        read_saved(tmp_path / "nothing.tar")


def as_oci_layout(saved: Path, out: Path, compression: str) -> Path:
    """A `docker save` archive rewritten as an OCI image layout directory, its layers compressed anew."""
    with tarfile.open(saved) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
        layout = Layout()
        config = json.load(tar.extractfile(entry["Config"]))
        media = OCI_GZIP if compression == "estargz" else compression
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": layout.put(config, "application/vnd.oci.image.config.v1+json"),
                    "layers": [layout.put(COMPRESS[compression](tar.extractfile(name).read()), media)
                               for name in entry["Layers"]]}
        return layout.write(out, layout.index([layout.put(manifest, MANIFEST)]), as_dir=True)


def test_an_engine_image_reads_the_same_saved_and_as_zstd_and_gzip_layouts(tmp_path, engine_image):
    """An image built in the engine (FROM scratch, two layers, one file deleted): read through `docker save`, then
    the same layers as OCI layouts with zstd and with gzip layers: the same files, sizes and captured metadata."""
    saved = tmp_path / "saved.tar"
    with saved_image(engine_image) as archive:
        saved.write_bytes(archive.read_bytes())
    expected = summary(saved)
    assert expected[2] == 4096 and "usr/lib/python3.11/site-packages/x-1.0.dist-info/RECORD" in expected[4]
    for compression in (OCI_ZSTD, OCI_GZIP, "estargz", OCI_TAR):
        assert summary(as_oci_layout(saved, tmp_path / compression.rsplit("+", 1)[-1], compression)) == expected


def test_a_docker_save_that_cannot_be_written_is_one_line(engine_image):
    """The temporary archive stops taking bytes (a full disk; here a file size limit): one line naming
    the folder, no stack trace, and nothing left behind."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(AdvisorError, match=r"^could not write .+'s docker save under (\S+): File too large") as exc:
            with saved_image(engine_image):
                pass
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert "\n" not in str(exc.value)
    assert not Path(re.search(r"under (\S+):", str(exc.value)).group(1)).exists()


def chunks_of(path: Path, size: int = 777) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + size] for i in range(0, len(data), size)]


def streamed(path: Path, platform: str = "") -> tuple:
    saved = read_stream(chunks_of(path), platform)
    analysis = analyze(saved.layers)
    return ([x.created_by for x in saved.layers], [x.size for x in saved.layers], analysis.wasted_bytes,
            {p: e.size for p, e in analysis.final.items()}, saved.captured)


def test_a_save_stream_reads_as_the_file_does(tmp_path):
    """docker save output parsed as it streams (never written): the same as the file, for both stores' layouts,
    every compression, and a docker save whose repeated layer is a symlink to the first copy."""
    expected = summary(docker_save(tmp_path / "saved.tar"))
    assert streamed(tmp_path / "saved.tar") == expected
    for n, compression in enumerate(COMPRESS):
        layout = Layout()
        path = layout.write(tmp_path / f"{n}.tar", layout.index([layout.image(compression)]))
        assert streamed(path) == expected, compression
    config = json.dumps({**CONFIG, "history": [{"created_by": "a"}, {"created_by": "b"}, {"created_by": "a again"}]})
    files = {"c.json": config.encode(), "l0/layer.tar": LAYERS[0], "l1/layer.tar": LAYERS[1],
             "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l0/layer.tar", "l1/layer.tar",
                                                                         "l2/layer.tar"]}]).encode()}
    with tarfile.open(tmp_path / "linked.tar", "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("l2/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../l0/layer.tar"
        tar.addfile(link)
    assert streamed(tmp_path / "linked.tar")[1] == summary(tmp_path / "linked.tar")[1] == [*expected[1], expected[1][0]]


def test_a_truncated_stream_is_one_line(tmp_path):
    data = docker_save(tmp_path / "saved.tar").read_bytes()
    with pytest.raises(ArchiveError, match="truncated or not a tar") as caught:
        read_stream([data[:3000]])
    assert "\n" not in str(caught.value)


def test_a_stream_cut_between_members_is_truncated(tmp_path):
    """The engine's stream ends with its connection: a cut at a member's boundary is no archive that lacks a
    manifest but a truncated one."""
    data = docker_save(tmp_path / "saved.tar").read_bytes()
    with tarfile.open(tmp_path / "saved.tar") as tar:
        boundaries = [m.offset for m in tar.getmembers()][1:]
    for cut in boundaries:
        with pytest.raises(ArchiveError, match="truncated or not a tar .*ended between two members"):
            read_stream([data[:cut]])


def test_the_engine_stream_reads_as_its_saved_file(tmp_path, engine_image):
    tee = tmp_path / "tee.tar"
    saved = read_stream(save_chunks(engine_image, tee))
    assert [x.size for x in saved.layers] == [x.size for x in read_saved(tee).layers]
    assert analyze(saved.layers).wasted_bytes == 4096


def test_the_command_line_asks_the_engine_first_and_reads_what_it_saves(tmp_path, engine_image, monkeypatch):
    """cli.main asks a plain engine for the save before the analysis loads; the report is the saved file's."""
    from image_advisor import cli, http_body

    asked: list[str] = []
    send = http_body.send
    monkeypatch.setattr(http_body, "send", lambda sock, path: (asked.append(path), send(sock, path)))
    tee = tmp_path / "saved.tar"
    for _ in save_chunks(engine_image, tee):  # the archive to compare with, written as it is read
        pass
    asked.clear()
    assert cli.main([engine_image, "--no-trace", "--no-dive", "--out", str(tmp_path / "engine")]) == 0
    assert cli.main([str(tee), "--no-trace", "--no-dive", "--out", str(tmp_path / "file")]) == 0
    if engine._plain_endpoint() is not None:
        assert asked == [http_body.save_path("", engine_image)]  # sent by start_save, unversioned
    from_engine = json.loads(next((tmp_path / "engine").glob("*.json")).read_text())
    from_file = json.loads(next((tmp_path / "file").glob("*.json")).read_text())
    for key in ("layers", "total_bytes", "final_bytes", "wasted_files", "composition"):
        assert from_engine[key] == from_file[key], key
    assert not engine._STARTED


def test_reading_from_the_engine_says_where_the_seconds_go(tmp_path, engine_image, capsys):
    from image_advisor import cli

    assert cli.main([engine_image, "--no-trace", "--no-dive", "--out", str(tmp_path)]) == 0
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[image-advisor]")]
    assert progress[0].startswith(f"[image-advisor] reading {engine_image} from the engine's `docker save`")
    assert re.fullmatch(r"\[image-advisor\] the first byte came after \d+\.\d s", progress[1])
    assert re.fullmatch(r"\[image-advisor\] read \d+ layers \(.+\) in \d+\.\d s; working out where the bytes are "
                        r"\.\.\.", progress[2])


def test_an_image_the_engine_lacks_is_one_line_and_nothing_is_left_open(engine_image, capsys):
    from image_advisor import cli

    assert cli.main(["image-advisor-test:no-such-tag", "--no-trace", "--no-dive"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: no image 'image-advisor-test:no-such-tag' in this engine "
                   "(build or pull it first, or give a file)")
    assert not engine._STARTED


def test_a_decompression_bomb_is_refused_without_being_read(tmp_path, monkeypatch):
    """A gzip layer whose one file claims 50 MB of zeros (50 KB compressed), above a floor lowered to 1 MB."""
    import image_advisor.archive as archive

    monkeypatch.setattr(archive, "BOMB_FLOOR", 1 << 20)
    layout = Layout()
    bomb = gzip.compress(tar_bytes({"zeros": bytes(50_000_000)}))
    assert len(bomb) < 100_000
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": layout.put(CONFIG, ""),
                "layers": [layout.put(bomb, OCI_GZIP)]}
    path = layout.write(tmp_path / "bomb.tar", layout.index([layout.put(manifest, MANIFEST)]))
    started = time.perf_counter()
    with pytest.raises(ArchiveError, match=r"decompresses to more than [\d,]+: refused \(a decompression bomb\?\)$"):
        read_saved(path)
    assert time.perf_counter() - started < 2
    with pytest.raises(ArchiveError, match="decompression bomb"):
        read_stream(chunks_of(path, 1 << 16))


def test_a_cycle_of_links_is_one_line(tmp_path):
    with tarfile.open(tmp_path / "cycle.tar", "w") as tar:
        data = json.dumps([{"Config": "a", "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, target in (("a", "b"), ("b", "a")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    with pytest.raises(ArchiveError, match="has no a$"):
        read_saved(tmp_path / "cycle.tar")
