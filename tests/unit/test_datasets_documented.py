"""Every Athena table and column the job writes is documented in docs/athena.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.analytics.datasets import DATASETS
from closedloop.analytics.queries import named_queries

ATHENA_DOC = (Path(__file__).resolve().parents[2] / "docs" / "athena.md").read_text()


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda d: d.name)
def test_every_column_of_every_table_is_documented(dataset):
    assert f"`{dataset.name}`" in ATHENA_DOC
    missing = [c.name for c in dataset.columns if f"`{c.name}`" not in ATHENA_DOC]
    assert missing == []


def test_every_named_query_is_documented():
    assert [q.name for q in named_queries() if q.name not in ATHENA_DOC] == []


def test_every_column_has_a_glue_type_and_a_description():
    for dataset in DATASETS:
        for column in dataset.columns:
            assert column.glue_type in {"string", "bigint", "double", "boolean", "timestamp"}
            assert column.description.endswith(".")
