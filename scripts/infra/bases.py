"""Base images for the Dockerfiles: the official ones, or local Debian 12 stand-ins.

    python -m scripts.infra.bases            # BASES=auto|official|local (default auto)

Every Dockerfile takes its bases as build args. With BASES=auto each official
image is used if it is present or can be pulled; otherwise a stand-in is built
from Debian 12 packages with mmdebstrap and `docker import`ed. Stand-ins carry
the same Debian release and Python minor version as the official images, the
same entry points, and (distroless) the same non-root uid 65532 and no shell.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.infra.engine import EngineError, apt_install, buildkit_client, docker, ensure_engine

STAND_IN_LABEL = "stand-in.recipe"  # on every stand-in: the hash of how it was made
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"  # Debian 12, the release the torch variants' official bases are built on
SUITE_13 = "trixie"  # Debian 13: the maintained distroless Python (3.13) the ONNX variant runs on

# What the docs and man pages of Debian's slim images leave out; applied to slim stand-ins.
SLIM_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                 "/usr/share/lintian/*", "/usr/share/linda/*")
# buildpack-deps:bookworm's package list (what python:3.11 is built on), plus Debian's Python 3.11.
FULL_PACKAGES = (
    "ca-certificates curl gnupg netbase sq wget git mercurial openssh-client subversion procps "
    "autoconf automake bzip2 default-libmysqlclient-dev dpkg-dev file g++ gcc imagemagick libbz2-dev "
    "libc6-dev libcurl4-openssl-dev libdb-dev libevent-dev libffi-dev libgdbm-dev libglib2.0-dev "
    "libgmp-dev libjpeg-dev libkrb5-dev liblzma-dev libmagickcore-dev libmagickwand-dev libmaxminddb-dev "
    "libncurses5-dev libncursesw5-dev libpng-dev libpq-dev libreadline-dev libsqlite3-dev libssl-dev "
    "libtool libwebp-dev libxml2-dev libxslt-dev libyaml-dev make patch unzip xz-utils zlib1g-dev "
    "libbluetooth-dev tk-dev uuid-dev "
    "python3.11 python3.11-dev python3-pip python3-venv python-is-python3"
).split()
SLIM_PACKAGES = "ca-certificates netbase tzdata python3.11 python3-pip python3-venv python-is-python3".split()


def distroless_packages(python: str) -> tuple[str, ...]:
    """What gcr.io/distroless/python3-debianN ships: the interpreter, its stdlib, C/C++ runtimes, certs."""
    return tuple(f"python{python}-minimal libpython{python}-stdlib libstdc++6 libgcc-s1 libgomp1 "
                 "ca-certificates tzdata netbase".split())



PY_ENV = ["ENV LANG=C.UTF-8", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"]

# Hooks run on the host with the new root as $1.
PIP_LIKE_OFFICIAL = (  # official images let pip install into the system Python (no PEP 668 marker)
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED; ln -sf /usr/bin/pip3 "$1"/usr/local/bin/pip; '
    'ln -sf /usr/bin/python3 "$1"/usr/local/bin/python'
)
DISTROLESS_HOOK_TEMPLATE = r"""set -e
r="$1"
mkdir -p "$r/var/lib/dpkg/status.d"
# One file per package with its whole control stanza (Installed-Size included), as distroless writes them.
for deb in "$r"/var/cache/apt/archives/*.deb; do
  dpkg-deb -f "$deb" > "$r/var/lib/dpkg/status.d/$(dpkg-deb -f "$deb" Package)"
done
cat "$r"/usr/share/ca-certificates/*/*.crt > "$r/etc/ssl/certs/ca-certificates.crt"
rm -rf "$r"/bin "$r"/sbin "$r"/usr/sbin "$r"/usr/share/doc "$r"/usr/share/man "$r"/usr/share/info \
  "$r"/usr/share/locale "$r"/usr/share/lintian "$r"/usr/share/perl5 "$r"/usr/share/debconf \
  "$r"/usr/lib/*-linux-gnu/perl-base "$r"/usr/lib/dpkg "$r"/etc/dpkg "$r"/var/lib/dpkg/info "$r"/usr/libexec
find "$r/usr/bin" -mindepth 1 ! -name python@PY@ -exec rm -rf {} +
ln -s python@PY@ "$r/usr/bin/python3"
echo 'root:x:0:0:root:/root:/sbin/nologin' > "$r/etc/passwd"
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >> "$r/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$r/etc/group"
mkdir -p "$r/home/nonroot" "$r/tmp" && chown 65532:65532 "$r/home/nonroot" && chmod 1777 "$r/tmp"
"""


# Debian 13 packages install under /usr only: the loader path compiled into every binary
# (/lib64/ld-linux-x86-64.so.2) needs merged-/usr links, as real distroless images have.
MERGED_USR_LINKS = r"""set -e
for d in lib lib64; do [ -e "$1/usr/$d" ] && [ ! -e "$1/$d" ] && ln -s "usr/$d" "$1/$d"; done; true
"""


# What gcr.io/distroless/cc-debianN ships: glibc, OpenSSL's libraries, the C/C++ runtimes, certs; no Python.
CC_PACKAGES = tuple("libc6 libssl3t64 libstdc++6 libgcc-s1 libgomp1 ca-certificates tzdata netbase".split())


def distroless_hook(python: str = "") -> str:
    """Strip a Debian root to distroless's shape; python '' (the cc image) keeps no program at all."""
    if not python:
        return DISTROLESS_HOOK_TEMPLATE.replace(' ! -name python@PY@', '').replace(
            'ln -s python@PY@ "$r/usr/bin/python3"\n', '')
    return DISTROLESS_HOOK_TEMPLATE.replace("@PY@", python)


def distroless_changes(python: str = "") -> tuple[str, ...]:
    entrypoint = (f'ENTRYPOINT ["/usr/bin/python{python}"]',) if python else ()
    return ("ENV LANG=C.UTF-8", "ENV PATH=/usr/local/bin:/usr/bin",
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "USER 65532:65532", "WORKDIR /home/nonroot", *entrypoint)


@dataclass(frozen=True)
class Base:
    arg: str  # build arg name in the Dockerfiles
    official: str
    local: str
    variant: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    changes: tuple[str, ...] = field(default_factory=tuple)
    suite: str = SUITE

    def local_ref(self, arch: str = "") -> str:
        """The stand-in's tag: as named for the engine's own platform, '-arm64' added for another."""
        return f"{self.local}-{arch}" if arch else self.local

    def mmdebstrap_args(self, arch: str = "") -> list[str]:
        args = ["--quiet", f"--variant={self.variant}", "--mode=root", "--format=tar"]
        if arch:
            args.append(f"--architectures={arch}")  # maintainer scripts run under qemu (scripts/infra/emulation.py)
        if self.packages:
            args.append("--include=" + ",".join(self.packages))
        args += [f"--dpkgopt=path-exclude={p}" for p in self.excludes]
        if self.variant != "extract":  # merged /usr without the usrmerge package (and the perl it drags in)
            args.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
        hook_kind = "--extract-hook" if self.variant == "extract" else "--customize-hook"
        return args + [f"{hook_kind}={h}" for h in self.hooks]

    def recipe_hash(self, arch: str = "") -> str:
        """Changes whenever the stand-in would come out different, so stale ones are rebuilt."""
        text = json.dumps([MIRROR, self.suite, self.mmdebstrap_args(arch), self.changes])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


BASES = (
    Base("PYTHON_IMAGE", "python:3.11", "local/python:3.11", "apt", tuple(FULL_PACKAGES),
         hooks=(PIP_LIKE_OFFICIAL,), changes=(*PY_ENV, 'CMD ["python3"]')),
    Base("PYTHON_SLIM_IMAGE", "python:3.11-slim", "local/python:3.11-slim", "apt", tuple(SLIM_PACKAGES),
         hooks=(PIP_LIKE_OFFICIAL,), excludes=SLIM_EXCLUDES, changes=(*PY_ENV, 'CMD ["python3"]')),
    Base("DEBIAN_IMAGE", "debian:12-slim", "local/debian:12-slim", "apt", (),
         excludes=SLIM_EXCLUDES, changes=('CMD ["bash"]',)),
    Base("DISTROLESS_IMAGE", "gcr.io/distroless/python3-debian12:nonroot",
         "local/distroless-python3-debian12:nonroot", "extract", distroless_packages("3.11"),
         hooks=(distroless_hook("3.11"),), changes=distroless_changes("3.11")),
    # Debian 13 pair for the ONNX variant (python3-debian12 is deprecated upstream).
    Base("DEBIAN13_IMAGE", "debian:13-slim", "local/debian:13-slim", "apt", (),
         excludes=SLIM_EXCLUDES, changes=('CMD ["bash"]',), suite=SUITE_13),
    Base("DISTROLESS13_IMAGE", "gcr.io/distroless/python3-debian13:nonroot",
         "local/distroless-python3-debian13:nonroot", "extract", distroless_packages("3.13"),
         hooks=(distroless_hook("3.13"), MERGED_USR_LINKS), changes=distroless_changes("3.13"), suite=SUITE_13),
    Base("DISTROLESS_CC13_IMAGE", "gcr.io/distroless/cc-debian13:nonroot", "local/distroless-cc-debian13:nonroot",
         "extract", CC_PACKAGES, hooks=(distroless_hook(), MERGED_USR_LINKS), changes=distroless_changes(),
         suite=SUITE_13),
)

BY_ARG = {b.arg: b for b in BASES}

# Not bases of the Dockerfiles: the containers `make compare` measures with (scripts/infra/registry.py).
# The stand-in registry is Debian's build of the same CNCF distribution server, the stand-in
# dind is Debian's dockerd, started the way docker:dind starts it (cgroup v2 set up first).
DIND_ENTRYPOINT = r"""set -e
cat > "$1/usr/local/bin/dockerd-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control || :
fi
exec dockerd "$@"
SH
chmod 755 "$1/usr/local/bin/dockerd-entrypoint.sh"
"""
# registry:2's own configuration: no authentication, storage in /var/lib/registry, port 5000
# (Debian's package ships one with htpasswd authentication).
REGISTRY_CONFIG = r"""set -e
cat > "$1/etc/docker/registry/config.yml" <<'YML'
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
YML
"""
INFRA = (
    Base("REGISTRY_IMAGE", "registry:2", "local/registry:2", "apt", ("docker-registry",), hooks=(REGISTRY_CONFIG,),
         excludes=SLIM_EXCLUDES,
         changes=('ENTRYPOINT ["/usr/bin/docker-registry", "serve"]', 'CMD ["/etc/docker/registry/config.yml"]')),
    Base("DIND_IMAGE", "docker:dind", "local/docker:dind", "apt",
         ("docker.io", "iptables", "ca-certificates", "iproute2", "procps", "mount"), hooks=(DIND_ENTRYPOINT,),
         excludes=SLIM_EXCLUDES, changes=('ENTRYPOINT ["dockerd-entrypoint.sh"]', "CMD []",
                                          "ENV PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin")),
    # A current engine for ENGINE=docker26 (scripts/infra/engines.py): Debian 13's dockerd with buildx.
    Base("DIND26_IMAGE", "docker:26-dind", "local/docker:26-dind", "apt",
         ("docker.io", "docker-buildx", "iptables", "ca-certificates", "iproute2", "procps", "mount"),
         hooks=(DIND_ENTRYPOINT,), excludes=SLIM_EXCLUDES, suite=SUITE_13,
         changes=('ENTRYPOINT ["dockerd-entrypoint.sh"]', "CMD []",
                  "ENV PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin")),
)


INFRA_BY_ARG = {b.arg: b for b in INFRA}


def log(msg: str) -> None:
    print(f"[bases] {msg}", file=sys.stderr, flush=True)


def _present(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


def _label(ref: str, key: str) -> str:
    out = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref, check=False)
    if out.returncode != 0:
        return ""
    return (json.loads(out.stdout or "null") or {}).get(key, "")


def try_official(base: Base, pull_timeout: float = 60) -> bool:
    if _present(base.official):
        return True
    try:
        return docker("pull", "--quiet", base.official, timeout=pull_timeout, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def build_local(base: Base, arch: str = "") -> str:
    """Build (or reuse) the stand-in for base (for arch, e.g. 'arm64', when not the engine's own); its tag."""
    want, ref = base.recipe_hash(arch), base.local_ref(arch)
    if _present(ref) and _label(ref, STAND_IN_LABEL) == want:
        return ref
    if os.geteuid() != 0:
        raise EngineError(f"{base.official} cannot be pulled here and its stand-in {ref} is missing; stand-ins "
                          "are built with mmdebstrap as root: run `sudo make bases` once (or make "
                          f"{base.official} pullable)")
    if not shutil.which("mmdebstrap"):
        apt_install("mmdebstrap")
    if arch and not shutil.which("arch-test"):  # mmdebstrap checks foreign architectures with it
        apt_install("arch-test")
    slow = ", under emulation: several minutes" if arch else ", ~1-3 min"
    log(f"building stand-in {ref} from Debian {base.suite} packages (mmdebstrap{slow}) ...")
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        tarball = os.path.join(tmp, "rootfs.tar")
        cmd = ["mmdebstrap", *base.mmdebstrap_args(arch), base.suite, tarball, MIRROR]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EngineError(f"mmdebstrap for {ref} failed:\n{proc.stderr[-3000:]}")
        changes = [*base.changes, f"LABEL {STAND_IN_LABEL}={want} stand-in.for={base.official}"]
        if arch:
            # `docker import --platform` is ignored by a non-experimental engine: load an archive whose
            # config names the architecture, or BuildKit looks for the base on Docker Hub instead.
            load_rootfs(Path(tarball), ref, arch, image_config(changes))
        else:
            args = ["import"] + [x for c in changes for x in ("--change", c)] + [tarball, ref]
            docker(*args, timeout=600)
    return ref


def image_config(changes: list[str] | tuple[str, ...]) -> dict:
    """`docker import --change` lines (ENV, CMD, ENTRYPOINT, USER, WORKDIR, LABEL) as an image config."""
    config: dict = {}
    for change in changes:
        word, _, rest = change.partition(" ")
        if word == "ENV":
            config.setdefault("Env", []).append(rest)
        elif word in ("CMD", "ENTRYPOINT"):
            config["Cmd" if word == "CMD" else "Entrypoint"] = json.loads(rest)
        elif word == "USER":
            config["User"] = rest
        elif word == "WORKDIR":
            config["WorkingDir"] = rest
        elif word == "LABEL":
            config.setdefault("Labels", {}).update(kv.split("=", 1) for kv in shlex.split(rest))
        else:
            raise ValueError(f"unsupported change {change!r}")
    return config


def load_rootfs(rootfs: Path, ref: str, arch: str, config: dict) -> None:
    """`docker load` a one-layer image of rootfs for linux/arch (the archive is streamed, not written)."""
    digest = hashlib.sha256()
    with rootfs.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    blob = json.dumps({"architecture": arch, "os": "linux", "config": config,
                       "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
                       "history": [{"created_by": f"stand-in from Debian packages (mmdebstrap, {arch})"}]}).encode()
    config_name = f"{hashlib.sha256(blob).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer/layer.tar"]}]).encode()
    proc = subprocess.Popen([buildkit_client(), "load", "--quiet"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    with tarfile.open(fileobj=proc.stdin, mode="w|") as archive:
        for name, data in ((config_name, blob), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        archive.add(str(rootfs), arcname="layer/layer.tar")
    proc.stdin.close()
    if proc.wait(timeout=900) != 0:
        raise EngineError(f"docker load of the {ref} stand-in failed: {proc.stderr.read().decode()[-1500:]}")


def resolve(mode: str | None = None, arch: str = "", only: set[str] | None = None) -> dict[str, str]:
    """Build-arg name -> image reference, per BASES mode; arch ('arm64') when not the engine's own.

    Official images are multi-platform: BuildKit fetches the arch's own variant itself, so only
    whether they can be had is checked here. Stand-ins are built per arch. only: the build args
    the Dockerfiles at hand declare (the others are not resolved, nor built).
    """
    mode = (mode or os.environ.get("BASES") or "auto").strip().lower()
    if mode not in {"auto", "official", "local"}:
        raise EngineError(f"BASES must be auto, official or local, got {mode!r}")
    ensure_engine()
    chosen = {base.arg: resolve_one(base, mode, arch) for base in BASES if only is None or base.arg in only}
    for arg, ref in chosen.items():
        log(f"{arg}={ref}")
    return chosen


def resolve_one(base: Base, mode: str | None = None, arch: str = "") -> str:
    """The official image if it is here or can be pulled (BASES=auto|official), else its stand-in."""
    mode = (mode or os.environ.get("BASES") or "auto").strip().lower()
    if mode != "local" and try_official(base):
        return base.official
    if mode == "official":
        raise EngineError(f"cannot pull {base.official} (BASES=official); use BASES=auto to fall back to stand-ins")
    return build_local(base, arch)


def main() -> int:
    try:
        resolve()
        for base in INFRA:  # so a later non-root `make compare` finds them
            log(f"{base.arg}={resolve_one(base)}")
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
