"""Time as the store and the models keep it: integer milliseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["day_of", "iso_ms", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds: fixed width, so string order is time order."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
