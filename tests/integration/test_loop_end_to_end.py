"""The whole loop, outward included, under moto and a local HubSpot (the issue's proof):

a visitor from a LinkedIn ad fills a form -> the HubSpot contact gets "Paid Social / linkedin / cpc /
<campaign>" as its original source; the deal is won in HubSpot -> the bus carries closedloop.deal.won.v1
with its credited channels, the deal gets the same source properties, and HubSpot's echo of our own
write is ignored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from closedloop.events import DealWon, LeadIdentified
from closedloop.identity import lead_id_for
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.store import DynamoStore
from closedloop.store.schema import create_table
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.event_support import EVENT_BUS, BusObserver, StreamDrain, sqs_event, streams_client
from tests.support import BROWSER_UA, api_event, invoke
from tests.unit.crm.conftest import FakeCrmApi
from tests.unit.writeback.fakes import FakeHubSpot

REGION = "us-east-1"
CLIENT_SECRET = "hubspot-client-secret-6f1e"
TOKEN = "pat-na1-0c7e-test-token"
ADA = "ada@example.com"
VISITOR = "LinkedInVisitorAAAAAAAA"
CAMPAIGN = "q4-attribution-webinar"
AD_CLICK = (
    f"{SITE_ORIGIN}/webinar?utm_source=linkedin&utm_medium=cpc&utm_campaign={CAMPAIGN}"
    "&utm_content=carousel-a&li_fat_id=5e2c8f1a-7b3d"
)


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    api = FakeCrmApi()
    api.start()
    yield FakeHubSpot(api)
    api.stop()


@pytest.fixture
def loop(aws_env: None, monkeypatch: pytest.MonkeyPatch, hubspot: FakeHubSpot) -> Iterator[SimpleNamespace]:
    """The deployed loop in moto: table + stream, bus, write-back queue, CRM secret; the five functions."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, TABLE_NAME, stream=True)
        sqs = boto3.client("sqs", region_name=REGION)
        bus = BusObserver(boto3.client("events", region_name=REGION), sqs)
        queue_url = sqs.create_queue(QueueName="closedloop-writeback")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        secret = {
            "hubspot": {
                "client_secret": CLIENT_SECRET,
                "private_app_token": TOKEN,
                "api_base_url": hubspot.api.base_url,
                "writeback": {"enabled": True},
            }
        }
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="closedloop-crm", SecretString=json.dumps(secret)
        )["ARN"]
        for key, value in {
            "WEBHOOK_SECRET_ARN": secret_arn,
            "EVENT_BUS_NAME": EVENT_BUS,
            "WRITEBACK_QUEUE_URL": queue_url,
        }.items():
            monkeypatch.setenv(key, value)
        yield SimpleNamespace(
            sqs=sqs,
            bus=bus,
            queue_url=queue_url,
            queue_arn=queue_arn,
            stream=StreamDrain(dynamodb, streams_client(), TABLE_NAME),
            store=DynamoStore(TABLE_NAME, client=dynamodb),
            collect=load_function("collect"),
            identify=load_function("identify"),
            crm_webhook=load_function("crm_webhook"),
            publish=load_function("publish"),
            worker=load_function("crm_writeback"),
        )


def run_async_side(loop: SimpleNamespace) -> list[dict[str, Any]]:
    """What AWS runs after the requests: the stream to the publish function, the queue to the worker.
    Returns the events the bus delivered."""
    reply = loop.publish.handler(loop.stream.event(), LambdaContextStub(function_name="publish"))
    assert reply == {"batchItemFailures": []}
    while True:
        messages = loop.sqs.receive_message(QueueUrl=loop.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            break
        outcome = loop.worker.handler(
            sqs_event(messages, loop.queue_arn), LambdaContextStub(function_name="w")
        )
        assert outcome == {"batchItemFailures": []}
        for message in messages:
            loop.sqs.delete_message(QueueUrl=loop.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return loop.bus.received()


def hubspot_webhook(loop: SimpleNamespace, events: list[dict[str, Any]]) -> tuple[int, Any]:
    """A signed (v3) HubSpot subscription batch to /webhooks/hubspot."""
    body = json.dumps(events).encode()
    timestamp = str(int(time.time() * 1000))
    message = b"POST" + b"https://api.acme.test/webhooks/hubspot" + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(CLIENT_SECRET.encode(), message, hashlib.sha256).digest()).decode()
    event = api_event(
        "POST",
        "/webhooks/hubspot",
        body=body,
        content_type="application/json",
        headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp},
    )
    status, _, reply = invoke(loop.crm_webhook, event)
    return status, reply


def subscription(event_id: int, kind: str, deal_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": int(deal_id),
        "changeSource": "CRM_UI",
        **extra,
    }


