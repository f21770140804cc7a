"""What to change in an image, and what each change buys: the findings.

    advise(Evidence(...)) -> Advice: findings ranked by the bytes each saves

Every rule looks at the same evidence (the replayed layers of layers.py, the files each Python
distribution and OS package owns, the run-time trace of trace.py when there is one, reference
bases when the engine has them, and what the profile says: profile.py) and
claims the bytes it would remove. Rules run in a fixed order, most certain first, and a byte
claimed by one rule is never counted by a later one, so the findings add up: their sum is the
image's addressable bytes. The rules, their ids and the JSON schema are in docs/diagnose.md.

Confidence: "certain" (the bytes do nothing at run time: caches, copies hidden by a later
layer, files a .dockerignore keeps out), "likely" (never imported or never mapped while the
service answered the traced requests: code paths the trace did not exercise may still need
them, so apply the fix and run your tests), "estimate" (a figure scaled from measurements the
profile gives, labelled as one), "surface" (no bytes: what an attacker would find).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from image_advisor.composition import DEV_DISTRIBUTIONS, canonical, closure, dependencies
from image_advisor.layers import (
    Analysis,
    SavedImage,
    distribution_files,
    instruction,
    os_package_files,
    os_packages,
)
from image_advisor.profile import Profile
from image_advisor.trace import Trace
from image_advisor.units import human_bytes

CONFIDENCE_ORDER = ("certain", "likely", "estimate", "surface")
REFERENCE_OVERLAP = 0.9  # a base is compared against when the image holds this share of its packages
MIN_LIBRARY_BYTES = 1 << 20  # unmapped shared libraries of an imported distribution: report from 1 MiB
SO = re.compile(r"\.so(\.[0-9]+)*$")
SITE = re.compile(r"/(site|dist)-packages/")
SITE_DIR = re.compile(r"(^|/)(site|dist)-packages$")  # a distribution installed there, not vendored in another

CACHE_KINDS = (  # (rule id, pattern on a final path, what it is, the fix)
    ("cache-pip", re.compile(r"^(root|home/[^/]+)/\.cache/pip/"), "pip's cache",
     "pip install --no-cache-dir (or ENV PIP_NO_CACHE_DIR=1), or RUN --mount=type=cache,target=/root/.cache/pip"),
    ("cache-uv", re.compile(r"^(root|home/[^/]+)/\.cache/uv/"), "uv's cache",
     "uv pip install --no-cache, or RUN --mount=type=cache,target=/root/.cache/uv"),
    ("cache-conda", re.compile(r"^opt/conda/pkgs/|^(root|home/[^/]+)/\.conda/pkgs/"), "conda's package cache",
     "conda clean --all --yes in the RUN that installs"),
    ("cache-apt", re.compile(r"^var/cache/apt/"), "apt's downloaded .debs and caches",
     "install only the OS packages the service needs, and end that RUN with "
     "apt-get clean && rm -rf /var/lib/apt/lists/*"),
    ("cache-apt-lists", re.compile(r"^var/lib/apt/lists/"), "apt's package lists",
     "install only the OS packages the service needs, and end the RUN that runs "
     "apt-get update with rm -rf /var/lib/apt/lists/*"),
)
ANY_CACHE = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern, _, _ in CACHE_KINDS))  # one search a path
CONTEXT_KINDS = (  # what a COPY of the build context should not bring, and the .dockerignore line that keeps it out
    (re.compile(r"(^|/)\.git/"), ".git"),
    # Dotted names only: a venv COPY --from a build stage (history does not record --from) is meant to be there.
    (re.compile(r"(^|/)\.(venv|tox|nox)/"), ".venv"),
    (re.compile(r"(^|/)(\.ipynb_checkpoints|\.pytest_cache|\.mypy_cache|\.ruff_cache)/"), ".*_cache"),
    (re.compile(r"\.ipynb$"), "*.ipynb"),
    (re.compile(r"(^|/)tests?/"), "tests"),
    (re.compile(r"(^|/)(data|datasets)/"), "data"),
    (re.compile(r"(^|/)__pycache__/|\.py[co]$"), "**/__pycache__"),
    (re.compile(r"(^|/)\.DS_Store$"), "**/.DS_Store"),
)
INSTALLERS = ("pip", "setuptools", "wheel", "uv")
# Inside distributions: material for building against them or testing them, never for running them.
BUILD_FILES = re.compile(r"/include/.*\.(h|hh|hpp|cuh|inc)$|\.(h|hpp|cuh)$|/share/cmake/|\.cmake$|\.a$"
                         r"|/tests?/|/testing/_private/")
CUDA_DIST = re.compile(r"^nvidia-|^triton$|^cuda-")
TOOLCHAIN = re.compile(r"^(gcc|g\+\+|cpp|clang|llvm)(-[0-9.]+)?(-[a-z0-9-]+)?$"
                       r"|^lib(gcc|stdc\+\+)-[0-9]+-dev$|^binutils.*"
                       r"|^make$|^cmake|^build-essential$|^git$|^git-man$|^libc6?-dev$|^linux-libc-dev$"
                       r"|^pkgconf?|^autoconf$|^automake$|^libtool$|^patch$|^.*-dev$")


def is_toolchain(package: str) -> bool:
    """gcc-12, g++, libc6-dev, make, git ...; not gcc-12-base, the runtime libraries' shared base."""
    name = package.split(":")[0]
    return bool(TOOLCHAIN.match(name)) and not name.endswith("-base")


