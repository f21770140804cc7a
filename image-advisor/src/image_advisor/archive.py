"""Open an image given as a file: a `docker save` archive or an OCI image layout, as a tar or a directory.

    with open_source(path) as source:
        config, layers = image_manifest(source, platform="linux/amd64")
        for layer in layers:
            with layer_tar(source, layer) as members: ...

Layers are read as they come, compressed or not: gzip (eStargz is gzip too), zstd, or a
plain tar; the compression is told by the blob's first bytes, not by its media type, so a
`docker save` archive (plain layers) and a registry's layout (compressed ones) read alike.
Nothing is extracted: every member is read as a stream, so no path inside an archive is
ever written to the host. What cannot be read raises ArchiveError with one line naming
what was found instead.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import platform as host_platform
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from image_advisor.errors import ArchiveError
from image_advisor.tarstream import Member, TarStream

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")
ATTESTATION = "attestation-manifest"  # buildx's provenance/SBOM manifests: platform unknown/unknown


def reason(exc: BaseException) -> str:
    """An exception's message on one line (tarfile's can span several)."""
    return str(exc).splitlines()[0].rstrip(":") if str(exc) else type(exc).__name__


class Source(Protocol):
    label: str

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> IO[bytes]: ...


def _inside(name: str) -> str:
    """A member name as a path inside the archive; ArchiveError for one that points outside it."""
    if name.startswith("/") or ".." in name.split("/"):
        raise ArchiveError(f"the archive names {name!r}, a path outside itself: refused")
    return posixpath.normpath(name)


class TarSource:
    def __init__(self, path: Path):
        self.label = str(path)
        try:
            self.tar = tarfile.open(path)  # noqa: SIM115 (closed by close())
            self.members = {posixpath.normpath(m.name): m for m in self.tar.getmembers()}
        except (tarfile.ReadError, EOFError, zlib.error, OSError) as exc:
            raise ArchiveError(f"{path} is not a tar archive, or it is truncated ({reason(exc)})") from None

    def exists(self, name: str) -> bool:
        return _inside(name) in self.members

    def size(self, name: str) -> int:
        member = self.members.get(_inside(name))
        return member.size if member is not None else 0

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(_inside(name))
        for _ in range(8):  # docker save links a repeated layer to its first copy; a cycle of links ends here
            if member is None or not member.issym():
                break
            member = self.members.get(_inside(posixpath.normpath(posixpath.join(posixpath.dirname(member.name),
                                                                                member.linkname))))
        found = self.tar.extractfile(member) if member is not None and (member.isfile() or member.islnk()) else None
        if found is None:
            raise ArchiveError(f"{self.label} has no {name}")
        return found

    def close(self) -> None:
        self.tar.close()


class DirSource:
    def __init__(self, path: Path):
        self.label = str(path)
        self.root = path.resolve()

    def _path(self, name: str) -> Path:
        path = (self.root / _inside(name)).resolve()
        if not path.is_relative_to(self.root):
            raise ArchiveError(f"{self.label}/{name} links outside the layout: refused")
        return path

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        if not path.is_file():
            raise ArchiveError(f"{self.label} has no {name}")
        return path.open("rb")

    def close(self) -> None:
        pass


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[Source]:
    """The archive or layout at path; ArchiveError when it is neither."""
    if path.is_dir():
        source: TarSource | DirSource = DirSource(path)
    elif path.is_file():
        source = TarSource(path)
    else:
        raise ArchiveError(f"no such file or directory: {path}")
    try:
        yield source
    finally:
        source.close()


class ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks (the Docker SDK's `docker save` stream) that seeks forward: a seek
    past data drops the chunks it covers without copying them, so tarfile reads a stream as it reads a file,
    skipping what it does not need (its stream mode reads every byte through a buffer it copies)."""

    def __init__(self, chunks: Iterable[bytes]):
        self.chunks = iter(chunks)
        self.pending = memoryview(b"")
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def _fill(self) -> bool:
        while not self.pending:
            try:
                self.pending = memoryview(next(self.chunks))
            except StopIteration:
                return False
        return True

    def readinto(self, buffer) -> int:
        if not self._fill():
            return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]  # a view: no copy of what is left
        self.position += n
        return n

    def read(self, size: int = -1) -> bytes:
        """size bytes, fewer only at the end (tarfile takes a short read for a truncated archive)."""
        parts = []
        while (size < 0 or size > 0) and self._fill():
            n = len(self.pending) if size < 0 else min(size, len(self.pending))
            parts.append(self.pending[:n].tobytes())
            self.pending = self.pending[n:]
            self.position += n
            size -= n if size > 0 else 0
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.position + offset if whence == io.SEEK_CUR else -1
        if target < self.position:
            raise io.UnsupportedOperation("a stream seeks forward only")
        while self.position < target and self._fill():
            n = min(target - self.position, len(self.pending))
            self.pending = self.pending[n:]
            self.position += n
        return self.position

    def drain(self) -> None:
        self.pending = memoryview(b"")
        for _ in self.chunks:
            pass


