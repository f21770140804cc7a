"""copy_python (onnx_image's build stage) and the distroless/cc stand-in it lands on."""

from __future__ import annotations

import pytest

from scripts.images.copy_python import DYNLOAD_LEAVE_OUT, bytecode_only
from scripts.infra import bases


@pytest.mark.parametrize("name,left_out", [
    ("_ssl.cpython-313-x86_64-linux-gnu.so", False), ("_asyncio.cpython-313-x86_64-linux-gnu.so", False),
    ("_ctypes.cpython-313-x86_64-linux-gnu.so", False), ("_decimal.cpython-313-x86_64-linux-gnu.so", False),
    ("_testcapi.cpython-313-x86_64-linux-gnu.so", True), ("_ctypes_test.cpython-313-x86_64-linux-gnu.so", True),
    ("xxlimited_35.cpython-313-x86_64-linux-gnu.so", True), ("_sqlite3.cpython-313-x86_64-linux-gnu.so", True),
    ("readline.cpython-313-x86_64-linux-gnu.so", True)])
def test_extension_modules_left_out(name, left_out):
    assert bool(DYNLOAD_LEAVE_OUT.search(name)) == left_out


def test_stdlib_bytecode_only_imports(tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "demo_std").mkdir()
    (tmp_path / "demo_std/__init__.py").write_text("VALUE = 42\n")
    (tmp_path / "demo_std/__pycache__").mkdir()
    bytecode_only(tmp_path)
    assert not list(tmp_path.rglob("*.py")) and not list(tmp_path.rglob("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("demo_std", None)
    assert importlib.import_module("demo_std").VALUE == 42


def test_cc_stand_in_keeps_no_program():
    hook = bases.distroless_hook()
    assert 'find "$r/usr/bin" -mindepth 1 -exec rm -rf {} +' in hook and "python" not in hook
    assert not any(c.startswith("ENTRYPOINT") for c in bases.distroless_changes())
    assert bases.distroless_hook("3.13").count("python3.13") == 2  # the Python bases keep theirs