SHELLS = ("bin/sh", "bin/bash", "bin/dash", "usr/bin/sh", "usr/bin/bash", "usr/bin/dash", "bin/busybox")
PACKAGE_MANAGERS = ("usr/bin/apt-get", "usr/bin/apt", "usr/bin/dpkg", "bin/dpkg", "sbin/apk", "usr/bin/yum",
                    "usr/bin/dnf", "usr/bin/microdnf")
TORCH_STACK = ("torch", "transformers")


@dataclass
class Finding:
    rule: str  # stable id (docs/diagnose.md lists them)
    title: str
    bytes: int  # what the fix removes, counted once across all findings
    confidence: str  # certain | likely | estimate | surface
    fix: str  # the Dockerfile-level change
    demo: str  # where the profile's project shows the fix ("" where it shows none, or without a profile)
    evidence: list[str] = field(default_factory=list)
    seconds: float | None = None  # start-up seconds the fix saves, where measured

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Reference:
    """A base image to compare against (a slim or distroless base the profile names)."""

    name: str  # "slim" or "distroless"
    image: str
    packages: set[str]


@dataclass
class Evidence:
    saved: SavedImage
    analysis: Analysis
    dist_of: dict[str, str]  # path -> distribution (from RECORD)
    trace: Trace | None = None
    references: list[Reference] = field(default_factory=list)
    bytecode: dict | None = None  # measured cost of a stdlib without bytecode (trace.bytecode_seconds)
    profile: Profile = field(default_factory=Profile)


@dataclass
class Advice:
    findings: list[Finding]
    total_bytes: int
    notes: list[str] = field(default_factory=list)  # rules left out, and why
    # With a trace: every installed distribution none of whose files the service imported or mapped,
    # whichever finding claimed its bytes (dev tools, the installer ...), largest first.
    distributions_never_imported: list[tuple[str, int]] | None = None

    @property
    def addressable_bytes(self) -> int:
        return sum(f.bytes for f in self.findings)

    def to_json(self) -> dict:
        return {"total_bytes": self.total_bytes, "addressable_bytes": self.addressable_bytes,
                "addressable_share": round(self.addressable_bytes / max(self.total_bytes, 1), 4),
                "findings": [f.to_json() for f in self.findings], "notes": self.notes,
                "distributions_never_imported": None if self.distributions_never_imported is None
                else [list(x) for x in self.distributions_never_imported]}