def _looks_like_layer(name: str, head: bytes) -> bool:
    return (head.startswith((GZIP_MAGIC, ZSTD_MAGIC)) or head[257:262] == b"ustar"
            or posixpath.basename(name) == "layer.tar")


class StreamSource:
    """A `docker save` tar read once, as it streams: each layer parsed as it passes (parse_layer), every small
    member (manifests, configs, indexes) kept; nothing written anywhere."""

    MAX_KEPT = 16 << 20  # a member this large that is no layer is skipped

    def __init__(self, chunks: Iterable[bytes], parse_layer: Callable[[TarStream], object],
                 label: str = "the engine's `docker save` stream"):
        self.label = label
        self.parse_layer = parse_layer
        self.kept: dict[str, bytes] = {}
        self.parsed: dict[str, object] = {}
        self.links: dict[str, str] = {}
        reader = ChunkReader(chunks)
        try:
            tar = TarStream(reader, closed=True)  # a stream cut between members must not read as a whole
            for member in tar:
                name = posixpath.normpath(member.name)
                if member.issym():
                    self.links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                elif member.islnk():
                    self.links[name] = posixpath.normpath(member.linkname)
                elif member.isfile():
                    self._member(name, tar, member)
            reader.drain()
        except READ_ERRORS as exc:
            raise ArchiveError(f"{self.label} is truncated or not a tar ({reason(exc)})") from None

    def _member(self, name: str, tar: TarStream, member: Member) -> None:
        data = tar.open(member)
        if _looks_like_layer(name, data.peek(512)[:512]):
            self.parsed[name] = self.parse_layer(TarStream(decompressed(data, member.size)))
        elif member.size <= self.MAX_KEPT:
            self.kept[name] = data.read()

    def _resolve(self, name: str) -> str:
        name = _inside(name)
        for _ in range(8):
            if name not in self.links:
                break
            name = self.links[name]
        return name

    def exists(self, name: str) -> bool:
        name = self._resolve(name)
        return name in self.kept or name in self.parsed

    def size(self, name: str) -> int:
        return len(self.kept.get(self._resolve(name), b""))

    def open(self, name: str) -> IO[bytes]:
        found = self.kept.get(self._resolve(name))
        if found is None:
            raise ArchiveError(f"{self.label} has no {name}")
        return io.BytesIO(found)

    def parsed_layer(self, layer: LayerRef):
        name = self._resolve(layer.name)
        if name in self.parsed:
            return self.parsed[name]
        if name in self.kept:  # a layer whose first bytes did not say so (an empty tar): parse it now
            with layer_tar(self, layer) as members:
                return self.parse_layer(members)
        raise ArchiveError(f"{self.label} has no layer {layer.name}")

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class LayerRef:
    name: str  # where the blob is inside the archive
    media_type: str  # "" in a Docker manifest.json, which does not say


