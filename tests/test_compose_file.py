"""compose.yaml says what the images are built for, and the compose fallback unpacks a .deb right."""

from __future__ import annotations

import io
import lzma
import re
import tarfile

import pytest
import yaml

from scripts.infra.compose import MEMBER, EngineError, ar_members, extract_binary
from scripts.variants import MEMORY_LIMIT_MIB, ROOT

COMPOSE = ROOT / "compose.yaml"


def test_compose_file_runs_a_variant_as_the_images_are_built_to_run():
    service = yaml.safe_load(COMPOSE.read_text())["services"]["classifier"]
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    default = re.fullmatch(r"\$\{MEMORY_LIMIT:-(\d+)m\}", service["mem_limit"])
    assert default and int(default.group(1)) == max(MEMORY_LIMIT_MIB.values())  # one place: scripts/variants.py
    assert "healthcheck" not in service and "user" not in service  # the image's own apply


def _deb(files: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    members = {"debian-binary": b"2.0\n", "control.tar.xz": lzma.compress(b""),
               "data.tar.xz": lzma.compress(data.getvalue())}
    out = b"!<arch>\n"
    for name, content in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(content):<10}`\n".encode() + content
        out += b"\n" if len(content) % 2 else b""
    return out


def test_the_plugin_binary_comes_out_of_the_deb():
    deb = _deb({MEMBER: b"\x7fELF binary", "./usr/share/doc/x": b"doc"})
    assert set(ar_members(deb)) == {"debian-binary", "control.tar.xz", "data.tar.xz"}
    assert extract_binary(deb) == b"\x7fELF binary"
    with pytest.raises(EngineError, match="not in the .deb"):
        extract_binary(_deb({"./usr/bin/other": b""}))
    with pytest.raises(EngineError, match="not an ar archive"):
        extract_binary(b"<html>mirror error</html>")
