"""The build-stage venv trimmer removes only build/test material."""

from __future__ import annotations

from pathlib import Path

from scripts.images.trim_venv import CUDA_INFERENCE_ONLY, NUMPY_ARRAYS_ONLY, trim


def test_trim_removes_listed_paths_and_keeps_runtime(tmp_path):
    site = tmp_path / "lib/python3.11/site-packages"
    keep = ["torch/lib/libtorch_cpu.so", "torch/__init__.py", "torch/bin/torch_shm_manager",
            "torch/testing/__init__.py", "numpy/core/x.py", "onnxruntime/capi/onnxruntime_pybind11_state.so"]
    drop = ["torch/include/ATen/x.h", "torch/bin/protoc", "torch/bin/test_jit", "torch/bin/TCPStoreTest",
            "torch/test/t", "torch/lib/libtorchbind_test.so", "numpy/f2py/__init__.py",
            "onnxruntime/transformers/optimizer.py", "onnxruntime/quantization/quantize.py",
            "onnxruntime/capi/libonnxruntime.so.1.32.0",
            "numpy/tests/test_a.py", "numpy/_core/tests/test_b.py", "numpy/_core/tests/data/tests/c.py",
            "pip/__init__.py", "pip-24.0.dist-info/RECORD"]
    for rel in keep + drop:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 10)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/pip").write_text("#!")
    (tmp_path / "bin/pip3.13").write_text("#!")
    (tmp_path / "bin/python").write_text("#!")
    freed = trim(tmp_path)
    assert freed == 10 * len(drop)
    assert all((site / rel).exists() for rel in keep)
    assert not any((site / rel).exists() for rel in drop)
    assert (tmp_path / "bin/python").exists() and not (tmp_path / "bin/pip").exists()
    assert not (tmp_path / "bin/pip3.13").exists()


def test_bytecode_only_keeps_modules_importable(tmp_path, monkeypatch):
    import importlib
    import sys

    from scripts.images.trim_venv import bytecode_only

    site = tmp_path / "lib/python3.11/site-packages"
    pkg = site / "demo_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .core import answer\n")
    (pkg / "core.py").write_text("def answer():\n    return 42\n")
    (pkg / "data.json").write_text("{}")
    bytecode_only(tmp_path)  # tiny sources: bytecode may be larger, so no size claim here
    assert not list(site.rglob("*.py")) and not list(site.rglob("__pycache__"))
    assert (pkg / "core.pyc").exists() and (pkg / "data.json").exists()
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("demo_pkg", None)
    assert importlib.import_module("demo_pkg").answer() == 42


def test_bytecode_only_keeps_sources_that_do_not_compile(tmp_path):
    from scripts.images.trim_venv import bytecode_only

    site = tmp_path / "lib/python3.11/site-packages/tpl"
    site.mkdir(parents=True)
    (site / "template.py").write_text("def {{ name }}():\n")  # a template, not Python
    (site / "ok.py").write_text("x = 1\n")
    bytecode_only(tmp_path)
    assert (site / "template.py").exists() and not (site / "ok.py").exists() and (site / "ok.pyc").exists()


def test_bytecode_only_keeps_modules_that_read_their_own_source(tmp_path):
    import importlib
    import sys

    from scripts.images.trim_venv import bytecode_only

    site = tmp_path / "lib/python3.11/site-packages"
    (site / "cfgpkg").mkdir(parents=True)
    (site / "cfgpkg/__init__.py").write_text("")
    (site / "cfgpkg/config.py").write_text(
        "import inspect, sys\n"
        "def install_config_module(m):\n    return inspect.getsource(m)\n"
        "SOURCE = install_config_module(sys.modules[__name__])\n"
    )
    import py_compile

    for name in ("config", "__init__"):
        py_compile.compile(str(site / f"cfgpkg/{name}.py"), str(site / f"cfgpkg/__pycache__/{name}.cpython-311.pyc"))
    bytecode_only(tmp_path)
    assert (site / "cfgpkg/config.py").exists() and not (site / "cfgpkg/config.pyc").exists()
    assert (site / "cfgpkg/__pycache__/config.cpython-311.pyc").exists()  # kept source keeps its cache
    assert not (site / "cfgpkg/__pycache__/__init__.cpython-311.pyc").exists()  # its source is gone
    sys.path.insert(0, str(site))
    try:
        assert "install_config_module" in importlib.import_module("cfgpkg.config").SOURCE
    finally:
        sys.path.remove(str(site))


