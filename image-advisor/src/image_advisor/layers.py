"""Read an image's layers (`docker save`, an OCI layout) and work out where its bytes are.

Wasted bytes, as computed here: bytes of every file copy that a later layer
overwrites (including a chmod/chown, which copies the whole file up), deletes
with a whiteout, or deletes by deleting a parent directory (a whiteout of the
directory, or an opaque-directory marker). Each hidden copy counts once; the
copy that survives in the final filesystem is never waste.

dive 0.13 reports "wasted" differently: for every path seen in more than one
layer it adds up *all* copies, the surviving one included, and it matches a
whiteout only to the exact path it names, so files removed by deleting their
parent directory are not counted at all (dive issue #684).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from image_advisor.archive import StreamSource, image_manifest, layer_tar, open_source
from image_advisor.tarstream import Member, TarStream

T = TypeVar("T")

WHITEOUT = ".wh."
SITE_PACKAGES = re.compile(r"(^|/)(site|dist)-packages$")  # where installed distributions live
OPAQUE = ".wh..wh..opq"
# Text files read out of the layers for attribution (Python distributions, OS packages).
CAPTURE_SUFFIXES = (".dist-info/RECORD", ".dist-info/METADATA")
CAPTURE_PREFIXES = ("var/lib/dpkg/status", "var/lib/dpkg/info/", "etc/os-release", "usr/lib/os-release")


@dataclass(frozen=True, slots=True)
class Entry:
    """One tar member of a layer: a file, dir, link or whiteout."""

    path: str  # normalized, no leading "./" or "/"
    size: int = 0
    kind: str = "file"  # file | dir | symlink | hardlink | other
    mode: int = 0o644  # permission bits, setuid/setgid/sticky included


@dataclass
class Layer:
    created_by: str
    entries: list[Entry]
    size: int = 0  # bytes of file content in this layer (what `docker history` shows)


@dataclass
class Analysis:
    final: dict[str, Entry]  # path -> surviving entry
    wasted_bytes: int
    wasted: list[tuple[str, int, int, str]]  # (path, bytes, layer index, how it was hidden)
    layer_sizes: list[int]
    origin: dict[str, int] = field(default_factory=dict)  # path -> index of the layer its surviving copy is in

    @property
    def total_bytes(self) -> int:
        return sum(self.layer_sizes)

    @property
    def final_bytes(self) -> int:
        return sum(e.size for e in self.final.values())


def normalize(name: str) -> str:
    """A member's name as a path from the root: no leading or trailing slash, no `.` or `..` parts."""
    plain = name.rstrip("/").lstrip("/")  # a tar member's ./ aside, dpkg lists and RECORD name paths absolute
    if (plain.startswith(("./", "../")) or plain.endswith(("/.", "/..")) or plain in (".", "..")
            or "//" in plain or "/./" in plain or "/../" in plain):
        return posixpath.normpath("/" + name).lstrip("/")
    return plain  # already plain, as nearly every name is: normpath's work would change nothing


def analyze(layers: list[Layer]) -> Analysis:
    """Replay the layers as overlayfs would and account for every hidden file copy."""
    view: dict[str, tuple[Entry, int]] = {}  # path -> (entry, layer index)
    children: dict[str, set[str]] = defaultdict(set)  # dir -> direct children paths in view
    wasted: list[tuple[str, int, int, str]] = []

    def remove_tree(path: str, how: str, by_layer: int) -> None:
        stack = [path]
        while stack:
            p = stack.pop()
            if p in view:
                entry, idx = view.pop(p)
                children[p.rpartition("/")[0]].discard(p)
                if entry.size:
                    wasted.append((p, entry.size, idx, how))
            stack.extend(children.pop(p, ()))

    for index, layer in enumerate(layers):
        # Whiteouts apply to lower layers only, so handle them before this layer's own files.
        for entry in layer.entries:
            parent, _, base = entry.path.rpartition("/")  # normalized: as posixpath.split
            if base == OPAQUE:
                for child in list(children.get(parent, ())):
                    remove_tree(child, f"directory {parent or '/'} made opaque in layer {index}", index)
            elif base.startswith(WHITEOUT):
                target = posixpath.join(parent, base[len(WHITEOUT):])
                how = "deleted" if target not in children else "parent directory deleted"
                remove_tree(target, f"{how} in layer {index}", index)
        for entry in layer.entries:
            path = entry.path
            parent, _, base = path.rpartition("/")
            if base.startswith(WHITEOUT):
                continue
            old = view.get(path)
            if old is not None:
                old_entry, old_index = old
                if old_entry.kind == "dir" and entry.kind == "dir":
                    view[path] = (entry, index)  # same directory, new metadata: no bytes hidden
                    continue
                if old_entry.kind == "dir":  # a directory replaced by a file hides its whole tree
                    remove_tree(path, f"directory replaced in layer {index}", index)
                else:
                    view.pop(path)
                    if old_entry.size:
                        wasted.append((path, old_entry.size, old_index, f"overwritten in layer {index}"))
            view[path] = (entry, index)
            children[parent].add(path)
    final = {p: e for p, (e, _) in view.items()}
    origin = {p: i for p, (_, i) in view.items()}
    return Analysis(final, sum(w[1] for w in wasted), wasted, [layer.size for layer in layers], origin)


