"""Delete what an inference service never loads from a built virtualenv.

    python trim_venv.py /opt/venv
    python trim_venv.py --bytecode-only /venv    # also replace sources with their bytecode

Runs in the build stage of the multi-stage Dockerfiles (standard library only),
so the bytes never reach the runtime stage. Prints what it removed and how much.
Everything listed here is build- or test-time material: C++ headers and CMake
files for compiling extensions, test suites, test-only shared libraries,
developer binaries, and the installer itself.
"""

from __future__ import annotations

import compileall
import shutil
import sys
from pathlib import Path

# Relative to site-packages. Globs; directories are removed whole.
REMOVE = (
    "torch/include",  # C++ headers for building extensions
    "torch/share",  # CMake config for C++ consumers
    "torch/bin/*Test", "torch/bin/test_*", "torch/bin/protoc*",  # C++ tests, protoc (torch_shm_manager stays)
    "torch/test",  # C++ test executables
    "torch/lib/lib*test*.so",  # test-only libraries (jitbackend_test, torchbind_test)
    "*/tests",  # packages' own test suites (numpy, sympy, ...)
    "pip", "pip-*.dist-info",  # no installs at run time
    "setuptools", "setuptools-*.dist-info", "_distutils_hack", "distutils-precedence.pth",
)


def size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def trim(venv: Path) -> int:
    site = next(venv.glob("lib/python3*/site-packages"), None)
    if site is None:
        raise SystemExit(f"{venv} has no lib/python3*/site-packages")
    freed = 0
    for pattern in REMOVE:
        for path in sorted(site.glob(pattern)):
            freed += size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for script in ("pip", "pip3", "pip3.11"):  # entry points of the removed installer
        (venv / "bin" / script).unlink(missing_ok=True)
    return freed


def bytecode_only(venv: Path) -> int:
    """Compile every module to a .pyc beside it, then drop the .py sources and __pycache__.

    Python imports a legacy-location .pyc when its source is gone, so imports stay as fast;
    the cost is tracebacks without source lines. Returns bytes saved.
    """
    site = next(venv.glob("lib/python3*/site-packages"))
    before = size(site)
    # Some packages ship .py templates that are not valid Python: they fail to compile
    # and simply keep their source, since only sources with a .pyc beside them go.
    compileall.compile_dir(site, legacy=True, quiet=2, workers=0)
    kept = 0
    for source in site.rglob("*.py"):
        if source.with_suffix(".pyc").exists():
            source.unlink()
        else:
            kept += 1
    if kept:
        print(f"trim_venv: {kept} .py files did not compile and keep their source")
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache)
    return before - size(site)


if __name__ == "__main__":
    args = sys.argv[1:]
    sourceless = "--bytecode-only" in args
    paths = [a for a in args if a != "--bytecode-only"]
    if len(paths) != 1:
        raise SystemExit(__doc__)
    venv = Path(paths[0])
    print(f"trim_venv: removed {trim(venv) / 1e6:.0f} MB of build/test files from {venv}")
    if sourceless:
        print(f"trim_venv: bytecode-only saved {bytecode_only(venv) / 1e6:.0f} MB")
