"""The DynamoDB table's shape, shared by the CDK app, the local stack and the tests.

One table (single-table design). Keys are prefixed strings:

================================  ===============================  =====================================
item                              pk / sk                          gsi1pk / gsi1sk
================================  ===============================  =====================================
visitor's running session         ``V#<visitor>`` / ``STATE``
stored event (page view, track)   ``V#<visitor>`` / ``E#<event>``
touch (a session start)           ``V#<visitor>`` / ``T#<ts>#<id>``  ``TD#<yyyy-mm-dd>`` / ``<ts>#<visitor>``
CRM deal's state                  ``D#<crm>#<deal>`` / ``STATE``     ``DC#<day>`` / ``<ts>#<crm>#<deal>``
CRM deal event (history)          ``D#<crm>#<deal>`` / ``EV#<event>``
lead is a contact of a deal       ``L#<lead>`` / ``DEAL#<crm>#<deal>``
================================  ===============================  =====================================

``<ts>`` is ISO-8601 UTC with milliseconds, so string order is time order. See docs/architecture.md
for the access patterns each key serves. A deal's ``DC#<day>`` (``yyyy-mm-dd``) and ``<ts>`` are the
server time of the last write of its state (the day the attribution job must re-read it), not the
CRM's time; its history keeps every event ever received, once per CRM event id
(``closedloop.store.deals``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "ATTRIBUTE_DEFINITIONS",
    "BY_DAY_INDEX",
    "GLOBAL_SECONDARY_INDEXES",
    "KEY_SCHEMA",
    "STREAM_VIEW_TYPE",
    "TTL_ATTRIBUTE",
    "create_table",
]

PARTITION_KEY = "pk"
SORT_KEY = "sk"
BY_DAY_INDEX = "gsi1"
TTL_ATTRIBUTE = "expires_at"
# The table's stream feeds the publish function (closedloop.changes): events and CRM write-back.
STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"

KEY_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS: list[dict[str, str]] = [
    {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
]
GLOBAL_SECONDARY_INDEXES: list[dict[str, Any]] = [
    {
        "IndexName": BY_DAY_INDEX,
        "KeySchema": [
            {"AttributeName": "gsi1pk", "KeyType": "HASH"},
            {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
]


def create_table(client: DynamoDBClient, table_name: str, *, stream: bool = False) -> None:
    """Create the table as the CDK app defines it (for moto and the local stack).

    ``stream=True`` adds the stream the CDK app gives the table (off by default: moto keeps every
    stream record in memory, which only the tests of the publish function need).
    """
    client.create_table(
        TableName=table_name,
        KeySchema=KEY_SCHEMA,  # type: ignore[arg-type]
        AttributeDefinitions=ATTRIBUTE_DEFINITIONS,  # type: ignore[arg-type]
        GlobalSecondaryIndexes=GLOBAL_SECONDARY_INDEXES,  # type: ignore[arg-type]
        BillingMode="PAY_PER_REQUEST",
        **(
            {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}}  # type: ignore[arg-type]
            if stream
            else {}
        ),
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