def dive_style_waste(layers: list[Layer]) -> int:
    """What dive 0.13 would call wasted bytes, for comparison (see module docstring)."""
    copies: dict[str, list[int]] = defaultdict(list)
    for layer in layers:
        for entry in layer.entries:
            parent, _, base = entry.path.rpartition("/")  # normalized: as posixpath.split
            if base.startswith(WHITEOUT) and base != OPAQUE:
                target = posixpath.join(parent, base[len(WHITEOUT):])
                copies[target].append(0)
            elif entry.kind != "dir":
                copies[entry.path].append(entry.size)
    return sum(sum(sizes) for sizes in copies.values() if len(sizes) > 1)


# --- reading `docker save` output ------------------------------------------------------------


@dataclass
class SavedImage:
    layers: list[Layer]
    config: dict
    captured: dict[str, str] = field(default_factory=dict)  # path -> text of the surviving copy
    # what several rules ask of the same final view, worked out once: (name, id of the view) -> (the view, the
    # answer); the view is held, so its id is not reused while the answer is kept
    memo: dict[tuple[str, int], tuple[dict, object]] = field(default_factory=dict, repr=False, compare=False)

    def remembered(self, name: str, final: dict, work: Callable[[], T]) -> T:
        """work()'s answer for this final view, computed on the first call only."""
        found = self.memo.get((name, id(final)))
        if found is None:
            found = self.memo[(name, id(final))] = (final, work())
        return found[1]  # type: ignore[return-value]


def _kind(member: Member) -> str:
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "file" if member.isfile() else "other"


def _wants(path: str) -> bool:
    return (path.endswith(CAPTURE_SUFFIXES) or path.startswith(CAPTURE_PREFIXES)
            or (path.startswith("usr/share/doc/") and path.endswith("/copyright") and path.count("/") == 4))


@dataclass
class ParsedLayer:
    """One layer read once: its entries, the text files worth keeping, and the paths its whiteouts hide."""

    entries: list[Entry]
    captured: dict[str, str]
    whiteouts: list[str]


def parse_layer(members: TarStream) -> ParsedLayer:
    """Read a layer's tar stream once, in order."""
    entries: list[Entry] = []
    captured: dict[str, str] = {}
    whiteouts: list[str] = []
    for member in members:
        path = normalize(member.name)
        if not path:
            continue
        size = member.size
        entries.append(Entry(path, size, _kind(member), member.mode))
        if member.isfile() and _wants(path) and size < 50_000_000:
            captured[path] = members.read(member).decode("utf-8", errors="replace")
        elif WHITEOUT in path and path.rpartition("/")[2].startswith(WHITEOUT):
            whiteouts.append(posixpath.join(posixpath.dirname(path), posixpath.basename(path)[len(WHITEOUT):]))
    return ParsedLayer(entries, captured, whiteouts)


def assemble(config: dict, parsed: list[ParsedLayer]) -> SavedImage:
    """The layers bottom first with their history, and the captured files that survive them all."""
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    layers: list[Layer] = []
    captured: dict[str, str] = {}
    for n, layer in enumerate(parsed):
        for target in layer.whiteouts:  # a whiteout hides what the layers below wrote
            for key in [k for k in captured if k == target or k.startswith(target + "/")]:
                del captured[key]
        captured.update(layer.captured)
        created_by = history[n].get("created_by", "") if n < len(history) else ""
        layers.append(Layer(created_by, layer.entries, sum(e.size for e in layer.entries)))
    return SavedImage(layers, config, captured)


