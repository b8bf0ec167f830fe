"""Test helpers for the asynchronous side: the table's stream as Lambda receives it, the event bus
observed through a rule whose target is an SQS queue (moto stores PutEvents and delivers to SQS
targets), the write-back queue as the worker receives it, and EventBridge pattern matching for the
stream filters."""

from __future__ import annotations

import json
from typing import Any

EVENT_BUS = "closedloop-test-bus"
REGION = "us-east-1"


def streams_client() -> Any:
    """A DynamoDB Streams client moto answers: botocore would call the account-based endpoint
    (``<account>.streams-ddb...``) for stream ARNs, which moto does not route."""
    import boto3

    return boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )


class StreamDrain:
    """Reads the table's stream (moto's DynamoDB Streams) and hands new records over in Lambda's shape.

    moto replaces a table object when a transaction rolls back, so every read starts from a fresh
    TRIM_HORIZON iterator and skips the sequence numbers already handed over.
    """

    def __init__(self, dynamodb: Any, streams: Any, table_name: str) -> None:
        self.streams = streams
        self.table_name = table_name
        self.dynamodb = dynamodb
        self.seen = 0

    def records(self) -> list[dict[str, Any]]:
        arn = self.dynamodb.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        fresh = []
        while iterator:
            reply = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records = reply["Records"]
            if not records:
                break
            for record in records:
                if int(record["dynamodb"]["SequenceNumber"]) > self.seen:
                    fresh.append({**_jsonable(record), "eventSourceARN": arn})
            iterator = reply.get("NextShardIterator")
        if fresh:
            self.seen = max(int(r["dynamodb"]["SequenceNumber"]) for r in fresh)
        return fresh

    def event(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The Lambda event of the new records (or of ``records``)."""
        return {"Records": self.records() if records is None else records}


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    # boto3 parses ApproximateCreationDateTime into a datetime; Lambda sends epoch seconds.
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": stream}


class BusObserver:
    """A bus, a rule that forwards every Closedloop event to an SQS queue, and a reader of that queue."""

    def __init__(self, events: Any, sqs: Any, bus_name: str = EVENT_BUS) -> None:
        self.sqs = sqs
        self.bus_name = bus_name
        events.create_event_bus(Name=bus_name)
        self.queue_url = sqs.create_queue(QueueName=f"{bus_name}-observer")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name="observe-all", EventBusName=bus_name, EventPattern=json.dumps({"source": ["closedloop"]})
        )
        events.put_targets(
            Rule="observe-all", EventBusName=bus_name, Targets=[{"Id": "observer", "Arn": queue_arn}]
        )

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered since the last call, as EventBridge sends it to a target."""
        events = []
        while True:
            reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = reply.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda event of messages received from a queue, as the SQS event source mapping sends it."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge pattern matching, for the subset the stream filters use: exact strings, ``prefix``,
    and nested objects (a missing field never matches)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(key in value and matches(sub, value[key]) for key, sub in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        for candidate in values:
            for rule in pattern:
                if isinstance(rule, dict) and "prefix" in rule:
                    if isinstance(candidate, str) and candidate.startswith(rule["prefix"]):
                        return True
                elif rule == candidate:
                    return True
        return False
    return bool(pattern == value)
