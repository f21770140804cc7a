"""Tar archives made in memory, for the tests."""

from __future__ import annotations

import io
import tarfile


def tar_bytes(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    """A tar of files (name -> content), then empty whiteout entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            tar.addfile(tarfile.TarInfo(name))
    return buf.getvalue()
