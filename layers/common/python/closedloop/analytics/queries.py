"""The named queries analysts start from: the same SQL in Athena (CDK named queries) and DuckDB (demo)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["NamedQuery", "named_queries"]


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str  # the comment lines at the top of the file
    sql: str


@cache
def named_queries() -> tuple[NamedQuery, ...]:
    found = []
    for resource in sorted(files("closedloop.analytics").joinpath("queries").iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".sql"):
            continue
        text = resource.read_text()
        comments = [line.removeprefix("--").strip() for line in text.splitlines() if line.startswith("--")]
        found.append(NamedQuery(resource.name.removesuffix(".sql"), " ".join(comments), text))
    return tuple(found)
