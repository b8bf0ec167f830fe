"""CRM write-back under moto and a local HubSpot: the stream queues the lead, the worker writes its
source fields, skips what did not change, backs off on 429 and 5xx, and gives up into the DLQ."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from closedloop.crm.config import HubSpotConfig
from closedloop.crm.hubspot import parse_hubspot
from closedloop.crm.models import WebhookRequest
from closedloop.identity import lead_id_for
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.store import DynamoStore
from closedloop.store.schema import create_table
from closedloop.writeback.queue import MAX_RECEIVES
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.event_support import StreamDrain, sqs_event, streams_client
from tests.support import api_event, invoke
from tests.unit.crm.conftest import FakeCrmApi, Reply
from tests.unit.writeback.fakes import HUBSPOT_RATE_LIMITED, FakeHubSpot

REGION = "us-east-1"
ADA = "ada@example.com"
LAPTOP = "LaptopVisitorAAAAAAAAAA"
LINKEDIN_AD = f"{SITE_ORIGIN}/guide?utm_source=linkedin&utm_medium=cpc&utm_campaign=spring-launch"
HUBSPOT_SECRET = "hubspot-client-secret-6f1e"


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    api = FakeCrmApi()
    api.start()
    yield FakeHubSpot(api)
    api.stop()


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch, hubspot: FakeHubSpot) -> Iterator[SimpleNamespace]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, TABLE_NAME, stream=True)
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="writeback-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName="writeback",
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
                )
            },
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        secret = {
            "hubspot": {
                "client_secret": HUBSPOT_SECRET,
                "private_app_token": "pat-na1-test",
                "api_base_url": hubspot.api.base_url,
                "writeback": {},
            }
        }
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="closedloop-crm", SecretString=json.dumps(secret)
        )["ARN"]
        for key, value in {"WEBHOOK_SECRET_ARN": secret_arn, "WRITEBACK_QUEUE_URL": url}.items():
            monkeypatch.setenv(key, value)
        yield SimpleNamespace(
            dynamodb=dynamodb,
            sqs=sqs,
            url=url,
            arn=arn,
            dlq_url=dlq_url,
            stream=StreamDrain(dynamodb, streams_client(), TABLE_NAME),
            store=DynamoStore(TABLE_NAME, client=dynamodb),
        )


@pytest.fixture
def functions(aws: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(
        collect=load_function("collect"),
        identify=load_function("identify"),
        publish=load_function("publish"),
        worker=load_function("crm_writeback"),
    )


@pytest.fixture
def delays(functions: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The back-off the worker sets on each failed message (and it is really set on the queue)."""
    seen: list[int] = []
    real = functions.worker.queue.postpone

    def postpone(receipt_handle: str, seconds: int) -> None:
        seen.append(seconds)
        real(receipt_handle, seconds)

    monkeypatch.setattr(functions.worker.queue, "postpone", postpone)
    return seen


def visit(functions: SimpleNamespace, event_id: str, url: str, *, minutes_ago: int = 5) -> None:
    body = {
        "event_id": event_id,
        "visitor_id": LAPTOP,
        "url": url,
        "ts": int(time.time() * 1000) - minutes_ago * 60_000,
    }
    assert invoke(functions.collect, api_event("POST", "/collect", body=body))[2]["accepted"] == 1


def fill_form(functions: SimpleNamespace) -> None:
    body = {"email": ADA, "visitor_id": LAPTOP, "form_id": "demo-request", "submission_id": "sub-0001"}
    assert invoke(functions.identify, api_event("POST", "/identify", body=body))[0] == 200


def relay(functions: SimpleNamespace, aws: SimpleNamespace) -> None:
    reply = functions.publish.handler(aws.stream.event(), LambdaContextStub(function_name="publish"))
    assert reply == {"batchItemFailures": []}


def receive(aws: SimpleNamespace) -> list[dict[str, Any]]:
    reply = aws.sqs.receive_message(
        QueueUrl=aws.url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount", "SentTimestamp"]
    )
    return list(reply.get("Messages", []))


