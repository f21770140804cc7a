"""make stdlib-modules: which traced modules are the standard library's, and the list it writes."""

from __future__ import annotations

from image_advisor.trace import Trace

from scripts.images.copy_python import read_modules
from scripts.studies import stdlib_modules


def test_stdlib_names_are_the_image_stdlib_files_and_frozen_modules():
    trace = Trace(True, stdlib="/usr/lib/python3.13", modules={"os", "site", "flask", "app.server", "json"},
                  module_files={"usr/lib/python3.13/json/__init__.pyc", "usr/lib/python3.13/_colorize.pyc",
                                "usr/lib/python3.13/lib-dynload/_asyncio.cpython-313-x86_64-linux-gnu.so",
                                "venv/lib/python3.13/site-packages/flask/__init__.pyc",
                                "usr/lib/python3.13/site-packages/extra/__init__.pyc", "app/server.py"})
    assert stdlib_modules.stdlib_names(trace) == {"json", "_colorize", "_asyncio", "os", "site"}


def test_the_written_list_reads_back(tmp_path):
    path = tmp_path / "stdlib-modules.txt"
    stdlib_modules.write({"json", "asyncio.events", "_ssl"}, path)
    assert read_modules(path) == {"json", "asyncio.events", "_ssl"}
    assert path.read_text().startswith("#") and path.read_text().splitlines()[-1] == "json"
