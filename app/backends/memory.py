"""The container's memory limit and use, from its cgroup (v2 or v1): so a forward pass that would not
fit is refused with a clear error instead of the kernel killing the worker mid-request.

Use is counted as the kernel's OOM killer and Kubernetes see it: the cgroup's usage minus the page
cache it can drop (inactive file pages), the "working set".
"""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a huge number (page-rounded LONG_MAX)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _stat(path: Path, key: str) -> int:
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def limit_bytes(root: Path = CGROUP) -> int | None:
    """The memory limit of this process's cgroup, or None when there is none."""
    raw = _read(root / "memory.max")  # v2
    if raw is None:
        raw = _read(root / "memory" / "memory.limit_in_bytes")  # v1
    if raw is None or raw == "max":
        return None
    value = int(raw)
    return None if value >= NO_LIMIT else value


def in_use_bytes(root: Path = CGROUP) -> int | None:
    """The cgroup's working set (usage minus inactive page cache), or None where it cannot be read."""
    raw = _read(root / "memory.current")
    if raw is not None:  # v2
        return int(raw) - _stat(root / "memory.stat", "inactive_file")
    raw = _read(root / "memory" / "memory.usage_in_bytes")
    if raw is not None:  # v1
        return int(raw) - _stat(root / "memory" / "memory.stat", "total_inactive_file")
    return None


class MemoryLimitError(Exception):
    """A forward pass would need more memory than the container's limit leaves."""


class MemoryGuard:
    """Refuses a forward pass whose estimated extra memory does not fit under the cgroup limit.

    Runtimes keep what a pass allocated for the next one (ONNX Runtime's arena, glibc's heap), so
    only the part of an estimate above the largest pass run so far is new memory.
    """

    MARGIN = 16 << 20  # allocator slack and the estimate's error

    def __init__(self, root: Path = CGROUP) -> None:
        self.root = root
        self.limit = limit_bytes(root)
        self.high_water = 0  # largest estimate run so far in this process

    def check(self, estimate: int) -> None:
        if self.limit is None or estimate <= self.high_water:
            return
        used = in_use_bytes(self.root)
        if used is None:
            return
        extra = estimate - self.high_water
        if used + extra + self.MARGIN > self.limit:
            mib = 1 << 20
            raise MemoryLimitError(
                f"this request needs about {extra // mib + 1} MiB more memory than the container's limit "
                f"({self.limit // mib} MiB, {used // mib} MiB in use) leaves: send fewer or shorter texts, "
                f"or raise the limit to at least {(used + extra + self.MARGIN) // mib + 1} MiB")

    def ran(self, estimate: int) -> None:
        self.high_water = max(self.high_water, estimate)

    def released(self) -> None:
        """The runtime handed its pass memory back to the OS."""
        self.high_water = 0
