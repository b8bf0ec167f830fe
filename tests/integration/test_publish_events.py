"""Domain events under moto: the ingest functions write, the table's stream feeds the publish function,
and the bus (observed through a rule targeting an SQS queue) carries each change's event once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from closedloop.changes import STREAM_FILTERS, TableChange, is_relevant
from closedloop.events import EVENT_TYPES, DealWon, LeadIdentified
from closedloop.identity import lead_id_for
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.store.schema import create_table
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.event_support import EVENT_BUS, BusObserver, StreamDrain, matches, streams_client
from tests.support import api_event, invoke

REGION = "us-east-1"
SIGNING_SECRET = "generic-signing-secret-5e8d2c"
LAPTOP = "LaptopVisitorAAAAAAAAAA"
PHONE = "PhoneVisitorBBBBBBBBBBB"
ADA = "ada@example.com"
LINKEDIN_AD = (
    f"{SITE_ORIGIN}/guide?utm_source=linkedin&utm_medium=cpc&utm_campaign=spring-launch&li_fat_id=abc123"
)
DETAIL_TYPES = {t.detail_type: t for t in EVENT_TYPES}


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """moto with the table (and its stream), the bus and a write-back queue; the functions' environment."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, TABLE_NAME, stream=True)
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        bus = BusObserver(events, sqs)
        writeback_url = sqs.create_queue(QueueName="writeback")["QueueUrl"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(
            Name="closedloop-webhooks",
            SecretString=json.dumps({"generic": {"signing_secret": SIGNING_SECRET}}),
        )["ARN"]
        monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
        monkeypatch.setenv("EVENT_BUS_NAME", EVENT_BUS)
        monkeypatch.setenv("WRITEBACK_QUEUE_URL", writeback_url)
        yield SimpleNamespace(
            dynamodb=dynamodb,
            sqs=sqs,
            bus=bus,
            writeback_url=writeback_url,
            stream=StreamDrain(dynamodb, streams_client(), TABLE_NAME),
        )


@pytest.fixture
def functions(aws: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(
        collect=load_function("collect"),
        identify=load_function("identify"),
        crm_webhook=load_function("crm_webhook"),
        publish=load_function("publish"),
    )


def page_view(
    collect: ModuleType, event_id: str, url: str, *, visitor: str = LAPTOP, minutes_ago: int = 5
) -> Any:
    body = {
        "event_id": event_id,
        "visitor_id": visitor,
        "url": url,
        "referrer": "https://www.linkedin.com/",
        "ts": int(time.time() * 1000) - minutes_ago * 60_000,
    }
    return invoke(collect, api_event("POST", "/collect", body=body))[2]


def submit(identify: ModuleType, *, visitor: str = LAPTOP, submission_id: str = "sub-guide-0001") -> Any:
    body = {
        "email": "Ada@Example.com",
        "visitor_id": visitor,
        "form_id": "guide-download",
        "submission_id": submission_id,
        "page_url": f"{SITE_ORIGIN}/guide",
        "company": "Analytical Engines Ltd",
    }
    return invoke(identify, api_event("POST", "/identify", body=body))


def deal(crm_webhook: ModuleType, event_id: str, status: str, *, stage: str, version: int) -> Any:
    payload = {
        "event_id": event_id,
        "deal_id": "D-1042",
        "status": status,
        "stage": stage,
        "occurred_at": datetime.now(UTC).isoformat(),
        "version": version,
        "contact_email": ADA,
        "amount": "12000.50",
        "currency": "EUR",
    }
    body = json.dumps(payload).encode()
    t = int(time.time())
    v1 = hmac.new(SIGNING_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    event = api_event(
        "POST",
        "/webhooks/generic",
        body=body,
        content_type="application/json",
        headers={"X-Closedloop-Signature": f"t={t},v1={v1}"},
    )
    return invoke(crm_webhook, event)


def publish(functions: SimpleNamespace, aws: SimpleNamespace) -> dict[str, Any]:
    """Run the publish function over the stream's new records, as the event source mapping would."""
    reply: dict[str, Any] = functions.publish.handler(
        aws.stream.event(), LambdaContextStub(function_name="publish")
    )
    return reply


def by_type(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in received:
        grouped.setdefault(event["detail-type"], []).append(event)
    return grouped


def writeback_messages(aws: SimpleNamespace) -> list[dict[str, Any]]:
    bodies = []
    while True:
        messages = aws.sqs.receive_message(QueueUrl=aws.writeback_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=aws.writeback_url, ReceiptHandle=message["ReceiptHandle"])


# -- once per change ---------------------------------------------------------------------------------


def test_each_change_is_published_once_however_often_its_request_is_retried(functions, aws):
    # Given a visit from a LinkedIn ad, a form post and a deal's creation, each request sent three times
    for _ in range(3):
        page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
        assert submit(functions.identify)[0] == 200
        assert deal(functions.crm_webhook, "evt_open", "open", stage="proposal", version=1)[0] == 200

    # When the stream is relayed
    assert publish(functions, aws) == {"batchItemFailures": []}

    # Then the bus carries one event per change
    received = by_type(aws.bus.received())
    assert {kind: len(events) for kind, events in received.items()} == {
        "closedloop.touch.recorded.v1": 1,
        "closedloop.lead.identified.v1": 1,
        "closedloop.deal.stage_changed.v1": 1,
    }
    # ...and relaying the stream again (nothing new) publishes nothing
    assert publish(functions, aws) == {"batchItemFailures": []}
    assert aws.bus.received() == []


def test_every_event_has_its_documented_envelope_and_schema(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    deal(functions.crm_webhook, "evt_open", "open", stage="proposal", version=1)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=2)
    publish(functions, aws)

    received = aws.bus.received()
    assert len(received) == 5
    for event in received:
        assert event["source"] == "closedloop"
        assert event["detail-type"].startswith("closedloop.") and event["detail-type"].endswith(".v1")
        # The detail validates against the versioned model, which forbids undocumented fields
        model = DETAIL_TYPES[event["detail-type"]]
        parsed = model.model_validate(event["detail"])
        assert parsed.event_id == event["detail"]["event_id"]


def test_the_lead_identified_event_carries_the_original_source(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    publish(functions, aws)

    [event] = by_type(aws.bus.received())["closedloop.lead.identified.v1"]
    identified = LeadIdentified.model_validate(event["detail"])
    assert identified.lead_id == lead_id_for(ADA)
    assert identified.email == ADA
    assert identified.new_lead is True
    assert identified.form_id == "guide-download"
    assert identified.original_source is not None
    assert identified.original_source.model_dump() == {
        "channel": "Paid Social",
        "source": "linkedin",
        "medium": "cpc",
        "campaign": "spring-launch",
    }
    assert identified.touches == 1


def test_the_touch_event_names_its_lead_once_the_visitor_is_identified(functions, aws):
    submit(functions.identify)  # the visitor is identified first (no touch yet)
    page_view(functions.collect, "evt-00000002", LINKEDIN_AD, minutes_ago=0)
    publish(functions, aws)

    [touch] = by_type(aws.bus.received())["closedloop.touch.recorded.v1"]
    assert touch["detail"]["lead_id"] == lead_id_for(ADA)
    assert touch["detail"]["source"]["channel"] == "Paid Social"
    assert touch["detail"]["click_id_type"] == "li_fat_id"
    assert "abc123" not in json.dumps(touch)  # the click id's value stays in the table


def test_a_second_device_merges_into_the_lead(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    page_view(functions.collect, "evt-00000002", f"{SITE_ORIGIN}/pricing", visitor=PHONE)
    submit(functions.identify, visitor=PHONE, submission_id="sub-phone-0001")
    publish(functions, aws)

    received = by_type(aws.bus.received())
    [merged] = received["closedloop.lead.merged.v1"]
    assert merged["detail"]["visitor_id"] == PHONE
    assert merged["detail"]["visitors"] == 2
    assert [e["detail"]["new_lead"] for e in received["closedloop.lead.identified.v1"]] == [True, False]


def test_a_won_deal_carries_its_credit_under_the_default_model(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    deal(functions.crm_webhook, "evt_open", "open", stage="proposal", version=1)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=2)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=2)  # a CRM retry
    publish(functions, aws)

    received = by_type(aws.bus.received())
    [won] = received["closedloop.deal.won.v1"]
    detail = DealWon.model_validate(won["detail"])
    assert (detail.crm, detail.deal_id, detail.amount, detail.currency) == (
        "generic",
        "D-1042",
        "12000.50",
        "EUR",
    )
    assert detail.credited_channels == ("Paid Social",)
    assert detail.attribution.model == "w_shaped"
    assert sum(t.credit for t in detail.attribution.touches) == pytest.approx(1.0)
    assert sum(c.revenue_credit for c in detail.attribution.channels) == pytest.approx(12000.50)
    stages = [
        (e["detail"]["previous_lifecycle"], e["detail"]["lifecycle"])
        for e in received["closedloop.deal.stage_changed.v1"]
    ]
    assert stages == [(None, "open"), ("open", "won")]


def test_only_the_lead_identified_event_carries_the_email(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=1)
    publish(functions, aws)

    for event in aws.bus.received():
        carries_email = ADA in json.dumps(event)
        assert carries_email == (event["detail-type"] == "closedloop.lead.identified.v1"), event[
            "detail-type"
        ]
        assert "Analytical Engines" not in json.dumps(event)


# -- write-back messages -------------------------------------------------------------------------------


def test_changes_of_a_lead_queue_its_id_for_write_back_and_nothing_else(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    page_view(functions.collect, "evt-00000009", f"{SITE_ORIGIN}/", visitor="AnonymousVisitorCCCCCCC")
    submit(functions.identify)
    publish(functions, aws)

    # One message for the lead (its submission and its visitor link are one change to the CRM)
    assert writeback_messages(aws) == [{"lead_id": lead_id_for(ADA), "v": 1}]

    # A new session of the identified visitor changes its journey: queued again
    page_view(
        functions.collect,
        "evt-00000010",
        f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email",
        minutes_ago=0,
    )
    publish(functions, aws)
    assert writeback_messages(aws) == [{"lead_id": lead_id_for(ADA), "v": 1}]


# -- failures and configuration -----------------------------------------------------------------------


class _FailingOnce:
    """An events client whose first PutEvents call fails one entry (EventBridge's partial failure)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.calls += 1
        if self.calls == 1:
            ok = self.real.put_events(Entries=Entries[:1])["Entries"] if Entries[:1] else []
            failed = [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}] * (len(Entries) - 1)
            return {"FailedEntryCount": len(failed), "Entries": ok + failed}
        return dict(self.real.put_events(Entries=Entries))


def test_a_publish_failure_resumes_the_stream_at_the_first_unpublished_change(functions, aws):
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD)
    submit(functions.identify)
    flaky = _FailingOnce(boto3.client("events", region_name=REGION))
    functions.publish.publisher._client = flaky
    records = aws.stream.records()

    # When the first call fails after the touch event went out
    reply = functions.publish.handler({"Records": records}, LambdaContextStub(function_name="publish"))

    # Then Lambda is told to resume from the submission's record, not from the touch's
    [failure] = reply["batchItemFailures"]
    submission = next(r for r in records if r["dynamodb"]["Keys"]["sk"]["S"].startswith("S#"))
    assert failure["itemIdentifier"] == submission["dynamodb"]["SequenceNumber"]
    # ...and the retry (Lambda re-sends from that record on) publishes the rest, once
    retry = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= int(failure["itemIdentifier"])]
    assert functions.publish.handler({"Records": retry}, LambdaContextStub(function_name="publish")) == {
        "batchItemFailures": []
    }
    kinds = sorted(e["detail-type"] for e in aws.bus.received())
    assert kinds == ["closedloop.lead.identified.v1", "closedloop.touch.recorded.v1"]


def test_without_a_bus_or_queue_nothing_is_published(aws, monkeypatch):
    monkeypatch.delenv("EVENT_BUS_NAME")
    monkeypatch.delenv("WRITEBACK_QUEUE_URL")
    collect, identify, publish_fn = (
        load_function("collect"),
        load_function("identify"),
        load_function("publish"),
    )
    page_view(collect, "evt-00000001", LINKEDIN_AD)
    submit(identify)

    reply = publish_fn.handler(aws.stream.event(), LambdaContextStub(function_name="publish"))

    assert reply == {"batchItemFailures": []}
    assert aws.bus.received() == []
    assert writeback_messages(aws) == []


def test_the_stream_filters_select_exactly_the_changes_the_function_acts_on(functions, aws):
    # A realistic run: page views, a new session, a form, a second device, a deal created and won
    page_view(functions.collect, "evt-00000001", LINKEDIN_AD, minutes_ago=90)
    page_view(functions.collect, "evt-00000002", f"{SITE_ORIGIN}/pricing", minutes_ago=89)
    submit(functions.identify)
    submit(functions.identify, visitor=PHONE, submission_id="sub-phone-0001")
    deal(functions.crm_webhook, "evt_open", "open", stage="proposal", version=1)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=2)
    records = aws.stream.records()
    assert len(records) > 10

    for record in records:
        keys = record["dynamodb"]["Keys"]
        change = TableChange(
            event_name=record["eventName"],
            pk=keys["pk"]["S"],
            sk=keys["sk"]["S"],
            new=None,
            old=None,
            sequence_number=record["dynamodb"]["SequenceNumber"],
        )
        selected = any(matches(pattern, record) for pattern in STREAM_FILTERS)
        assert selected == is_relevant(change), (record["eventName"], keys)


# -- sizes EventBridge refuses ---------------------------------------------------------------------------


def _documented_size(entry: dict[str, Any]) -> int:
    """EventBridge's entry size ("Calculating PutEvents event entry size"), computed here on its own."""
    parts = [entry["Source"], entry["DetailType"], entry.get("Detail") or "", *(entry.get("Resources") or [])]
    return (14 if entry.get("Time") is not None else 0) + sum(len(p.encode("utf-8")) for p in parts)


class _EventBridgeSizeLimit:
    """moto's events client with EventBridge's size limit: a call whose entries total over 256 KiB is
    refused whole (ValidationException), as EventBridge refuses it; moto itself accepts any size."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refused_calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        from botocore.exceptions import ClientError

        if sum(_documented_size(e) for e in Entries) > 256 * 1024:
            self.refused_calls += 1
            error = {"Code": "ValidationException", "Message": "Total size of the entries is over the limit."}
            raise ClientError({"Error": error}, "PutEvents")
        return dict(self.real.put_events(Entries=Entries))


def test_a_won_deal_with_a_huge_journey_is_published_bounded_and_never_holds_the_stream(functions, aws):
    # Given 130 sessions with 1,000-character UTM tags, a form, and the deal won ...
    tag = "q" * 1000
    for n in range(130):
        url = f"{SITE_ORIGIN}/p?utm_source=s{n}{tag}&utm_medium=cpc{tag}&utm_campaign=c{n}{tag}"
        page_view(functions.collect, f"evt-big-{n:04d}", url, minutes_ago=600 - 2 * n)
    submit(functions.identify)
    deal(functions.crm_webhook, "evt_won", "won", stage="closed won", version=1)
    # ... and behind it, another visitor's touch in the same stream
    page_view(functions.collect, "evt-other-0001", LINKEDIN_AD, visitor=PHONE, minutes_ago=0)
    limited = _EventBridgeSizeLimit(boto3.client("events", region_name=REGION))
    functions.publish.publisher._client = limited

    # When the stream is relayed
    reply = publish(functions, aws)

    # Then nothing is retried, EventBridge refused nothing, and everything reached the bus
    assert reply == {"batchItemFailures": []}
    assert limited.refused_calls == 0
    received = by_type(aws.bus.received())
    [won] = received["closedloop.deal.won.v1"]
    detail = DealWon.model_validate(won["detail"])
    kept, omitted = len(detail.attribution.touches), detail.attribution.touches_omitted
    assert kept + omitted == 130 and omitted > 0  # capped, and it says by how much
    assert sum(c.credit for c in detail.attribution.channels) == pytest.approx(1.0)  # totals: whole journey
    assert len(json.dumps(won["detail"], separators=(",", ":")).encode()) <= 128 * 1024
    touched = {e["detail"]["visitor_id"] for e in received["closedloop.touch.recorded.v1"]}
    assert touched == {LAPTOP, PHONE}  # the other visitor's touch, behind the deal, went out too