def test_a_linkedin_ad_click_becomes_the_crm_contacts_source_and_the_won_deal_is_on_the_bus(loop, hubspot):
    ts = int(time.time() * 1000)
    # 1. A visitor arrives from a LinkedIn ad, and comes back a day later by searching the brand
    for event_id, url, referrer, at in (
        ("evt-li-0001", AD_CLICK, "https://www.linkedin.com/", ts - 26 * 3_600_000),
        ("evt-li-0002", f"{SITE_ORIGIN}/pricing", "", ts - 26 * 3_600_000 + 60_000),
        ("evt-gg-0003", f"{SITE_ORIGIN}/", "https://www.google.com/", ts - 2 * 3_600_000),
    ):
        body = {"event_id": event_id, "visitor_id": VISITOR, "url": url, "referrer": referrer, "ts": at}
        status, _, reply = invoke(loop.collect, api_event("POST", "/collect", body=body))
        assert (status, reply["accepted"]) == (200, 1)

    # 2. ... and fills the demo form (HubSpot's own form integration creates the contact)
    form = {"email": "Ada@Example.com", "visitor_id": VISITOR, "form_id": "demo-request", "company": "Acme"}
    status, _, reply = invoke(
        loop.identify, api_event("POST", "/identify", body=form, headers={"user-agent": BROWSER_UA})
    )
    assert status == 200 and reply["status"] == "created"
    hubspot.add_contact(ADA, "501")
    delivered = run_async_side(loop)

    # The CRM contact now says where the lead came from
    contact = hubspot.contacts[ADA]
    assert contact["closedloop_original_source"] == f"Paid Social / linkedin / cpc / {CAMPAIGN}"
    assert contact["closedloop_original_channel"] == "Paid Social"
    assert contact["closedloop_latest_source"] == "Organic Search / google / organic"
    assert contact["closedloop_sessions"] == "2"
    assert contact["closedloop_landing_page"] == "www.acme.test/webinar"
    assert contact["closedloop_lead_id"] == lead_id_for(ADA)
    [identified] = [e for e in delivered if e["detail-type"] == LeadIdentified.detail_type]
    assert identified["detail"]["original_source"]["campaign"] == CAMPAIGN

    # 3. Sales creates the deal and wins it in HubSpot; HubSpot calls the webhook
    hubspot.add_deal(
        "9001",
        ["501"],
        dealstage="appointmentscheduled",
        amount="24000",
        deal_currency_code="EUR",
        pipeline="default",
        createdate="2026-11-23T09:00:00.000Z",
    )
    assert hubspot_webhook(loop, [subscription(1, "deal.creation", "9001")])[0] == 200
    hubspot.deals["9001"].update(dealstage="closedwon", hs_is_closed_won="true")
    assert (
        hubspot_webhook(
            loop,
            [
                subscription(
                    2, "deal.propertyChange", "9001", propertyName="dealstage", propertyValue="closedwon"
                )
            ],
        )[0]
        == 200
    )
    delivered = run_async_side(loop)

    # The bus carries the won deal with its credited channels
    [won] = [e for e in delivered if e["detail-type"] == DealWon.detail_type]
    detail = DealWon.model_validate(won["detail"])
    assert (detail.crm, detail.deal_id, detail.amount, detail.currency) == ("hubspot", "9001", "24000", "EUR")
    assert detail.lead_ids == (lead_id_for(ADA),)
    assert detail.original_source is not None and detail.original_source.campaign == CAMPAIGN
    assert set(detail.credited_channels) == {"Paid Social", "Organic Search"}
    assert sum(c.credit for c in detail.attribution.channels) == pytest.approx(1.0)
    assert sum(c.revenue_credit for c in detail.attribution.channels) == pytest.approx(24000.0)
    stages = [
        e["detail"]["lifecycle"] for e in delivered if e["detail-type"] == "closedloop.deal.stage_changed.v1"
    ]
    assert stages == ["open", "won"]

    # The deal itself got the lead's source properties
    assert hubspot.deals["9001"]["closedloop_original_source"] == f"Paid Social / linkedin / cpc / {CAMPAIGN}"

    # 4. HubSpot echoes our property writes as deal.propertyChange: ignored, nothing stored, no loop
    patches_before = len(hubspot.patches())
    status, reply = hubspot_webhook(
        loop,
        [
            subscription(
                3,
                "deal.propertyChange",
                "9001",
                propertyName="closedloop_last_sync",
                propertyValue="2026-11-23T10:00:00.000Z",
                changeSource="INTEGRATION",
            )
        ],
    )
    assert (status, reply) == (200, {"received": 0, "duplicates": 0})
    assert run_async_side(loop) == []
    assert len(hubspot.patches()) == patches_before
    assert [e.event_id for e in loop.store.deal_events("hubspot", "9001")] == ["1", "2"]
