"""Faults lose nothing: DynamoDB throttled or down under every endpoint, S3 failing in the middle of the
attribute job. Each failure is a retryable answer that stored nothing; the same request later is stored
exactly once; the next job run completes what the failed one started."""

from __future__ import annotations

import io
import json
import time
from types import ModuleType
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from closedloop.crm import sign_generic
from closedloop.identity import lead_id_for
from closedloop.lake import LakeUnavailableError
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.integration.test_attribute_job import (
    BUCKET,
    DAY,
    HOUR,
    NOW,
    RECENT,
    SIGNING_SECRET,
    deal_event,
    identify,
    lake_snapshot,
    loop,  # noqa: F401 - the fixture
    run_job,
    visit,
)
from tests.support import api_event, invoke

WRITES = ("transact_write_items", "put_item", "update_item", "batch_write_item", "delete_item")
READS = ("get_item", "query")


def throttled(operation: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation
        )

    return fail


def unreachable(operation: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    return fail


def webhook_body() -> dict[str, Any]:
    body = json.dumps(
        {
            "event_id": "deal-f-1",
            "deal_id": "F-1",
            "contact_email": "fay@example.com",
            "status": "open",
            "stage": "discovery",
            "amount": "900",
            "currency": "USD",
            "occurred_at": "2026-11-20T10:00:00Z",
        }
    ).encode()
    return {
        "body": body,
        "content_type": "application/json",
        "headers": {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))},
    }


REQUESTS: dict[str, tuple[str, str, Any]] = {
    "collect": (
        "collect",
        "/collect",
        lambda: {
            "body": {
                "event_id": "evt-fault-001",
                "visitor_id": "FaultVisitorAAAAAAAAAA",
                "url": f"{SITE_ORIGIN}/",
            }
        },
    ),
    "identify": (
        "identify",
        "/identify",
        lambda: {"body": {"email": "fay@example.com", "visitor_id": "FaultVisitorAAAAAAAAAA"}},
    ),
    "crm_webhook": ("crm_webhook", "/webhooks/generic", webhook_body),
}


def table_items(dynamodb: Any) -> list[Any]:
    items = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


@pytest.mark.parametrize("endpoint", list(REQUESTS))
@pytest.mark.parametrize(
    ("fault", "operations"),
    [(throttled, WRITES), (throttled, READS), (unreachable, WRITES + READS)],
    ids=["writes-throttled", "reads-throttled", "dynamodb-unreachable"],
)
def test_a_dynamodb_fault_is_a_retryable_503_and_the_retry_is_stored_once(
    loop: dict[str, ModuleType],  # noqa: F811
    dynamodb: Any,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    fault: Any,
    operations: tuple[str, ...],
) -> None:
    function, path, request = REQUESTS[endpoint]
    module = loop[function]
    before = table_items(dynamodb)

    # When DynamoDB fails under the request
    with monkeypatch.context() as patch:
        for operation in operations:
            patch.setattr(module.store.client, operation, fault(operation))
        status, headers, reply = invoke(module, api_event("POST", path, **request()))

    # Then the caller is told to retry, and nothing was written
    assert (status, reply["error"]["code"]) == (503, "dependency_unavailable"), reply
    assert headers["retry-after"]
    assert table_items(dynamodb) == before

    # When the same request comes again once DynamoDB is back, twice (a client's retry)
    first = invoke(module, api_event("POST", path, **request()))
    after_first = table_items(dynamodb)
    second = invoke(module, api_event("POST", path, **request()))

    # Then it was stored by the first, and the second changed nothing
    assert (first[0], second[0]) == (200, 200)
    assert len(after_first) > len(before)
    assert table_items(dynamodb) == after_first


def test_a_webhook_delivered_five_times_during_an_outage_counts_once(loop, dynamodb, monkeypatch):  # noqa: F811
    module = loop["crm_webhook"]
    request = webhook_body()  # one delivery, retried by the CRM with the same body and signature
    statuses = []
    for attempt in range(5):
        with monkeypatch.context() as patch:
            if attempt < 3:  # the first three land during an outage
                patch.setattr(module.store.client, "transact_write_items", throttled("TransactWriteItems"))
            statuses.append(invoke(module, api_event("POST", "/webhooks/generic", **request))[0])

    assert statuses == [503, 503, 503, 200, 200]
    events = [
        i for i in table_items(dynamodb) if i["pk"]["S"] == "D#generic#F-1" and i["sk"]["S"].startswith("EV#")
    ]
    assert len(events) == 1


def fail_nth_call(method: Any, n: int, fault: Any) -> Any:
    """``method`` (a client's operation) with only its ``n``-th call (from 1) failing as ``fault``."""
    calls = {"count": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == n:
            return fault(*args, **kwargs)
        return method(*args, **kwargs)

    return call


# One delivery, two deals, each with a contact who never filled a form (an offline lead to create).
CONTACTS = {"F-1": "fay@example.com", "F-2": "gus@example.com"}


def two_deals_body() -> dict[str, Any]:
    events = [
        {
            "event_id": f"deal-{deal_id}",
            "deal_id": deal_id,
            "contact_email": email,
            "status": "open",
            "amount": "900",
            "currency": "USD",
            "occurred_at": "2026-11-20T10:00:00Z",
        }
        for deal_id, email in CONTACTS.items()
    ]
    body = json.dumps({"events": events}).encode()
    return {
        "body": body,
        "content_type": "application/json",
        "headers": {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))},
    }


