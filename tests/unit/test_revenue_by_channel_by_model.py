"""The named query revenue_by_channel_by_model shows every model the job runs, revenue and pipeline alike.

Athena has no PIVOT, so the query spells out one column per model: a model added to ``ALL_MODELS``
without its columns there would silently vanish from the side-by-side comparison.
"""

from __future__ import annotations

import duckdb
import pytest

from closedloop.analytics.queries import named_queries
from closedloop.attribution import ALL_MODELS

QUERY = next(q for q in named_queries() if q.name == "revenue_by_channel_by_model")


@pytest.fixture
def credits() -> duckdb.DuckDBPyConnection:
    """An attribution_credits table with, per model, a distinct revenue and pipeline on one channel."""
    sql = duckdb.connect()
    sql.execute("CREATE SCHEMA closedloop")
    sql.execute(
        "CREATE TABLE closedloop.attribution_credits "
        "(channel VARCHAR, model VARCHAR, revenue_credit DOUBLE, pipeline_credit DOUBLE)"
    )
    for index, model in enumerate(ALL_MODELS, start=1):
        sql.execute(
            "INSERT INTO closedloop.attribution_credits VALUES ('Email', ?, ?, ?), ('Email', ?, 0, 0)",
            [model.value, 100.0 * index, 10_000.0 * index, model.value],
        )
    return sql


def test_every_model_has_its_revenue_and_its_pipeline_column(credits):
    # When the query runs on the credits (on DuckDB, as the demo runs it)
    cursor = credits.execute(QUERY.sql)
    names = [d[0] for d in cursor.description]
    [row] = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    # Then each model's revenue and pipeline land in that model's own columns
    assert {m.value: row.get(m.value) for m in ALL_MODELS} == {
        m.value: 100.0 * i for i, m in enumerate(ALL_MODELS, start=1)
    }
    assert {m.value: row.get(f"pipeline_{m.value}") for m in ALL_MODELS} == {
        m.value: 10_000.0 * i for i, m in enumerate(ALL_MODELS, start=1)
    }
    assert names == ["channel", *(m.value for m in ALL_MODELS), *(f"pipeline_{m.value}" for m in ALL_MODELS)]