def blob(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if not hexdigest or "/" in digest:
        raise ArchiveError(f"{digest!r} is not a digest")
    return f"blobs/{algorithm}/{hexdigest}"


def _json(source: Source, name: str) -> dict | list:
    try:
        with source.open(name) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{source.label}: {name} is not JSON ({reason(exc)})") from None
    except (tarfile.ReadError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{source.label} is truncated: {name} cannot be read ({reason(exc)})") from None


def default_platform() -> str:
    machine = host_platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux/{arch}"


def _platform(descriptor: dict) -> str:
    p = descriptor.get("platform") or {}
    name = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return f"{name}/{p['variant']}" if p.get("variant") else name


def _matches(found: str, wanted: str) -> bool:
    return found == wanted or (found.count("/") == 2 and wanted.count("/") == 1 and found.rsplit("/", 1)[0] == wanted)


def _choose(source: Source, index: dict, wanted: str) -> dict:
    """The descriptor of index that is an image for the wanted platform and whose blob the archive holds."""
    images = [d for d in index.get("manifests", [])
              if (d.get("annotations") or {}).get("vnd.docker.reference.type") != ATTESTATION]
    present = [d for d in images if source.exists(blob(d.get("digest", "")))]
    if not present:
        raise ArchiveError(f"{source.label}: its index names {len(images)} image(s), none of whose manifests "
                           "it holds")
    if len(present) == 1 and not (present[0].get("platform") or {}).get("architecture"):
        return present[0]
    matching = [d for d in present if _matches(_platform(d), wanted)]
    if matching:
        return matching[0]
    if len(present) == 1 and not wanted:
        return present[0]
    held = ", ".join(sorted({_platform(d) for d in present}))
    raise ArchiveError(f"{source.label} has no image for {wanted}: it holds {held} (choose one with --platform)")


def image_manifest(source: Source, platform: str = "") -> tuple[dict, list[LayerRef]]:
    """(image config, layers bottom first) of the one image in the archive, for platform where it holds several."""
    wanted = platform or default_platform()
    if source.exists("manifest.json"):  # docker save, classic store or containerd store
        listed = _json(source, "manifest.json")
        if not isinstance(listed, list) or not listed or not isinstance(listed[0], dict) or "Config" not in listed[0]:
            raise ArchiveError(f"{source.label}: manifest.json is not a `docker save` manifest")
        entry = listed[0]
        return _config(source, entry["Config"]), [LayerRef(_inside(name), "") for name in entry.get("Layers", [])]
    if not source.exists("index.json"):
        raise ArchiveError(f"{source.label} has neither manifest.json nor index.json: "
                           "not a `docker save` archive or an OCI image layout")
    document = _json(source, "index.json")
    for _ in range(8):  # an index may point at another index (a multi-platform image)
        kind = document.get("mediaType", "") if isinstance(document, dict) else ""
        if isinstance(document, dict) and "layers" in document:
            if kind and kind not in MANIFEST_TYPES:
                raise ArchiveError(f"{source.label}: unknown manifest media type {kind}")
            return _config(source, blob(document["config"]["digest"]), document["config"].get("mediaType", "")), \
                [_layer(source, d) for d in document["layers"]]
        if not isinstance(document, dict) or "manifests" not in document:
            raise ArchiveError(f"{source.label}: a document that is neither an image index nor a manifest")
        if kind and kind not in INDEX_TYPES:
            raise ArchiveError(f"{source.label}: unknown index media type {kind}")
        descriptor = _choose(source, document, wanted)
        document = _json(source, blob(descriptor["digest"]))
    raise ArchiveError(f"{source.label}: indexes nested more than 8 deep")


def _config(source: Source, name: str, media_type: str = "") -> dict:
    if media_type and media_type not in CONFIG_TYPES:
        raise ArchiveError(f"{source.label}: not a container image (its config is {media_type})")
    config = _json(source, name)
    if not isinstance(config, dict):
        raise ArchiveError(f"{source.label}: {name} is not an image config")
    return config


def _layer(source: Source, descriptor: dict) -> LayerRef:
    kind = descriptor.get("mediaType", "")
    if kind and not kind.startswith(LAYER_PREFIXES):
        raise ArchiveError(f"{source.label}: a layer of unknown media type {kind}, not a filesystem layer")
    return LayerRef(blob(descriptor["digest"]), kind)


def _zstd_reader(raw: IO[bytes]) -> IO[bytes]:
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        try:
            from backports import zstd  # the same module for older Pythons (pip install backports.zstd)
        except ImportError:
            raise ArchiveError("a zstd-compressed layer: reading it needs Python 3.14 or the backports.zstd "
                               "package (pip install backports.zstd)") from None
    return zstd.ZstdFile(raw)


BOMB_RATIO = 100  # a compressed layer may expand this many times ...
BOMB_FLOOR = 1 << 30  # ... or to this many bytes, whichever is more; past that it is refused


class Bounded:
    """A decompressed layer that refuses to be read or skipped past limit bytes (a decompression bomb costs
    a line, not the machine's time)."""

    def __init__(self, inner: IO[bytes], compressed: int):
        self.inner = inner
        self.compressed = compressed
        self.limit = max(BOMB_RATIO * compressed, BOMB_FLOOR)

    def _refuse_past(self, target: int) -> None:
        if target > self.limit:
            raise ArchiveError(f"a layer of {self.compressed:,} compressed bytes decompresses to more than "
                               f"{self.limit:,}: refused (a decompression bomb?)")

    def read(self, size: int = -1) -> bytes:
        self._refuse_past(self.inner.tell() + (size if size >= 0 else self.limit + 1))
        return self.inner.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.inner.tell() + offset if whence == io.SEEK_CUR else -1
        if whence == io.SEEK_END:
            raise io.UnsupportedOperation("a compressed layer has no known end")
        self._refuse_past(target)
        return self.inner.seek(target)

    def tell(self) -> int:
        return self.inner.tell()

    def close(self) -> None:
        self.inner.close()


def decompressed(raw: IO[bytes], compressed: int = 0) -> IO[bytes]:
    """raw, decompressed by what its first bytes say it is: gzip, zstd or a plain tar; a compressed one is
    Bounded by its compressed size (compressed, when known)."""
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        return Bounded(gzip.GzipFile(fileobj=buffered, mode="rb"), compressed)  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC):
        return Bounded(_zstd_reader(buffered), compressed)  # type: ignore[return-value]
    return buffered


READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.ReadError, EOFError, zlib.error, gzip.BadGzipFile)
with contextlib.suppress(ImportError):
    from backports.zstd import ZstdError
    READ_ERRORS += (ZstdError,)