class Ledger:
    """Which bytes a finding has already claimed: final files by path, hidden copies by (path, layer)."""

    def __init__(self, analysis: Analysis):
        self.final = analysis.final
        self.claimed: set = set()

    def take(self, paths: Iterable[str]) -> tuple[int, list[str]]:
        """Claim the unclaimed files among paths: (their bytes, the paths claimed)."""
        got = [p for p in paths if p not in self.claimed and p in self.final and self.final[p].size]
        self.claimed.update(got)
        return sum(self.final[p].size for p in got), got

    def take_hidden(self, copies: Iterable[tuple[str, int, int, str]]) -> int:
        got = [(p, i) for p, _, i, _ in copies if (p, i) not in self.claimed]
        self.claimed.update(got)
        sizes = {(p, i): s for p, s, i, _ in copies}
        return sum(sizes[k] for k in got)


def _top(paths: list[str], ledger: Ledger, group=lambda p: posixpath.dirname(p), limit: int = 5) -> list[str]:
    """The largest groups among paths, as evidence lines: '/dir: 12.3 MB'."""
    sizes: dict[str, int] = defaultdict(int)
    for p in paths:
        sizes[group(p)] += ledger.final[p].size
    return [f"/{g}: {human_bytes(s)}" for g, s in sorted(sizes.items(), key=lambda x: -x[1])[:limit]]


def _requires(saved: SavedImage) -> dict[str, set[str]]:
    out = {}
    for path, text in saved.captured.items():
        if path.endswith(".dist-info/METADATA") and SITE_DIR.search(path.rsplit("/", 2)[0]):
            name = path.rsplit("/", 2)[-2].removesuffix(".dist-info").rsplit("-", 1)[0]
            out[canonical(name)] = dependencies(text)
    return out


def exclusive_closure(targets: set[str], requires: dict[str, set[str]]) -> set[str]:
    """targets and what only they need: the closure of targets minus what every other top-level needs."""
    required_by_someone = {d for deps in requires.values() for d in deps}
    tops = {name for name in requires if name not in required_by_someone} - targets
    return closure(targets, requires) - closure(tops, requires)


