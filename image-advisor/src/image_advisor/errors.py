"""The one kind of error the tool reports as a line, never as a traceback."""

from __future__ import annotations


class AdvisorError(RuntimeError):
    """Something the user must fix or know; the message says what, on one line where it can."""


class ArchiveError(AdvisorError):
    """The file is not an image the tool can read; the message is one line saying why."""
