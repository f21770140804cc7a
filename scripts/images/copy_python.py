"""Gather the Python that runs this script into a folder, to be copied onto a base without Python.

    python3 copy_python.py /python                           # the whole standard library
    python3 copy_python.py --modules stdlib-modules.txt /python   # only the modules listed there
    # then, in the runtime stage: COPY --from=build /python/ /

Runs in a Dockerfile's build stage (standard library only). Copies the interpreter, its standard
library as bytecode only (legacy .pyc beside where each .py was; the sources stay behind), the
extension modules, and the shared libraries those link that the base (distroless/cc: glibc,
OpenSSL, libstdc++) lacks, with their dpkg records under var/lib/dpkg/status.d/ so SBOM
scanners still see them. Left out: what a service never runs (the installer, venv, IDLE, Tk, the
REPL, unittest, xmlrpc, the interpreter's test modules) and the extension modules for sqlite3,
readline, curses and dbm, whose libraries are not copied.

With --modules FILE (one module name per line, `#` comments; written by scripts/studies/stdlib_modules.py
from a trace of the running service) only those modules are kept, with the packages that hold them,
plus what any service may import on a path a trace cannot reach (ALWAYS_KEEP); an extension module
left out takes the libraries only it links with it.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Packages the base provides, with what they depend on (OpenSSL's libcrypto needs zlib and zstd):
# libraries these own are not copied.
BASE_PACKAGES = ("libc6", "libssl3t64", "libgcc-s1", "libstdc++6", "libgomp1")
# Standard-library folders no service runs, relative to the stdlib directory.
LEAVE_OUT = ("ensurepip", "venv", "idlelib", "tkinter", "turtledemo", "pydoc_data", "_pyrepl", "unittest", "test",
             "xmlrpc", "site-packages", "dist-packages", "__phello__")
# Extension modules left out: those whose libraries are not copied, and the interpreter's own test modules.
DYNLOAD_LEAVE_OUT = re.compile(r"^(_(sqlite3|curses|curses_panel|dbm|gdbm|tkinter)|readline"
                               r"|_test\w*|_ctypes_test|_xxtestfuzz|xx\w*)\.")


# Kept whatever the list says: a client or the locale may name any codec (encodings.<name> and the CJK
# codec modules are imported on the first use of that name), and formatting a traceback reads source
# lines through linecache, which imports tokenize only then.
ALWAYS_KEEP = ("encodings", "_codecs_cn", "_codecs_hk", "_codecs_iso2022", "_codecs_jp", "_codecs_kr", "_codecs_tw",
               "_multibytecodec", "traceback", "linecache", "tokenize", "token", "_colorize")


def read_modules(path: Path) -> set[str]:
    """Module names from a list file: one per line, blank lines and `#` comments ignored."""
    names = {line.split("#")[0].strip() for line in path.read_text().splitlines()}
    return names - {""}


def module_name(rel: Path) -> str:
    """'asyncio/events.pyc' -> 'asyncio.events', 'json/__init__.pyc' -> 'json',
    'lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so' -> '_ssl'."""
    if rel.parts[0] == "lib-dynload":
        return rel.name.split(".")[0]
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wanted(name: str, keep: set[str]) -> bool:
    """A listed module, a package holding one (its __init__ runs first), or anything under ALWAYS_KEEP."""
    return (name in keep or any(k.startswith(name + ".") for k in keep)
            or any(name == a or name.startswith(a + ".") for a in ALWAYS_KEEP))


def keep_only(stdlib: Path, keep: set[str]) -> list[str]:
    """Delete the modules (sources or bytecode) and extension modules of stdlib not wanted; returns their names."""
    dropped = []
    modules = [*stdlib.rglob("*.py"), *stdlib.rglob("*.pyc"), *(stdlib / "lib-dynload").glob("*.so")]
    for path in sorted(modules):
        name = module_name(path.relative_to(stdlib))
        if not wanted(name, keep):
            path.unlink()
            dropped.append(name)
    for folder in sorted((p for p in stdlib.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if folder.exists() and not any(f.suffix in (".py", ".pyc", ".so") for f in folder.rglob("*")):
            shutil.rmtree(folder)  # no module left: its data files (tomllib/mypy.ini, ...) go with it
    return dropped


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def needed_libraries(elves: list[Path]) -> set[Path]:
    """Every shared library the ELF files load (ldd: the whole tree), by real path."""
    found = set()
    for elf in elves:
        for line in run("ldd", str(elf)).splitlines():
            if "=>" in line and (target := line.split("=>")[1].split("(")[0].strip()).startswith("/"):
                found.add(Path(target))
    return found


def with_dependencies(packages: tuple[str, ...]) -> set[str]:
    """The packages and, recursively, what they depend on (the first of each set of alternatives)."""
    seen: set[str] = set()
    todo = list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", package], capture_output=True,
                              text=True, check=False)
        for dep in proc.stdout.split(","):
            if name := dep.split("|")[0].split("(")[0].strip().split(":")[0]:
                todo.append(name)
    return seen


def owner(path: Path) -> str | None:
    """The Debian package that installed path (merged /usr: /lib paths are found under /usr/lib too)."""
    for candidate in dict.fromkeys((path, Path(re.sub(r"^/(lib|lib64)/", r"/usr/\1/", str(path))))):
        proc = subprocess.run(["dpkg", "-S", str(candidate)], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout.split(":")[0]
    return None


def copy(src: Path, dest_root: Path) -> None:
    """src (symlinks followed) to the same absolute path under dest_root; /lib paths land in /usr/lib."""
    rel = str(src.resolve()) if src.is_symlink() else str(src)
    target = dest_root / re.sub(r"^/(lib|lib64)/", r"usr/\1/", rel).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.resolve(), target)
    if src.name != target.name:  # the soname a program asks for, beside the versioned file
        link = target.parent / src.name
        if not link.exists():
            link.symlink_to(target.name)


def bytecode_only(stdlib: Path, runtime_path: Path) -> None:
    """Compile every module to a legacy .pyc beside it, then drop the sources and __pycache__ folders.
    Tracebacks name runtime_path, where the modules run, not the folder they were gathered in."""
    compileall.compile_dir(stdlib, legacy=True, quiet=2, workers=0, ddir=str(runtime_path))
    for source in stdlib.rglob("*.py"):
        if source.with_suffix(".pyc").exists():
            source.unlink()
    for cache in [p for p in stdlib.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)


def gather(dest: Path, modules: set[str] | None = None) -> None:
    executable = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    dynload = stdlib / "lib-dynload"
    target = dest / stdlib.relative_to("/")
    shutil.copytree(stdlib, target, ignore=lambda d, names: [
        n for n in names if (Path(d) == stdlib and n in LEAVE_OUT) or n == "__pycache__"
        or (Path(d) == dynload and DYNLOAD_LEAVE_OUT.search(n))])
    if modules is not None:  # before compiling: the modules left out are never compiled
        dropped = keep_only(target, modules)
        print(f"copy_python: {len(dropped)} standard-library modules the list does not name left out")
    bytecode_only(target, stdlib)
    copy(executable, dest)
    (dest / "usr/bin/python3").symlink_to(executable.name)

    extensions = [executable, *sorted((target / "lib-dynload").glob("*.so"))]
    base = with_dependencies(BASE_PACKAGES)
    packages = {"python3.13-minimal", "libpython3.13-minimal", "libpython3.13-stdlib"} if \
        sys.version_info[:2] == (3, 13) else set()
    for lib in sorted(needed_libraries(extensions)):
        package = owner(lib)
        if package and package.split(":")[0] in base:
            continue
        copy(lib, dest)
        if package:
            packages.add(package.split(":")[0])
    status = dest / "var/lib/dpkg/status.d"
    status.mkdir(parents=True, exist_ok=True)
    for package in sorted(packages):
        (status / package).write_text(run("dpkg-query", "-s", package))
    print(f"copy_python: {executable} and {stdlib} (bytecode only) into {dest}; "
          f"dpkg records: {', '.join(sorted(packages))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path, help="folder to gather into (its paths mirror /)")
    ap.add_argument("--modules", default="all",
                    help="file naming the standard-library modules to keep, or 'all' (the default)")
    args = ap.parse_args(argv)
    modules = None
    if args.modules != "all":
        try:
            modules = read_modules(Path(args.modules))
        except OSError as exc:
            ap.error(f"--modules {args.modules}: {exc.strerror}")
        if not modules:
            ap.error(f"--modules {args.modules} names no module (pass 'all' for the whole standard library)")
    gather(args.dest, modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