class Rules:
    """The rules, in the order they claim bytes; each appends to self.findings."""

    def __init__(self, ev: Evidence):
        self.ev = ev
        self.profile = ev.profile
        self.ledger = Ledger(ev.analysis)
        self.final = ev.analysis.final
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.files_of = {canonical(n): ps for n, ps in distribution_files(ev.saved, self.final).items()}
        self.requires = _requires(ev.saved)
        trace = ev.trace if ev.trace is not None and ev.trace.ok else None
        self.used = trace.used if trace else None
        self.trace = trace
        if trace is None:
            why = ev.trace.reason if ev.trace is not None else "no trace was run (--no-trace)"
            self.notes.append(f"run-time rules left out (never-imported, unmapped-libraries, cuda-unmapped): {why}")

    def add(self, finding: Finding) -> None:
        if finding.bytes > 0 or finding.confidence == "surface" or finding.seconds:
            self.findings.append(finding)

    def imported(self, dist: str) -> bool:
        """Did the trace see any of its files? (setuptools' start-up hook, loaded by a .pth file, is not a use.)"""
        return self.used is not None and any(p in self.used and "/_distutils_hack/" not in p
                                             for p in self.files_of.get(dist, ()))

    # -- certain ---------------------------------------------------------------------------------
    def caches(self) -> None:
        cached = [p for p in self.final if ANY_CACHE.search(p)]  # a few of the image's paths, searched once each
        for rule, pattern, what, fix in CACHE_KINDS:
            size, paths = self.ledger.take(p for p in cached if pattern.search(p))
            self.add(Finding(rule, f"{what} left in the image", size, "certain", self.profile.fix(rule, fix),
                             self.profile.demo(rule), _top(paths, self.ledger)))

    def hidden(self) -> None:
        wasted = self.ev.analysis.wasted
        layers = self.ev.saved.layers
        deleted = [w for w in wasted if not w[3].startswith("overwritten")]
        overwritten = [w for w in wasted if w[3].startswith("overwritten")]

        def by_layer(copies) -> list[str]:
            sizes: dict[tuple[int, str], int] = defaultdict(int)
            for _, size, index, how in copies:
                sizes[(index, how)] += size
            return [f"layer {i} ({instruction(layers[i].created_by)[:60]}): {human_bytes(s)}, {how}"
                    for (i, how), s in sorted(sizes.items(), key=lambda x: -x[1])[:5]] + hidden_paths(copies, layers)

        self.add(Finding("deleted-in-later-layer", "files deleted by a later layer still ship in the layer below",
                         self.ledger.take_hidden(deleted), "certain",
                         self.profile.fix("deleted-in-later-layer", "delete in the same RUN that creates them "
                                          "(e.g. `apt-get install ... && rm -rf /var/lib/apt/lists/*`), or build in "
                                          "a stage of its own and COPY --from only the result"),
                         self.profile.demo("deleted-in-later-layer"), by_layer(deleted)))
        metadata = re.compile(r"\b(chmod|chown|touch|chgrp|setfacl)\b")
        dup = [w for w in overwritten if metadata.search(layers[int(re.search(r"\d+$", w[3]).group())].created_by)]
        rest = [w for w in overwritten if w not in dup]
        self.add(Finding("duplicated-by-metadata", "files copied up whole by a chmod/chown/touch in a later layer",
                         self.ledger.take_hidden(dup), "certain",
                         self.profile.fix("duplicated-by-metadata", "set ownership and mode where the file is "
                                          "written: COPY --chown=USER --chmod=MODE, or chmod/chown in the same RUN"),
                         self.profile.demo("duplicated-by-metadata"), by_layer(dup)))
        self.add(Finding("overwritten-in-later-layer", "files replaced by a later layer still ship in the layer below",
                         self.ledger.take_hidden(rest), "certain",
                         self.profile.fix("overwritten-in-later-layer", "write each file once: move the step that "
                                          "replaces it into the layer that creates it"),
                         self.profile.demo("overwritten-in-later-layer"), by_layer(rest)))

    def sourceless_module(self, path: str) -> bool:
        """A .pyc beside where its .py would be, with no .py: the module itself (a bytecode-only tree, such
        as a standard library copied COPY --from a build stage), not stray bytecode from the build context."""
        return path.endswith(".pyc") and "/__pycache__/" not in "/" + path and path[:-1] not in self.final

    def build_context(self) -> None:
        copy_layers = {i for i, layer in enumerate(self.ev.saved.layers)
                       if instruction(layer.created_by).startswith(("COPY", "ADD"))}
        from_context = [p for p, i in self.ev.analysis.origin.items()
                        if i in copy_layers and p not in self.ev.dist_of and not SITE.search("/" + p)
                        and not self.sourceless_module(p)]
        found: dict[str, list[str]] = {}
        total = 0
        for pattern, line in CONTEXT_KINDS:
            size, paths = self.ledger.take(p for p in from_context if pattern.search(p))
            if size:
                found[line] = paths
                total += size
        evidence = [f"{line}: {human_bytes(sum(self.final[p].size for p in ps))} (/{ps[0]} ...)"
                    for line, ps in found.items()]
        self.add(Finding("build-context", "files a COPY brought from the build context that the service never needs",
                         total, "certain", ".dockerignore: " + ", ".join(found) if found else "",
                         self.profile.demo("build-context"), evidence))

    # -- likely: by name ---------------------------------------------------------------------------
    def dev_distributions(self) -> None:
        dev = {d for d in self.files_of if DEV_DISTRIBUTIONS.match(d) and not self.imported(d)}
        names = exclusive_closure(dev, self.requires) | dev if dev else set()
        names = {n for n in names if not self.imported(n) and n not in INSTALLERS}
        size, paths = self.ledger.take(p for n in names for p in self.files_of.get(n, ()))
        self.add(Finding("dev-distributions", "test, lint and notebook tools (and what only they need) installed",
                         size, "likely", self.profile.fix("dev-distributions", "install only the runtime "
                                                          "requirements in the image; keep dev tools in a "
                                                          "requirements-dev.txt for CI and laptops"),
                         self.profile.demo("dev-distributions"),
                         [f"{len(names)} distributions: " + ", ".join(sorted(dev))[:300]]))

    def installers(self) -> None:
        """pip and friends: in a venv (remove them in the build stage) or in the base's own Python (no base has none
        but distroless)."""
        names = [n for n in INSTALLERS if n in self.files_of and not self.imported(n)]
        size, paths = self.ledger.take(p for n in names for p in self.files_of[n])
        venvs = {p.removesuffix("/pyvenv.cfg") for p in self.final if p.endswith("/pyvenv.cfg")}
        in_venv = sum(self.final[p].size for p in paths if any(p.startswith(v + "/") for v in venvs))
        where = sorted({_package_dir(p).split("/lib/python")[0] for p in paths})
        if in_venv * 2 >= size:
            key, fix = "installer-in-runtime/venv", ("install into a venv in a build stage and COPY --from only the "
                                                     "venv, with pip and setuptools removed")
        else:
            key, fix = "installer-in-runtime/base", ("the base's own Python carries its installer: a distroless base "
                                                     "has none (install in a build stage, COPY --from the venv)")
        fix, demo = self.profile.fix(key, fix), self.profile.demo(key)
        self.add(Finding("installer-in-runtime", "the installer ships with the service (no installs at run time)",
                         size, "likely", fix, demo, [", ".join(names) + " in " + ", ".join(f"/{w}" for w in where)]))

    def build_files(self) -> None:
        paths = [p for p in self.final if "-packages/" in p and SITE.search("/" + p) and BUILD_FILES.search("/" + p)]
        size, got = self.ledger.take(paths)
        self.add(Finding("build-files-in-packages", "headers, CMake files, static libraries and test suites "
                         "inside installed packages", size, "likely",
                         self.profile.fix("build-files-in-packages", "delete them in the build stage before "
                                          "COPY --from"),
                         self.profile.demo("build-files-in-packages"), _top(got, self.ledger, group=_package_dir)))

    # -- likely: from the trace --------------------------------------------------------------------
    def never_imported(self) -> None:
        if self.trace is None:
            return
        names = sorted(d for d in self.files_of if not self.imported(d) and not CUDA_DIST.match(d)
                       and d not in INSTALLERS)
        size, got = self.ledger.take(p for n in names for p in self.files_of[n])
        owners = defaultdict(int)
        for p in got:
            owners[canonical(self.ev.dist_of.get(p, "?"))] += self.final[p].size
        self.add(Finding("never-imported", "Python distributions the service never imported during the trace",
                         size, "likely", self.profile.fix("never-imported", "drop them from the requirements (if "
                                                          "another distribution requires one, check it is only for "
                                                          "a feature you do not use); run the tests after"),
                         self.profile.demo("never-imported"),
                         [f"{n}: {human_bytes(s)}" for n, s in sorted(owners.items(), key=lambda x: -x[1])[:12]]))

    def cuda_unmapped(self) -> None:
        if self.trace is None:
            return
        torch_cuda = [p for p in self.files_of.get("torch", ()) if SO.search(p) and "cuda" in posixpath.basename(p)]
        paths = [p for d, ps in self.files_of.items() if CUDA_DIST.match(d) for p in ps] + torch_cuda
        size, got = self.ledger.take(p for p in paths if p not in self.trace.mapped)
        self.add(Finding("cuda-unmapped", "CUDA libraries the service never mapped (it ran without a GPU)",
                         size, "likely", self.profile.fix("cuda-unmapped", "if the service runs on CPUs, install "
                                                          "the CPU build of torch (--index-url "
                                                          "https://download.pytorch.org/whl/cpu)"),
                         self.profile.demo("cuda-unmapped"),
                         _top(got, self.ledger, group=_package_dir)))

    def unmapped_libraries(self) -> None:
        if self.trace is None:
            return
        evidence, total = [], 0
        for dist, paths in sorted(self.files_of.items()):
            if not self.imported(dist):
                continue
            libs = [p for p in paths if SO.search(p) and p not in self.trace.mapped and p not in self.ledger.claimed]
            lib_bytes = sum(self.final[p].size for p in libs if p in self.final)
            if lib_bytes >= MIN_LIBRARY_BYTES:
                size, got = self.ledger.take(libs)
                total += size
                largest = sorted(got, key=lambda p: -self.final[p].size)[:3]
                evidence.append(f"{dist}: {human_bytes(size)} in {len(got)} libraries ("
                                + ", ".join(posixpath.basename(p) for p in largest) + ")")
        self.add(Finding("unmapped-libraries", "shared libraries of imported distributions never mapped during "
                         "the trace", total, "likely",
                         self.profile.fix("unmapped-libraries", "leave out the parts you never load in the build "
                                          "stage only with a test that exercises every code path you ship, or "
                                          "install a build without them"),
                         self.profile.demo("unmapped-libraries"), evidence))

    def base_packages(self) -> None:
        packages = os_package_files(self.ev.saved, self.final)
        if not packages:
            return
        if not self.ev.references:
            self.notes.append("base rules (full-base, distroless-base) left out: no slim or distroless reference "
                              "image in this engine (the profile's reference_bases names them; pull one)")
        kinds = {"slim": ("full-base", "a slim base would do: OS packages it lacks"),
                 "distroless": ("distroless-base",
                                "a distroless base would do: OS packages it lacks (shell, package manager, coreutils)")}
        for ref in self.ev.references:
            rule, title = kinds[ref.name]
            demo = self.profile.demo(rule)
            if not self.built_on(ref):
                continue  # not built on this base or a larger one: "use it instead" would not be advice
            missing = [n for n in packages if n not in ref.packages]
            unused = [n for n in missing if self.used is None or not any(p in self.used for p in packages[n])]
            size, got = self.ledger.take(p for n in unused for p in packages[n])
            sizes = {n: sum(self.final[p].size for p in packages[n] if p in got) for n in unused}
            top = [f"{n}: {human_bytes(s)}" for n, s in sorted(sizes.items(), key=lambda x: -x[1])[:8] if s]
            tools = sorted(n for n in unused if is_toolchain(n) and sizes.get(n))
            self.add(Finding(rule, f"{title}, never mapped by the service", size,
                             "likely" if self.used is not None else "estimate",
                             self.profile.fix(rule, "FROM {image} (install the few OS packages you do need, then "
                                              "nothing else)", image=ref.image), demo,
                             [f"{len([n for n in unused if sizes.get(n)])} packages not in {ref.image}"
                              + ("" if self.used is not None else " (no trace: mapping not checked)")]
                             + top + ([f"the build toolchain among them: {', '.join(tools[:8])}"] if tools else [])))

    def toolchain(self) -> None:
        packages = os_package_files(self.ev.saved, self.final)
        names = sorted(n for n in packages if is_toolchain(n))
        size, got = self.ledger.take(p for n in names for p in packages[n])
        names = [n for n in names if packages[n] & set(got)]
        declared = {n: s for n, s, _ in _declared(self.ev.saved)
                    if is_toolchain(n) and n not in self.ledger.claimed}
        for n in declared:
            self.ledger.claimed.add(n)
        size += sum(declared.values())
        slim = [r for r in self.ev.references if r.name == "slim" and self.built_on(r)]
        if slim and not any(n in slim[0].packages for n in names):  # it came with a base larger than slim
            key, image = "build-toolchain/slim", slim[0].image
            fix = ("FROM {image}: the slim base has no compilers; where something must be compiled, do it in a "
                   "build stage and COPY --from only what it built")
        else:
            key, image = "build-toolchain/stage", ""
            fix = "compile in a build stage and COPY --from only what it built into a slim runtime stage"
        fix, demo = self.profile.fix(key, fix, image=image), self.profile.demo(key)
        self.add(Finding("build-toolchain", "a build toolchain in the final image (compilers, headers, make, git)",
                         size, "certain", fix, demo, [", ".join(names + sorted(declared))[:300]]))

    def built_on(self, ref: Reference) -> bool:
        """Does the image hold (nearly) all of ref's packages, as one built on it or on a larger base does?"""
        installed = {name for name, _, _ in os_packages(self.ev.saved, self.final)}
        return len(ref.packages & installed) >= REFERENCE_OVERLAP * len(ref.packages)

    def sources_and_bytecode(self) -> None:
        compiled: dict[str, set[str]] = defaultdict(set)  # directory -> modules with bytecode in its __pycache__
        for p in self.final:
            if "/__pycache__/" in p:
                directory, _, name = p.partition("/__pycache__/")
                module, cpython, _ = name.partition(".cpython-")
                if cpython:
                    compiled[directory].add(module)
        paths = []
        for p in self.final:
            if p.endswith(".py") and SITE.search("/" + p):
                d, _, base = p.rpartition("/")
                if base[:-3] in compiled.get(d, ()):
                    paths.append(p)
        size, got = self.ledger.take(paths)
        self.add(Finding("sources-beside-bytecode", "Python sources shipped beside the bytecode that runs",
                         size, "likely", self.profile.fix("sources-beside-bytecode", "keep the bytecode only "
                                                          "(python -m compileall -b, then delete the .py); "
                                                          "tracebacks then show no source lines"),
                         self.profile.demo("sources-beside-bytecode"), _top(got, self.ledger, group=_package_dir)))

    def torch_for_onnx(self) -> None:
        ref = self.profile.onnx_reference
        if "torch" not in self.files_of or not ref:
            return
        # What the ONNX image runs on stays (tokenizers, numpy ...): only what torch and transformers alone need goes.
        kept = {canonical(n) for n in ref.get("kept", ())}
        names = exclusive_closure({n for n in TORCH_STACK if n in self.files_of}, self.requires) - kept
        stack_bytes, got = self.ledger.take(p for n in names for p in self.files_of.get(n, ()))
        model_bytes, _ = self.ledger.take(p for p in self.final if re.search(r"\.(safetensors|bin|pt|pth)$", p)
                                          and not SITE.search("/" + p))
        model_saving = int(model_bytes * (1 - ref["onnx_model_bytes"] / max(ref["torch_model_bytes"], 1)))
        saving = max(stack_bytes + model_saving - ref["onnxruntime_bytes"], 0)
        self.add(Finding("torch-for-onnx", "torch where ONNX Runtime would run the model (an estimate)",
                         saving, "estimate",
                         self.profile.fix("torch-for-onnx", "export the model to ONNX, quantize it to int8, and serve "
                                          "it with onnxruntime and tokenizers only (check the accuracy on held-out "
                                          "data)"),
                         self.profile.demo("torch-for-onnx"),
                         [f"torch stack ({len(names)} distributions): {human_bytes(stack_bytes)}",
                          f"model weights {human_bytes(model_bytes)} -> int8 at "
                          f"{ref.get('ratio_from', 'the profile')}'s measured ratio "
                          f"({ref['onnx_model_bytes'] / max(ref['torch_model_bytes'], 1):.2f}): saves "
                          f"{human_bytes(model_saving)}",
                          f"onnxruntime added: {human_bytes(ref['onnxruntime_bytes'])} "
                          f"({ref.get('source', 'the profile')})"]))

    def stdlib_bytecode(self) -> None:
        measured = self.ev.bytecode
        if not measured or not measured.get("missing"):
            return
        seconds = max(measured["cold_s"] - measured["warm_s"], 0.0)
        self.add(Finding("stdlib-without-bytecode", "the standard library ships without bytecode: every fresh "
                         "container (every start, with a read-only root or a user who cannot write there) "
                         "compiles what it imports", 0, "certain",
                         self.profile.fix("stdlib-without-bytecode", "RUN python -m compileall -q {stdlib} in the "
                                          "image (adds about {megabytes} MB)", stdlib=measured["stdlib"],
                                          megabytes=str(measured["pyc_bytes"] // 1_000_000 or "<1")),
                         self.profile.demo("stdlib-without-bytecode"),
                         [f"{measured['missing']} of the {measured['imported']} stdlib modules the service imports "
                          f"have no .pyc; importing them took {measured['cold_s']:.2f} s without bytecode, "
                          f"{measured['warm_s']:.2f} s with it (median of {measured['runs']})"],
                         seconds=round(seconds, 2)))

    def surface(self) -> None:
        user = (self.ev.saved.config.get("config", {}).get("User") or "").split(":")[0]
        evidence = []
        if user in ("", "0", "root"):
            evidence.append("runs as root (no USER, or USER 0)")
        shells = [f"/{p}" for p in SHELLS if p in self.final]
        if shells:
            evidence.append("a shell: " + ", ".join(shells))
        managers = [f"/{p}" for p in PACKAGE_MANAGERS if p in self.final]
        if managers:
            evidence.append("a package manager: " + ", ".join(managers))
        if evidence:
            self.add(Finding("attack-surface", "what an attacker who gets in would find (no bytes)", 0, "surface",
                             self.profile.fix("attack-surface", "USER with a numeric non-root uid; a distroless "
                                              "base has no shell or package manager"),
                             self.profile.demo("attack-surface"), evidence))

    def never_imported_all(self) -> list[tuple[str, int]] | None:
        if self.trace is None:
            return None
        sizes = [(d, sum(self.final[p].size for p in ps)) for d, ps in self.files_of.items() if not self.imported(d)]
        return sorted(sizes, key=lambda x: (-x[1], x[0]))

    def run(self) -> list[Finding]:
        for rule in (self.caches, self.hidden, self.build_context, self.dev_distributions, self.installers,
                     self.cuda_unmapped, self.never_imported, self.build_files, self.unmapped_libraries,
                     self.toolchain, self.base_packages, self.sources_and_bytecode, self.torch_for_onnx,
                     self.stdlib_bytecode, self.surface):
            rule()
        return self.findings


def hidden_paths(copies: list[tuple[str, int, int, str]], layers: list, limit: int = 5) -> list[str]:
    """The largest directories of hidden copies, as evidence lines naming the layer and instruction that wrote
    them and the one that hid them: '/var/lib/apt/lists/: 48.1 MB in 21 files, written by layer 1 (RUN apt-get
    update ...), deleted in layer 5 (RUN rm -rf /var/lib/apt/lists/*)'."""
    groups: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for path, size, index, how in copies:
        groups[(posixpath.dirname(path), index, how)].append(size)
    lines = []
    for (directory, index, how), sizes in sorted(groups.items(), key=lambda x: -sum(x[1]))[:limit]:
        hider = re.search(r"layer (\d+)$", how)
        hidden_by = (f" ({instruction(layers[int(hider.group(1))].created_by)[:50]})"
                     if hider and int(hider.group(1)) < len(layers) else "")
        lines.append(f"/{directory}/: {human_bytes(sum(sizes))} in {len(sizes)} file{'s' * (len(sizes) > 1)}, "
                     f"written by layer {index} ({instruction(layers[index].created_by)[:50]}), {how}{hidden_by}")
    return lines


def _package_dir(path: str) -> str:
    """site-packages/<top>/<next> for a path inside a package folder."""
    match = re.search(r"^(.*?/(?:site|dist)-packages/[^/]+(?:/[^/]+)?)/", path)
    return match.group(1) if match else posixpath.dirname(path)


def _declared(saved: SavedImage) -> list[tuple[str, int, str]]:
    return [p for p in os_packages(saved, {}) if p[2] == "declared"]


def advise(ev: Evidence) -> Advice:
    rules = Rules(ev)
    findings = rules.run()
    findings.sort(key=lambda f: (-f.bytes, -(f.seconds or 0), CONFIDENCE_ORDER.index(f.confidence), f.rule))
    return Advice(findings, ev.analysis.total_bytes, rules.notes, rules.never_imported_all())
