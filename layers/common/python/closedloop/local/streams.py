"""The table's stream on this machine: what Lambda's event source mapping does in AWS, by hand.

:class:`StreamPump` reads DynamoDB Streams (moto's, in the tests and the local stack) with the Streams
API, ``DescribeStream`` / ``GetShardIterator`` / ``GetRecords``, and hands each page of records, in
Lambda's shape, to a consumer such as :func:`closedloop.analytics.raw_export.export_stream_batch`::

    pump = StreamPump(table_name, consume=partial(export_stream_batch, lake=RawLake(bucket)))
    pump.pump()  # every record written since the last call, once

It remembers, per shard, the last sequence number it delivered and resumes after it
(``AFTER_SEQUENCE_NUMBER``), so calling it twice delivers each record once. A fresh iterator per call,
not a kept one: moto replaces a table's stream shard when a transaction rolls back, and in AWS an
iterator expires after 15 minutes. A consumer that raises leaves the position before that page: the
next call delivers it again, as Lambda retries a failed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from closedloop import aws

__all__ = ["StreamConsumer", "StreamPump", "lambda_record"]

# consume(records, shard_id=...): one batch of Lambda-shaped records from one shard.
StreamConsumer = Callable[..., object]


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A Streams API record as Lambda delivers it: epoch seconds, not a datetime, and the stream's ARN."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": stream, "eventSourceARN": stream_arn}


class StreamPump:
    """Delivers the table's new stream records to ``consume``, page by page, each record once."""

    def __init__(
        self,
        table_name: str,
        *,
        consume: StreamConsumer,
        dynamodb: Any = None,
        streams: Any = None,
        batch_size: int = 1000,
    ) -> None:
        self.table_name = table_name
        self.consume = consume
        self.batch_size = batch_size
        self._dynamodb = dynamodb
        self._streams = streams
        self.positions: dict[str, str] = {}  # shard id -> last sequence number delivered

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            self._dynamodb = aws.client("dynamodb")
        return self._dynamodb

    @property
    def streams(self) -> Any:
        if self._streams is None:
            self._streams = aws.client("dynamodbstreams")
        return self._streams

    def _shards(self, stream_arn: str) -> list[dict[str, Any]]:
        """Every shard of the stream, parents before their children (DescribeStream pages)."""
        shards: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            shards += description.get("Shards", [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        ids = {shard["ShardId"] for shard in shards}
        ordered: list[dict[str, Any]] = []
        done: set[str] = set()
        while len(ordered) < len(shards):
            for shard in shards:
                parent = shard.get("ParentShardId")
                if shard["ShardId"] not in done and (parent not in ids or parent in done):
                    ordered.append(shard)
                    done.add(shard["ShardId"])
        return ordered

    def _iterator(self, stream_arn: str, shard_id: str) -> str:
        last = self.positions.get(shard_id)
        kwargs: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
            if last is not None
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        reply = self.streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, **kwargs)
        return str(reply["ShardIterator"])

    def pump(self) -> int:
        """Deliver every record written since the last call; return how many were delivered."""
        stream_arn = self.dynamodb.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]
        delivered = 0
        for shard in self._shards(stream_arn):
            shard_id = shard["ShardId"]
            iterator: str | None = self._iterator(stream_arn, shard_id)
            while iterator:
                reply = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
                records: Sequence[dict[str, Any]] = reply.get("Records", [])
                if not records:
                    break
                self.consume([lambda_record(r, stream_arn) for r in records], shard_id=shard_id)
                self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
                delivered += len(records)
                iterator = reply.get("NextShardIterator")
        return delivered
