"""The local stack itself: moto's server on 127.0.0.1 with the same table, and its faster transactions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from closedloop.local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(table_name=f"closedloop-stack-{uuid.uuid4().hex[:8]}") as local:
        yield local


def put(pk: str, sk: str, table: str, condition: str | None = "attribute_not_exists(pk)") -> dict:
    operation: dict = {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": sk}}}
    if condition:
        operation["ConditionExpression"] = condition
    return {"Put": operation}


def test_a_transaction_with_one_failed_condition_writes_nothing_and_says_which(stack):
    client = stack.dynamodb()
    client.put_item(TableName=stack.table_name, Item={"pk": {"S": "A"}, "sk": {"S": "1"}})

    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[put("B", "1", stack.table_name), put("A", "1", stack.table_name)]
        )

    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in client.get_item(TableName=stack.table_name, Key={"pk": {"S": "B"}, "sk": {"S": "1"}})


def test_a_transaction_whose_conditions_hold_writes_every_item(stack):
    client = stack.dynamodb()
    client.transact_write_items(
        TransactItems=[put("C", "1", stack.table_name), put("C", "2", stack.table_name)]
    )
    items = client.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "C"}},
    )["Items"]
    assert len(items) == 2


def test_the_gateway_serves_the_api_and_the_demo_site(stack):
    import urllib.request

    with urllib.request.urlopen(f"{stack.url}/health") as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{stack.url}/site/index.html") as reply:
        assert b"/t.js" in reply.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{stack.url}/site/../../../../etc/passwd")
    assert missing.value.code == 404


def test_a_unit_tests_mock_in_the_same_process_leaves_the_stacks_table_alone(stack):
    from moto import mock_aws

    # Starting and stopping an in-process mock resets moto's backends in this process only.
    with mock_aws():
        pass

    assert stack.dynamodb().describe_table(TableName=stack.table_name)["Table"]["TableStatus"] == "ACTIVE"


def test_stopping_the_stack_stops_its_moto_server():
    import urllib.request

    with LocalStack(table_name=f"closedloop-stack-{uuid.uuid4().hex[:8]}") as local:
        moto_url = local.moto_url
        with urllib.request.urlopen(f"{moto_url}/moto-api/") as reply:
            assert reply.status == 200

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{moto_url}/moto-api/", timeout=2)
