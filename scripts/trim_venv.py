"""Delete what an inference service never loads from a built virtualenv.

    python trim_venv.py /opt/venv

Runs in the build stage of the multi-stage Dockerfiles (standard library only),
so the bytes never reach the runtime stage. Prints what it removed and how much.
Everything listed here is build- or test-time material: C++ headers and CMake
files for compiling extensions, test suites, test-only shared libraries,
developer binaries, and the installer itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Relative to site-packages. Globs; directories are removed whole.
REMOVE = (
    "torch/include",  # C++ headers for building extensions
    "torch/share",  # CMake config for C++ consumers
    "torch/bin",  # protoc and C++ test binaries
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    freed = trim(Path(sys.argv[1]))
    print(f"trim_venv: removed {freed / 1e6:.0f} MB from {sys.argv[1]}")