def deal_items(items: list[Any], deal_id: str) -> list[tuple[str, str]]:
    """The keys of one deal's items: its state, its events, its contact's profile and deal link."""
    lead = f"L#{lead_id_for(CONTACTS[deal_id])}"
    return [(i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"] in (f"D#generic#{deal_id}", lead)]


@pytest.mark.parametrize("failing", [1, 2], ids=["first-deal-fails", "second-deal-fails"])
def test_a_failed_deal_write_leaves_no_offline_lead_and_the_retry_stores_each_once(
    loop: dict[str, ModuleType],  # noqa: F811
    dynamodb: Any,
    monkeypatch: pytest.MonkeyPatch,
    failing: int,
) -> None:
    module = loop["crm_webhook"]
    request = two_deals_body()  # the CRM resends the same body

    # When DynamoDB throttles the transaction of one deal of the delivery, and only that one
    with monkeypatch.context() as patch:
        real = module.store.client.transact_write_items
        flaky = fail_nth_call(real, failing, throttled("TransactWriteItems"))
        patch.setattr(module.store.client, "transact_write_items", flaky)
        status, _, reply = invoke(module, api_event("POST", "/webhooks/generic", **request))

    # Then the CRM is told to retry; the deal before it is stored whole, and of the failed deal (and
    # the one after it) nothing is stored: not even its contact's lead, with their e-mail
    assert (status, reply["error"]["code"]) == (503, "dependency_unavailable")
    interrupted = table_items(dynamodb)
    for index, deal_id in enumerate(CONTACTS, start=1):
        lead = f"L#{lead_id_for(CONTACTS[deal_id])}"
        expected = [] if index >= failing else [(lead, "DEAL#generic#" + deal_id), (lead, "PROFILE")]
        assert [key for key in deal_items(interrupted, deal_id) if key[0] == lead] == expected

    # When the CRM retries, twice (it does not know the first retry got through)
    first = invoke(module, api_event("POST", "/webhooks/generic", **request))
    stored = table_items(dynamodb)
    second = invoke(module, api_event("POST", "/webhooks/generic", **request))

    # Then each deal is stored exactly once: its state, its event, its contact's lead and link
    assert (first[0], first[2]) == (200, {"received": 2, "duplicates": failing - 1})
    assert (second[0], second[2]) == (200, {"received": 2, "duplicates": 2})
    assert table_items(dynamodb) == stored
    for deal_id, email in CONTACTS.items():
        lead = f"L#{lead_id_for(email)}"
        assert sorted(deal_items(stored, deal_id)) == [
            (f"D#generic#{deal_id}", f"EV#deal-{deal_id}"),
            (f"D#generic#{deal_id}", "STATE"),
            (lead, f"DEAL#generic#{deal_id}"),
            (lead, "PROFILE"),
        ]
    assert loop["crm_webhook"].store.get_lead(lead_id_for(CONTACTS["F-2"])).email == CONTACTS["F-2"]


# -- the attribute job and S3 ---------------------------------------------------------------------------


def valid_parquet(body: bytes) -> bool:
    try:
        pq.read_table(io.BytesIO(body))
    except Exception:
        return False
    return True


@pytest.fixture
def two_runs(loop: dict[str, ModuleType]) -> dict[str, ModuleType]:  # noqa: F811
    """A first complete run, then new data (a second lead and a won deal) for the next run."""
    visit(
        loop,
        "AdaVisitorAAAAAAAAAAAA",
        "evt-ada-0001",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        at=NOW - 5 * DAY,
    )
    identify(loop, "AdaVisitorAAAAAAAAAAAA", "ada@example.com")
    deal_event(loop, "deal-a-1", "A-1", "ada@example.com", "open", "12000", at=NOW - 3 * HOUR)
    run_job(loop, RECENT)
    visit(
        loop,
        "BobVisitorBBBBBBBBBBBB",
        "evt-bob-0001",
        f"{SITE_ORIGIN}/?utm_source=news&utm_medium=email",
        at=NOW - 2 * DAY,
    )
    identify(loop, "BobVisitorBBBBBBBBBBBB", "bob@example.com")
    deal_event(loop, "deal-b-1", "B-1", "bob@example.com", "won", "5000", at=NOW - HOUR)
    deal_event(loop, "deal-a-2", "A-1", "ada@example.com", "won", "12000", at=NOW - HOUR)
    return loop


@pytest.mark.parametrize("failing_put", [1, 3, 6])
def test_an_s3_failure_mid_run_leaves_every_partition_readable_and_the_next_run_completes_it(
    two_runs: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch, failing_put: int
) -> None:
    job = two_runs["attribute"]
    previous = lake_snapshot()
    watermark = job.store.get_job_watermark("attribute")

    # When S3 fails on the n-th PutObject of the run
    real_put = job.lake.client.put_object
    puts = {"count": 0}

    def flaky_put(**kwargs: Any) -> Any:
        puts["count"] += 1
        if puts["count"] == failing_put:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "reduce your request rate"}}, "PutObject"
            )
        return real_put(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(job.lake.client, "put_object", flaky_put)
        with pytest.raises(LakeUnavailableError):
            run_job(two_runs, RECENT)

    # Then every object is a whole Parquet file, the previous version of every partition not yet
    # rewritten is untouched, and the watermark did not move
    interrupted = lake_snapshot()
    assert all(valid_parquet(body) for key, body in interrupted.items() if key.endswith(".parquet"))
    rewritten = {key for key in interrupted if interrupted[key] != previous.get(key)}
    assert len(rewritten) <= failing_put - 1  # only the PUTs that succeeded (some wrote the same bytes)
    assert job.store.get_job_watermark("attribute") == watermark

    # When the next run comes
    run_job(two_runs, RECENT)
    completed = lake_snapshot()

    # Then the lake is what a run without the failure writes
    s3 = boto3.client("s3", region_name="us-east-1")
    for key in completed:
        s3.delete_object(Bucket=BUCKET, Key=key)
    for key, body in previous.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    run_job(two_runs, RECENT)
    assert lake_snapshot() == completed
