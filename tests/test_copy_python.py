"""copy_python (onnx_image's build stage) and the distroless/cc stand-in it lands on."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.images.copy_python import DYNLOAD_LEAVE_OUT, bytecode_only, keep_only, module_name, read_modules
from scripts.images.copy_python import main as copy_python_main
from scripts.infra import bases
from scripts.variants import ROOT


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
    bytecode_only(tmp_path, Path("/usr/lib/python3.13"))
    assert not list(tmp_path.rglob("*.py")) and not list(tmp_path.rglob("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("demo_std", None)
    module = importlib.import_module("demo_std")
    assert module.VALUE == 42
    # a traceback names the module where it runs, not the build stage's folder
    assert module.__spec__.loader.get_code("demo_std").co_filename == "/usr/lib/python3.13/demo_std/__init__.py"


def test_cc_stand_in_keeps_no_program():
    hook = bases.distroless_hook()
    assert 'find "$r/usr/bin" -mindepth 1 -exec rm -rf {} +' in hook and "python" not in hook
    assert not any(c.startswith("ENTRYPOINT") for c in bases.distroless_changes())
    assert bases.distroless_hook("3.13").count("python3.13") == 2  # the Python bases keep theirs


@pytest.mark.parametrize("rel,name", [
    ("asyncio/events.pyc", "asyncio.events"), ("json/__init__.pyc", "json"), ("os.pyc", "os"),
    ("lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so", "_ssl"), ("email/mime/text.pyc", "email.mime.text")])
def test_module_name(rel, name):
    assert module_name(Path(rel)) == name


@pytest.mark.parametrize("suffix", [".pyc", ".py"])  # copy_python cuts the sources, before compiling them
def test_keep_only_the_listed_modules_their_packages_and_always_keep(tmp_path, suffix):
    modules = ["json/__init__", "json/decoder", "json/tool", "email/__init__", "email/mime/text", "email/utils",
               "turtle", "encodings/__init__", "encodings/cp1252", "traceback"]
    files = [m + suffix for m in modules] + [
        "lib-dynload/_ssl.cpython-313-x86_64-linux-gnu.so", "lib-dynload/_lzma.cpython-313-x86_64-linux-gnu.so",
        "lib-dynload/_codecs_jp.cpython-313-x86_64-linux-gnu.so"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    dropped = keep_only(tmp_path, {"json.decoder", "email.mime.text", "_ssl"})
    assert sorted(dropped) == ["_lzma", "email.utils", "json.tool", "turtle"]
    kept = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert kept == sorted(set(files) - {"json/tool" + suffix, "email/utils" + suffix, "turtle" + suffix,
                                        "lib-dynload/_lzma.cpython-313-x86_64-linux-gnu.so"})


def test_keep_only_removes_folders_left_without_modules(tmp_path):
    (tmp_path / "xml/dom").mkdir(parents=True)
    (tmp_path / "xml/dom/minidom.pyc").write_bytes(b"")
    (tmp_path / "xml/__init__.pyc").write_bytes(b"")
    (tmp_path / "tomllib").mkdir()
    (tmp_path / "tomllib/mypy.ini").write_text("")
    (tmp_path / "json").mkdir()
    (tmp_path / "json/__init__.pyc").write_bytes(b"")
    (tmp_path / "json/notes.txt").write_text("")
    keep_only(tmp_path, {"json"})
    assert not (tmp_path / "xml").exists() and not (tmp_path / "tomllib").exists()
    assert (tmp_path / "json/notes.txt").exists()


def test_modules_file_errors_are_plain(tmp_path, capsys):
    with pytest.raises(SystemExit) as missing:
        copy_python_main(["--modules", str(tmp_path / "nope.txt"), str(tmp_path / "out")])
    assert missing.value.code == 2 and "nope.txt" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(SystemExit):
        copy_python_main(["--modules", str(empty), str(tmp_path / "out")])
    assert "names no module" in capsys.readouterr().err


def test_read_modules_ignores_comments(tmp_path):
    listed = tmp_path / "l.txt"
    listed.write_text("# header\njson\n\nasyncio.events  # the event loop\n")
    assert read_modules(listed) == {"json", "asyncio.events"}


def test_the_onnx_image_list_names_what_the_service_cannot_start_without():
    listed = read_modules(ROOT / "onnx_image/stdlib-modules.txt")
    assert {"json", "asyncio", "email.utils", "logging", "http", "_ssl", "ssl"} <= listed
    assert not {"turtle", "tkinter", "unittest", "sqlite3"} & listed
