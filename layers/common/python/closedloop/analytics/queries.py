"""The named queries analysts start from: the same SQL in Athena (CDK named queries) and DuckDB (demo).

The files name their tables ``closedloop.<dataset>``, the default stack's Glue database; another stack's
database has another name (``infra.constructs.analytics.analytics_name``), and :meth:`NamedQuery.in_database`
gives the query with its tables in that one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files

__all__ = ["DEFAULT_DATABASE", "NamedQuery", "named_queries"]

DEFAULT_DATABASE = "closedloop"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str  # the comment lines at the top of the file
    sql: str

    def in_database(self, database: str) -> NamedQuery:
        """This query with each ``closedloop.<dataset>`` table qualified by ``database`` instead."""
        from closedloop.analytics.datasets import DATASETS

        if not re.fullmatch(r"[a-z0-9_]+", database):
            raise ValueError(f"not a Glue database name: {database!r}")
        names = "|".join(sorted((re.escape(d.name) for d in DATASETS), key=len, reverse=True))
        pattern = rf"\b{DEFAULT_DATABASE}\.({names})\b"
        return replace(self, sql=re.sub(pattern, lambda m: f"{database}.{m.group(1)}", self.sql))


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
