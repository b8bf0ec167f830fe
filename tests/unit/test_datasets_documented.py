"""Every Athena table and column the job writes is documented in docs/athena.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.analytics.datasets import DATASETS
from closedloop.analytics.queries import named_queries
from closedloop.analytics.raw import RAW_DATASETS, RAW_KEYS

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


def _raw_section(name: str) -> str:
    """The ``### `<name>``` subsection of "## Raw datasets" (the doc's last section)."""
    raw = ATHENA_DOC.split("\n## Raw datasets\n", 1)[1]
    return raw.split(f"\n### `{name}`\n", 1)[1].split("\n### ", 1)[0]


@pytest.mark.parametrize("dataset", RAW_DATASETS, ids=lambda d: d.name)
def test_every_column_of_every_raw_dataset_is_documented_with_its_type(dataset):
    section = _raw_section(dataset.name)
    documented = [row.split("|")[1:3] for row in section.splitlines() if row.startswith("| `")]
    columns = [(f" `{c.name}` ", f" {c.glue_type} ") for c in dataset.columns]
    assert [tuple(row) for row in documented[: len(columns)]] == columns
    assert documented[len(columns) :] == [[" `dt` ", " string (partition) "]]
    assert "Key: " + ", ".join(f"`{key}`" for key in RAW_KEYS[dataset.name]) + "." in section


def test_every_raw_column_has_a_glue_type_and_a_description():
    for dataset in RAW_DATASETS:
        for column in dataset.columns:
            assert column.glue_type in {"string", "bigint", "double", "boolean", "timestamp", "array<string>"}
            assert column.description.endswith(".")
