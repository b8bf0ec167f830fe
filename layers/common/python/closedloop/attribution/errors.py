"""Exceptions raised by the attribution engine."""

from __future__ import annotations

__all__ = ["AttributionError", "JourneyBatchError", "PathsFileError"]


class AttributionError(ValueError):
    """Base class: the input cannot be attributed as given."""


class JourneyBatchError(AttributionError):
    """The arrays of a journey batch are inconsistent (lengths, offsets, codes, milestones)."""


class PathsFileError(AttributionError):
    """A paths file (ChannelAttribution's CSV layout) is malformed.

    ``line`` is the 1-based line of the file (the header is line 1), or ``None`` when the
    problem is not tied to one line (a missing column, an unreadable file).
    """

    def __init__(self, message: str, *, line: int | None = None, source: str = "") -> None:
        self.line = line
        self.source = source
        where = f"{source}:{line}: " if line is not None else (f"{source}: " if source else "")
        super().__init__(f"{where}{message}")