def read_saved(path: Path, platform: str = "") -> SavedImage:
    """Parse an image given as a file into layers with history: a `docker save` archive (Docker's
    manifest.json, or the OCI layout the containerd image store writes) or an OCI image layout, as a
    tar or a directory; layers plain, gzip or zstd (archive.py)."""
    with open_source(path) as source:
        config, refs = image_manifest(source, platform)
        parsed = []
        for ref in refs:
            with layer_tar(source, ref) as members:
                parsed.append(parse_layer(members))
    return assemble(config, parsed)


def read_stream(chunks: Iterable[bytes], platform: str = "") -> SavedImage:
    """The same from `docker save` output as it arrives (the engine's stream, never written to disk):
    every layer is parsed as it passes, and put in order once the manifest, which comes last, is read."""
    source = StreamSource(chunks, parse_layer)
    config, refs = image_manifest(source, platform)
    return assemble(config, [source.parsed_layer(ref) for ref in refs])


# --- attribution -------------------------------------------------------------------------------


def largest_dirs(final: dict[str, Entry], limit: int = 10, max_depth: int = 6) -> list[tuple[str, int]]:
    """Largest directories by bytes beneath them; a directory whose bytes sit mostly (>90 %)
    in one child is skipped in favour of that child, so the list points at something."""
    totals: dict[str, int] = defaultdict(int)
    child_totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    in_dir: dict[str, int] = defaultdict(int)  # bytes of the files directly in each directory
    for path, entry in final.items():
        if entry.size:
            in_dir[path.rpartition("/")[0]] += entry.size
    for directory, size in in_dir.items():
        parts = directory.split("/") if directory else []
        for depth in range(1, min(len(parts), max_depth) + 1):
            d = "/".join(parts[:depth])
            totals[d] += size
            if depth < len(parts):
                child_totals[d]["/".join(parts[: depth + 1])] += size
    informative = [d for d, size in totals.items()
                   if not child_totals[d] or max(child_totals[d].values()) <= 0.9 * size]
    return sorted(((f"/{d}", totals[d]) for d in informative), key=lambda x: -x[1])[:limit]


def distribution_files(saved: SavedImage, final: dict[str, Entry]) -> dict[str, set[str]]:
    """Installed distribution -> the surviving paths its RECORD names (the same dict on each call: read it).

    A RECORD entry whose .py was replaced by its bytecode (bytecode-only venvs) is counted
    through the .pyc beside it; compiled caches under __pycache__ are counted for their package.
    """
    return saved.remembered("distribution_files", final, lambda: _distribution_files(saved, final))


def _distribution_files(saved: SavedImage, final: dict[str, Entry]) -> dict[str, set[str]]:
    owned: dict[str, set[str]] = {}
    for record_path, text in saved.captured.items():
        if not record_path.endswith(".dist-info/RECORD") or record_path not in final:
            continue
        site = posixpath.dirname(posixpath.dirname(record_path))
        if not SITE_PACKAGES.search(site):
            continue  # vendored inside another package (setuptools/_vendor): that package's RECORD lists it
        name = posixpath.basename(posixpath.dirname(record_path)).removesuffix(".dist-info").rsplit("-", 1)[0]
        version = re.search(r"python3\.(\d+)", site)
        cache_tag = f".cpython-3{version.group(1) if version else '11'}.pyc"
        seen = owned.setdefault(name, set())
        for line in text.splitlines():
            rel = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if not rel:
                continue
            path = normalize(rel if rel.startswith("/") or not site else f"{site}/{rel}")  # posixpath.join's
            if path in final:
                seen.add(path)
            if path.endswith(".py"):
                folder, _, base = path.rpartition("/")
                cached = f"{folder}/__pycache__/{base[:-3]}{cache_tag}".lstrip("/")
                seen.update(p for p in (path + "c", cached) if p in final)
    return owned


def python_distributions(saved: SavedImage, final: dict[str, Entry]) -> list[tuple[str, int, int]]:
    """(distribution, bytes, files) from each installed distribution's RECORD."""
    results = [(name, sum(final[p].size for p in paths), len(paths))
               for name, paths in distribution_files(saved, final).items()]
    return sorted(results, key=lambda x: -x[1])


def os_package_files(saved: SavedImage, final: dict[str, Entry]) -> dict[str, set[str]]:
    """Installed Debian package -> the surviving files its dpkg list names (packages with a list only; the
    same dict on each call: read it)."""
    return saved.remembered("os_package_files", final, lambda: _os_package_files(saved, final))