def work(functions: SimpleNamespace, aws: SimpleNamespace, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Run the worker on received messages; delete those it did not report, as Lambda's SQS poller does."""
    reply: dict[str, Any] = functions.worker.handler(
        sqs_event(messages, aws.arn), LambdaContextStub(function_name="w")
    )
    failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            aws.sqs.delete_message(QueueUrl=aws.url, ReceiptHandle=message["ReceiptHandle"])
    return reply


def make_visible(aws: SimpleNamespace, message: dict[str, Any]) -> None:
    """The back-off has passed (moto keeps real time)."""
    aws.sqs.change_message_visibility(
        QueueUrl=aws.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )


def test_the_contact_gets_the_leads_source_once_and_again_only_when_it_changes(functions, aws, hubspot):
    hubspot.add_contact(ADA, "501")
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    messages = receive(aws)
    assert [json.loads(m["Body"]) for m in messages] == [{"lead_id": lead_id_for(ADA), "v": 1}]
    assert work(functions, aws, messages) == {"batchItemFailures": []}

    contact = hubspot.contacts[ADA]
    assert contact["closedloop_original_source"] == "Paid Social / linkedin / cpc / spring-launch"
    assert contact["closedloop_lead_id"] == lead_id_for(ADA)
    assert contact["closedloop_last_sync"].endswith("Z")
    assert len(hubspot.patches()) == 1
    assert aws.store.get_sync_state(lead_id_for(ADA), "hubspot#contact") is not None

    # The same change delivered again (SQS delivers at least once): nothing is written
    aws.sqs.send_message(QueueUrl=aws.url, MessageBody=json.dumps({"lead_id": lead_id_for(ADA), "v": 1}))
    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert len(hubspot.patches()) == 1

    # A new session changes the latest source: written again
    visit(functions, "evt-00000002", f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email", minutes_ago=0)
    relay(functions, aws)
    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert len(hubspot.patches()) == 2
    assert hubspot.contacts[ADA]["closedloop_latest_source"] == "Email / newsletter / email"
    assert (
        hubspot.contacts[ADA]["closedloop_original_source"] == "Paid Social / linkedin / cpc / spring-launch"
    )


def test_a_429_waits_as_long_as_hubspot_asks_then_writes(functions, aws, hubspot, delays):
    hubspot.add_contact(ADA)
    hubspot.failures.append(Reply(429, HUBSPOT_RATE_LIMITED, {"Retry-After": "7"}))
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    [message] = receive(aws)
    assert work(functions, aws, [message]) == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]}]
    }
    assert delays == [8]  # Retry-After plus a second
    assert receive(aws) == []  # invisible during the back-off

    make_visible(aws, message)
    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert hubspot.contacts[ADA]["closedloop_original_channel"] == "Paid Social"


def test_server_errors_back_off_exponentially_then_the_message_goes_to_the_dead_letter_queue(
    functions, aws, hubspot, delays
):
    hubspot.add_contact(ADA)
    hubspot.failures.extend(
        Reply(503, {"status": "error", "message": "unavailable"}) for _ in range(MAX_RECEIVES)
    )
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    for _ in range(MAX_RECEIVES):
        [message] = receive(aws)
        assert work(functions, aws, [message])["batchItemFailures"]
        make_visible(aws, message)

    # Each back-off is within [half, all] of 30 s x 2^(receives-1), capped at 15 minutes
    for receives, delay in enumerate(delays, start=1):
        ceiling = min(900, 30 * 2 ** (receives - 1))
        assert ceiling / 2 - 1 <= delay <= ceiling, (receives, delay)
    # The next receive finds it over maxReceiveCount: SQS moves it to the dead-letter queue
    assert receive(aws) == []
    dead = aws.sqs.receive_message(QueueUrl=aws.dlq_url).get("Messages", [])
    assert [json.loads(m["Body"])["lead_id"] for m in dead] == [lead_id_for(ADA)]


def test_a_contact_not_in_hubspot_yet_is_retried_a_few_times_then_left_for_the_next_change(
    functions, aws, hubspot, delays
):
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    [message] = receive(aws)
    assert work(functions, aws, [message])["batchItemFailures"]  # HubSpot's form sync may be slower

    hubspot.add_contact(ADA)
    make_visible(aws, message)
    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert hubspot.contacts[ADA]["closedloop_original_channel"] == "Paid Social"


def test_without_write_back_settings_nothing_is_called(functions, aws, hubspot, monkeypatch):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(
        Name="no-writeback",
        SecretString=json.dumps({"hubspot": {"client_secret": HUBSPOT_SECRET, "private_app_token": "pat"}}),
    )["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    worker = load_function("crm_writeback")
    hubspot.add_contact(ADA)
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    messages = receive(aws)
    assert worker.handler(sqs_event(messages, aws.arn), LambdaContextStub(function_name="w")) == {
        "batchItemFailures": []
    }
    assert hubspot.api.seen == []


# -- no write-back loop --------------------------------------------------------------------------------


def test_hubspot_property_changes_caused_by_our_own_write_are_ignored_by_the_webhook():
    body = json.dumps(
        [
            {
                "eventId": 77,
                "subscriptionType": "deal.propertyChange",
                "objectId": 9001,
                "propertyName": "closedloop_latest_source",
                "propertyValue": "Email / newsletter / email",
                "occurredAt": int(time.time() * 1000),
                "changeSource": "INTEGRATION",
            }
        ]
    ).encode()
    request = WebhookRequest(
        method="POST", url="https://api.acme.test/webhooks/hubspot", body=body, headers={}
    )
    config = HubSpotConfig.model_validate({"client_secret": HUBSPOT_SECRET, "private_app_token": "pat"})

    class NoCalls:
        def fetch_deal(self, deal_id: str) -> Any:
            raise AssertionError("our own property change must not trigger a lookup")

        def fetch_contact_emails(self, contact_ids: Any) -> Any:
            raise AssertionError("no lookup")

    from tests.integration.test_crm_webhook_handler import hubspot_headers

    signed = request.model_copy(update={"headers": {k.lower(): v for k, v in hubspot_headers(body).items()}})
    assert parse_hubspot(signed, config, client=NoCalls()) == []