def test_bytecode_only_leaves_source_packages_whole(tmp_path):
    from scripts.images.trim_venv import bytecode_only

    site = tmp_path / "lib/python3.11/site-packages"
    for name in ("transformers", "triton"):  # triton compiles its @jit functions from their source
        pkg = site / name
        (pkg / "__pycache__").mkdir(parents=True)
        (pkg / "__init__.py").write_text("x = 1\n")
        (pkg / "__pycache__/__init__.cpython-311.pyc").write_bytes(b"cache")
    (site / "torch/_native").mkdir(parents=True)
    (site / "torch/_native/triton_impl.py").write_text("import triton\n@triton.jit\ndef k(x):\n    pass\n")
    (site / "torch/_native/plain.py").write_text("def f():\n    return 1\n")
    bytecode_only(tmp_path)
    for name in ("transformers", "triton"):
        pkg = site / name
        assert (pkg / "__init__.py").exists() and (pkg / "__pycache__/__init__.cpython-311.pyc").exists()
        assert not (pkg / "__init__.pyc").exists()
    assert (site / "torch/_native/triton_impl.py").exists()
    assert not (site / "torch/_native/plain.py").exists() and (site / "torch/_native/plain.pyc").exists()


def test_cuda_inference_only_is_opt_in_and_keeps_what_inference_loads(tmp_path):
    site = tmp_path / "lib/python3.11/site-packages"
    loaded = ["nvidia/cu13/lib/libcublas.so.13", "nvidia/cu13/lib/libcusolver.so.12", "nvidia/cu13/lib/libcupti.so.13",
              "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", "nvidia/nccl/lib/libnccl.so.2"]
    unused = ["triton/_C/libtriton.so", "triton-3.8.0.dist-info/RECORD", "nvidia/cu13/lib/libcusolverMg.so.12",
              "nvidia/cu13/lib/libnvperf_host.so", "nvidia/cusolver/lib/libcusolverMg.so.11",
              "nvidia/cu13/lib/libnvblas.so.13", "nvidia/cu13/lib/libcufftw.so.12"]
    for rel in loaded + unused:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 10)
    trim(tmp_path)  # the default list never touches CUDA libraries
    assert all((site / rel).exists() for rel in loaded + unused)
    assert trim(tmp_path, CUDA_INFERENCE_ONLY) == 10 * len(unused)
    assert all((site / rel).exists() for rel in loaded)
    assert not any((site / rel).exists() for rel in unused)


def test_arrays_only_numpy_still_does_what_the_onnx_backend_asks_of_it(tmp_path):
    """The real numpy, trimmed: import, int64 arrays, exp/max/sum/argmax work; the removed parts are gone."""
    import shutil
    import subprocess
    import sys

    import numpy

    site = tmp_path / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    installed = Path(numpy.__file__).parent
    for folder in (installed, installed.with_name("numpy.libs")):  # the wheel's bundled BLAS, where there is one
        if folder.is_dir():
            shutil.copytree(folder, site / folder.name)
    assert trim(tmp_path, NUMPY_ARRAYS_ONLY) > 1_000_000
    assert not (site / "numpy/random").exists() and not list(site.glob("numpy/**/*.pyi"))
    assert not list(site.glob("numpy/_core/_multiarray_tests.*")) and not list(site.glob("numpy/**/*.pxd"))
    assert list(site.glob("numpy/_core/_multiarray_umath.*"))  # the module every array needs stays
    code = ("import numpy as np; a = np.asarray([[1, 2], [3, 4]], dtype=np.int64); x = np.exp(a - a.max(axis=-1, "
            "keepdims=True)); p = x / x.sum(axis=-1, keepdims=True); print(p.argmax(axis=-1).tolist())")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1, 1]"
    gone = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
                           "import numpy.random"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert gone.returncode != 0  # really removed: a service that needs it fails at once, not quietly
