"""The Athena tables on this machine: DuckDB views ``closedloop.<dataset>`` (or another database's name)
over the job's Parquet.

DuckDB has no S3 access offline (no httpfs), so the objects are downloaded to a folder first; the views
then read them with Hive partitioning, so ``dt`` is a column exactly as in Athena and the named queries
run unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from closedloop.analytics.datasets import DATASETS

if TYPE_CHECKING:
    import duckdb

__all__ = ["download_lake", "duckdb_over_lake"]


def download_lake(s3: Any, bucket: str, folder: Path) -> int:
    """Copy every Parquet object of the bucket under ``folder`` (same keys); return how many."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith(".parquet"):
                continue
            target = folder / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            count += 1
    return count


def duckdb_over_lake(folder: Path, *, database: str = "closedloop") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view ``<database>.<dataset>`` per dataset over the Parquet in
    ``folder``: ``closedloop`` as the default stack's Glue database, or another stack's name (run the
    named queries there with :meth:`~closedloop.analytics.queries.NamedQuery.in_database`).

    A dataset without any partition yet is an empty view with the dataset's columns (as an empty
    Athena table would be).
    """
    import duckdb

    connection = duckdb.connect()
    if not re.fullmatch(r"[a-z0-9_]+", database):
        raise ValueError(f"not a Glue database name: {database!r}")
    connection.execute(f"CREATE SCHEMA {database}")
    for ds in DATASETS:
        data = folder / ds.name
        if data.exists() and any(data.glob("*/*.parquet")):
            source = f"read_parquet('{data}/*/*.parquet', hive_partitioning = true)"
        else:
            columns = ", ".join(f"CAST(NULL AS VARCHAR) AS {c.name}" for c in ds.columns)
            source = f"(SELECT {columns}, CAST(NULL AS VARCHAR) AS dt WHERE false)"
        connection.execute(f"CREATE VIEW {database}.{ds.name} AS SELECT * FROM {source}")  # noqa: S608 - our names
    return connection