with contextlib.suppress(ImportError):
    from compression.zstd import ZstdError as ZstdError314
    READ_ERRORS += (ZstdError314,)


@contextlib.contextmanager
def layer_tar(source: Source, layer: LayerRef) -> Iterator[TarStream]:
    """The layer as a streamed tar (read its members in order, once); ArchiveError when it is not one."""
    try:
        with source.open(layer.name) as raw:
            yield TarStream(decompressed(raw, source.size(layer.name)))
    except READ_ERRORS as exc:
        raise ArchiveError(f"{source.label}: layer {layer.name} is truncated or not a tar ({reason(exc)})") from None


@contextlib.contextmanager
def layer_tarfile(source: Source, layer: LayerRef) -> Iterator[tarfile.TarFile]:
    """The layer as the standard library's streamed tarfile, every header field read (owners, times): slower
    than layer_tar, for a caller that compares layers field by field."""
    try:
        with source.open(layer.name) as raw, \
                tarfile.open(fileobj=decompressed(raw, source.size(layer.name)), mode="r:") as members:
            yield members
    except READ_ERRORS as exc:
        raise ArchiveError(f"{source.label}: layer {layer.name} is truncated or not a tar ({reason(exc)})") from None


def is_docker_archive(path: Path) -> bool:
    """A tar with Docker's manifest.json (what dive's docker-archive source reads)."""
    if not path.is_file():
        return False
    try:
        with tarfile.open(path) as tar:
            return any(posixpath.normpath(m.name) == "manifest.json" for m in tar)
    except (tarfile.ReadError, EOFError, zlib.error, OSError):
        return False


def is_file_reference(ref: str) -> bool:
    """Whether an image argument names a file or directory here rather than an image in the engine:
    one that exists, or one written as a path (no image reference starts with / or . or ends in .tar)."""
    return os.path.exists(ref) or ref.startswith(("/", "./", "../", "~")) or ref.endswith((".tar", ".tar.gz"))