def _os_package_files(saved: SavedImage, final: dict[str, Entry]) -> dict[str, set[str]]:
    owned: dict[str, set[str]] = {}
    for stanza in saved.captured.get("var/lib/dpkg/status", "").split("\n\n"):
        fields = _fields(stanza)
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            name, arch = fields["Package"], fields.get("Architecture", "")
            listing = (saved.captured.get(f"var/lib/dpkg/info/{name}:{arch}.list")
                       or saved.captured.get(f"var/lib/dpkg/info/{name}.list"))
            if listing is not None:  # (with no final view, as rules' _declared asks, nothing to match: no parse)
                owned[name] = {p for p in {normalize(x) for x in listing.splitlines() if x}
                               if p in final and final[p].kind == "file"} if final else set()
    return owned


def installed_packages(saved: SavedImage, final: dict[str, Entry] | None = None) -> list[dict[str, str]]:
    """The control fields of every installed Debian package: dpkg's status database, and the
    distroless-style status.d/ files (those surviving in final, when it is given)."""
    stanzas = [f for f in map(_fields, saved.captured.get("var/lib/dpkg/status", "").split("\n\n"))
               if f.get("Status", "").endswith(" installed")]
    stanzas += [_fields(text) for path, text in saved.captured.items()
                if path.startswith("var/lib/dpkg/status.d/") and "." not in posixpath.basename(path)
                and (final is None or path in final)]
    return [f for f in stanzas if f.get("Package")]


def os_packages(saved: SavedImage, final: dict[str, Entry]) -> list[tuple[str, int, str]]:
    """(package, bytes, how measured) for each installed Debian package.

    dpkg file lists give the bytes actually present; distroless-style status.d entries
    and packages without a list have no file list, so their declared Installed-Size is used instead.
    """
    files = os_package_files(saved, final)
    packages = [(name, sum(final[p].size for p in paths), "files") for name, paths in files.items()]
    packages += [(f["Package"], int(f.get("Installed-Size", "0") or 0) * 1024, "declared")
                 for f in installed_packages(saved, final) if f["Package"] not in files]
    return sorted(packages, key=lambda x: -x[1])


def os_release(saved: SavedImage) -> dict[str, str]:
    """The image's /etc/os-release fields (ID, VERSION_CODENAME ...); {} when it has none."""
    text = saved.captured.get("etc/os-release") or saved.captured.get("usr/lib/os-release") or ""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip().strip('"')
    return out


GLIBC_RELEASE = {"2.31": "11", "2.36": "12", "2.41": "13"}  # glibc upstream version -> Debian release


def debian_release(saved: SavedImage) -> str:
    """The Debian release an image is built from ("12", "13"), or "" when it is not Debian's.

    From os-release where it says so; distroless images may have none, so libc6's version decides.
    """
    release = os_release(saved)
    if release.get("ID") == "debian" and release.get("VERSION_ID"):
        return release["VERSION_ID"]
    for fields in installed_packages(saved):
        if fields.get("Package") == "libc6":
            version = fields.get("Version", "")
            match = re.search(r"deb(\d+)u", version)
            return match.group(1) if match else GLIBC_RELEASE.get(".".join(version.split("-")[0].split(".")[:2]), "")
    return ""


def _fields(stanza: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stanza.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            out[key] = value.strip()
    return out


def instruction(created_by: str) -> str:
    """The Dockerfile instruction behind a history entry, without BuildKit's build-arg prefix.

    BuildKit records `RUN |3 A=1 B=2 /bin/sh -c cmd`; what a reader wants is `RUN cmd`.
    """
    text = " ".join(created_by.split())
    if not text:
        return "(base image layer)"
    match = re.match(r"^RUN \|\d+ (?:\S+=\S* )*(?:/bin/sh -c )?(.*)$", text)
    if match:
        return "RUN " + match.group(1)
    return re.sub(r"^(RUN )?/bin/sh -c (#\(nop\) )?", lambda m: "" if m.group(2) else "RUN ", text)


def layers_from_entries(spec: Iterable[Iterable[tuple[str, int, str]]]) -> list[Layer]:
    """Build Layer objects from (path, size, kind) tuples: for tests and examples."""
    layers = []
    for entries in spec:
        es = [Entry(normalize(p), s, k) for p, s, k in entries]
        layers.append(Layer("", es, sum(e.size for e in es)))
    return layers
