"""Delete what an inference service never loads from a built virtualenv.

    python trim_venv.py /opt/venv
    python trim_venv.py --bytecode-only /venv    # also replace sources with their bytecode
    python trim_venv.py --cuda-inference-only /opt/venv   # also CUDA parts eager inference never loads
    python trim_venv.py --arrays-only-numpy /venv    # also numpy's subpackages a service passing arrays never imports

Runs in the build stage of the multi-stage Dockerfiles (standard library only),
so the bytes never reach the runtime stage. Prints what it removed and how much.
Everything listed here is build- or test-time material: C++ headers and CMake
files for compiling extensions, test suites, test-only shared libraries,
developer binaries, and the installer itself.
"""

from __future__ import annotations

import compileall
import re
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
    "**/tests",  # packages' own test suites, nested ones too (numpy/_core/tests, sympy/*/tests, ...)
    "numpy/f2py",  # Fortran wrapper generator: a build tool
    # onnxruntime's offline tools (graph optimizers, quantization, converters); a session needs only capi/
    "onnxruntime/transformers", "onnxruntime/tools", "onnxruntime/quantization", "onnxruntime/datasets",
    # the C API library for native programs; the Python binding links the whole runtime in itself
    "onnxruntime/capi/libonnxruntime.so.*",
    "pip", "pip-*.dist-info",  # no installs at run time
    "setuptools", "setuptools-*.dist-info", "_distutils_hack", "distutils-precedence.pth",
)


# Opt-in for CUDA images (build arg CUDA_TRIM=1): parts of the CUDA torch wheels that an eager,
# single-process inference service never runs. Found with scripts/bench/cuda_libs.py on the CPU; cuDNN's
# engine libraries are not loaded there either, but stay: on a GPU, attention may use them.
CUDA_INFERENCE_ONLY = (
    "triton", "triton-*.dist-info",  # torch.compile's kernel compiler (imported if present, never used eagerly)
    "nvidia/*/lib/libcusolverMg.so*",  # multi-GPU dense solver
    "nvidia/*/lib/libnvperf_*.so", "nvidia/*/lib/libcheckpoint.so",  # CUPTI's profiling/checkpoint helpers
    "nvidia/*/lib/libcufftw.so*", "nvidia/*/lib/libnvblas.so*",  # FFTW/BLAS drop-in shims for C programs
)


# Opt-in for a service that only hands arrays to a runtime (--arrays-only-numpy; onnx_image): numpy's
# subpackages it never imports (lazy in numpy 2, so `import numpy` does not need them; the running
# service's sys.modules has none of them), its SIMD self-test and C test modules, its type stubs and
# Cython declarations.
NUMPY_ARRAYS_ONLY = (
    "numpy/random", "numpy/fft", "numpy/polynomial", "numpy/ma", "numpy/testing",
    "numpy/_core/_simd.*",
    "numpy/_core/_*_tests.*",  # C helpers only numpy's own test suite imports
    "numpy/**/*.pyi",
    "numpy/**/*.pxd",  # Cython declarations, for compiling against numpy
)


# Modules that read source code at import time (torch's config modules read their own with
# inspect.getsource; TorchScript compiles decorated functions from source) keep their .py.
NEEDS_SOURCE = re.compile(rb"install_config_module\(|getsource\(|torch\.jit\.script|@torch\.jit|@triton\.jit")
# Packages that find their own modules by scanning for .py files keep all their sources
# (transformers builds its lazy-import table that way).
# triton (CUDA torch imports it when installed) compiles its @jit functions from their source.
SOURCE_PACKAGES = ("transformers", "triton")


def size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def trim(venv: Path, patterns: tuple[str, ...] = REMOVE) -> int:
    site = next(venv.glob("lib/python3*/site-packages"), None)
    if site is None:
        raise SystemExit(f"{venv} has no lib/python3*/site-packages")
    freed = 0
    for pattern in patterns:
        for path in sorted(site.glob(pattern)):
            if not path.exists() and not path.is_symlink():
                continue  # inside a folder this pattern already removed (tests/.../tests)
            freed += size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for script in venv.glob("bin/pip*"):  # entry points of the removed installer
        script.unlink()
    return freed


def bytecode_only(venv: Path) -> int:
    """Compile every module to a .pyc beside it, then drop the .py sources and their caches.

    Python imports a legacy-location .pyc when its source is gone, so imports stay as fast;
    the cost is tracebacks without source lines. Returns bytes saved.
    """
    site = next(venv.glob("lib/python3*/site-packages"))
    before = size(site)
    # Some packages ship .py templates that are not valid Python: they fail to compile
    # and simply keep their source, since only sources with a .pyc beside them go.
    compileall.compile_dir(site, legacy=True, quiet=2, workers=0)
    kept = 0
    for package in SOURCE_PACKAGES:
        for compiled in (site / package).rglob("*.pyc"):
            if compiled.parent.name != "__pycache__":
                compiled.unlink()  # its sources stay, so the legacy copies would be dead weight
    for source in site.rglob("*.py"):
        if source.relative_to(site).parts[0] in SOURCE_PACKAGES:
            kept += 1
            continue
        compiled = source.with_suffix(".pyc")
        if not compiled.exists():
            kept += 1  # did not compile: a template, not a module
        elif NEEDS_SOURCE.search(source.read_bytes()):
            compiled.unlink()  # Python prefers the source anyway
            kept += 1
        else:
            source.unlink()
    print(f"trim_venv: {kept} .py files keep their source (they read source at run time, or do not compile)")
    # Drop cached bytecode whose source is gone; modules that kept their source keep their cache
    # too, or they would be compiled again at every start (a read-only image cannot write it).
    for cached in list(site.rglob("__pycache__/*.pyc")):
        module = cached.name.split(".", 1)[0] + ".py"
        if not (cached.parent.parent / module).exists():
            cached.unlink()
    for cache in list(site.rglob("__pycache__")):
        if not any(cache.iterdir()):
            cache.rmdir()
    return before - size(site)


if __name__ == "__main__":
    args = sys.argv[1:]
    flags = {"--bytecode-only", "--cuda-inference-only", "--arrays-only-numpy"}
    sourceless = "--bytecode-only" in args
    paths = [a for a in args if a not in flags]
    if len(paths) != 1:
        raise SystemExit(__doc__)
    venv = Path(paths[0])
    print(f"trim_venv: removed {trim(venv) / 1e6:.0f} MB of build/test files from {venv}")
    if "--cuda-inference-only" in args:
        print(f"trim_venv: removed {trim(venv, CUDA_INFERENCE_ONLY) / 1e6:.0f} MB of CUDA parts inference never loads")
    if "--arrays-only-numpy" in args:
        print(f"trim_venv: removed {trim(venv, NUMPY_ARRAYS_ONLY) / 1e6:.0f} MB of numpy the service never imports")
    if sourceless:
        print(f"trim_venv: bytecode-only saved {bytecode_only(venv) / 1e6:.0f} MB")
