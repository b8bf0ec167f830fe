"""Where the raw datasets are written: immutable Parquet objects under ``raw/`` on the analytics bucket.

Objects are only ever put, never read, listed or deleted by the export (its role may do exactly
``s3:PutObject`` on ``raw/*``). The same rows give the same bytes (fixed writer settings), so a retried
batch that puts the same key again changes nothing a reader can see.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from closedloop import aws
from closedloop.lake import LakeUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["RawLake", "parquet_bytes"]


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as one Parquet file, with the writer settings of every dataset (``closedloop.lake``)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy", use_dictionary=True, write_statistics=True)
    return buffer.getvalue()


class RawLake:
    """The analytics bucket as the lake export sees it. Pass ``client`` (moto's) in tests."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    def put_table(self, key: str, table: pa.Table) -> int:
        """Write ``table`` as the object ``key`` (one PUT); return the bytes written.

        Raises
        ------
        LakeUnavailableError
            S3 refused or failed the PUT: the caller's batch must be retried.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        body = parquet_bytes(table)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (ClientError, BotoCoreError) as exc:
            raise LakeUnavailableError("S3 put_object failed") from exc
        return len(body)
