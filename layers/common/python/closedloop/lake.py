"""The analytics bucket: one Parquet object per dataset partition, replaced whole.

``<dataset>/dt=<yyyy-mm-dd>/part-0.parquet``. A partition is a single object written with one PUT,
so a reader (Athena) sees either the previous complete version or the new one, never half of it:
S3 replaces an object atomically. The same rows give the same bytes (deterministic writer
settings, rows sorted by the caller), so a re-run changes nothing.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from closedloop import aws
from closedloop.errors import DependencyError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Lake", "LakeUnavailableError"]

SPEND_PREFIX = "spend/"
STATE_PREFIX = "state/"


class LakeUnavailableError(DependencyError):
    """S3 failed; the job stops and its next run redoes the same work."""


class Lake:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    @staticmethod
    def key(dataset: str, dt: str) -> str:
        return f"{dataset}/dt={dt}/part-0.parquet"

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise LakeUnavailableError(f"S3 {operation} failed") from exc
        except BotoCoreError as exc:
            raise LakeUnavailableError(f"S3 {operation} failed") from exc

    @staticmethod
    def state_key(name: str) -> str:
        return f"{STATE_PREFIX}{name}.parquet"

    def read(self, dataset: str, dt: str, schema: pa.Schema) -> pa.Table:
        """The partition's rows (an empty table when it does not exist)."""
        return self._read_object(self.key(dataset, dt), schema)

    def write(self, dataset: str, dt: str, table: pa.Table) -> int:
        """Replace the partition whole (or delete it when ``table`` is empty); return the bytes written."""
        return self._write_object(self.key(dataset, dt), table)

    def read_state(self, name: str, schema: pa.Schema) -> pa.Table:
        """The job's own state between runs (under ``state/``, outside every Athena table).

        Listed before it is read: the job's role may list only its own prefixes, and without that
        S3 answers a missing key with 403, not 404.
        """
        key = self.state_key(name)
        reply = self._call("list_objects_v2", Bucket=self.bucket, Prefix=key) or {}
        if not any(item["Key"] == key for item in reply.get("Contents", [])):
            return schema.empty_table()
        return self._read_object(key, schema)

    def write_state(self, name: str, table: pa.Table) -> int:
        return self._write_object(self.state_key(name), table)

    def _read_object(self, key: str, schema: pa.Schema) -> pa.Table:
        reply = self._call("get_object", Bucket=self.bucket, Key=key)
        if reply is None:
            return schema.empty_table()
        return pq.read_table(io.BytesIO(reply["Body"].read())).cast(schema)

    def _write_object(self, key: str, table: pa.Table) -> int:
        if table.num_rows == 0:
            self._call("delete_object", Bucket=self.bucket, Key=key)
            return 0
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy", use_dictionary=True, write_statistics=True)
        body = buffer.getvalue()
        self._call("put_object", Bucket=self.bucket, Key=key, Body=body)
        return len(body)

    def partitions(self, dataset: str) -> list[str]:
        """The ``dt`` values that exist for a dataset, in order."""
        found: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{dataset}/dt=", "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            reply = self._call("list_objects_v2", **kwargs) or {}
            found += [p["Prefix"].split("dt=", 1)[1].rstrip("/") for p in reply.get("CommonPrefixes", [])]
            token = reply.get("NextContinuationToken")
            if not token:
                return sorted(found)

    def spend_rows(self) -> list[dict[str, str]]:
        """Rows of the ad-spend CSVs under ``spend/``: date, channel, source, campaign, cost, currency."""
        rows: list[dict[str, str]] = []
        for key in self._keys(SPEND_PREFIX):
            if not key.endswith(".csv"):
                continue
            body = self._call("get_object", Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8-sig")
            rows += list(csv.DictReader(io.StringIO(body)))
        return rows

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            reply = self._call("list_objects_v2", **kwargs) or {}
            keys += [item["Key"] for item in reply.get("Contents", [])]
            token = reply.get("NextContinuationToken")
            if not token:
                return sorted(keys)
