"""CRM write-back under moto and local HubSpot, Pipedrive and Salesforce APIs: the stream queues the
lead, the worker writes its source fields, skips what did not change, waits out rate limits without
counting them (holding the CRM back for the rest of the batch), backs off on 5xx, and gives up into
the DLQ."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
from tests.unit.writeback.fakes import (
    HUBSPOT_RATE_LIMITED,
    PIPEDRIVE_SERVER_ERROR,
    PIPEDRIVE_TOKEN_BUDGET_SPENT,
    SALESFORCE_REQUEST_LIMIT_EXCEEDED,
    SALESFORCE_UNAVAILABLE,
    FakeHubSpot,
    FakePipedrive,
    FakeSalesforce,
)

REGION = "us-east-1"
ADA = "ada@example.com"
GRACE = "grace@example.com"
LAPTOP = "LaptopVisitorAAAAAAAAAA"
DESKTOP = "DesktopVisitorBBBBBBBBB"
LINKEDIN_AD = f"{SITE_ORIGIN}/guide?utm_source=linkedin&utm_medium=cpc&utm_campaign=spring-launch"
HUBSPOT_SECRET = "hubspot-client-secret-6f1e"
PD_SOURCE_KEY = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"
PD_SESSIONS_KEY = "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
SF_SOURCE_FIELD = "Closedloop_Original_Source__c"


@pytest.fixture
def crm_server() -> Iterator[FakeCrmApi]:
    """One local server; each CRM's fake answers on its own paths."""
    api = FakeCrmApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture
def hubspot(crm_server: FakeCrmApi) -> FakeHubSpot:
    return FakeHubSpot(crm_server)


@pytest.fixture
def pipedrive(crm_server: FakeCrmApi) -> FakePipedrive:
    return FakePipedrive(crm_server)


@pytest.fixture
def salesforce(crm_server: FakeCrmApi) -> FakeSalesforce:
    return FakeSalesforce(crm_server)


@pytest.fixture
def writeback_crms() -> tuple[str, ...]:
    """The CRMs with write-back on in the secret (a test parametrizes it for the others)."""
    return ("hubspot",)


def crm_secret(crms: tuple[str, ...], base_url: str) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "hubspot": {
            "client_secret": HUBSPOT_SECRET,
            "private_app_token": "pat-na1-test",
            "api_base_url": base_url,
            "writeback": {},
        },
        "pipedrive": {
            "username": "closedloop",
            "password": "pipedrive-password-1",
            "api_token": "pd-api-token-test",
            "api_base_url": f"{base_url}/api/v2",
            "writeback": {"person_fields": {"original_source": PD_SOURCE_KEY, "sessions": PD_SESSIONS_KEY}},
        },
        "salesforce": {
            "url_token": "salesforce-url-token-0001",
            "organization_id": "00D5e000000KQ2eEAG",
            "writeback": {
                "instance_url": base_url,
                "client_id": "3MVG9-consumer-key",
                "client_secret": "sf-secret",
                "fields": {"original_source": SF_SOURCE_FIELD},
            },
        },
    }
    return {crm: sections[crm] for crm in crms}


@pytest.fixture
def aws(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, crm_server: FakeCrmApi, writeback_crms: tuple[str, ...]
) -> Iterator[SimpleNamespace]:
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
        secret = crm_secret(writeback_crms, crm_server.base_url)
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


@pytest.fixture
def requeues(functions: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], int]]:
    """The messages the worker re-queues for a rate limit, with their delay (and they are really sent)."""
    seen: list[tuple[dict[str, Any], int]] = []
    real = functions.worker.queue.requeue

    def requeue(message: Any, delay_seconds: int) -> None:
        seen.append((json.loads(message.body()), delay_seconds))
        real(message, delay_seconds)

    monkeypatch.setattr(functions.worker.queue, "requeue", requeue)
    return seen


@dataclass
class Clock:
    """Time as the worker, the CRM writers and moto's SQS see it: real time, moved on by ``advance``."""

    offset_ms: int = 0

    def advance(self, seconds: float) -> None:
        self.offset_ms += round(seconds * 1000)


@pytest.fixture
def clock(functions: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Lets a test wait out a delay or a rate limit (moto delays and hides messages in real time)."""
    import moto.sqs.models as moto_sqs

    from closedloop import clock as closedloop_clock

    moved = Clock()
    real_ms, real_sqs_ms, real_sqs_s = closedloop_clock.now_ms, moto_sqs.unix_time_millis, moto_sqs.unix_time
    monkeypatch.setattr(closedloop_clock, "now_ms", lambda: real_ms() + moved.offset_ms)
    monkeypatch.setattr(moto_sqs, "unix_time_millis", lambda dt=None: real_sqs_ms(dt) + moved.offset_ms)
    monkeypatch.setattr(moto_sqs, "unix_time", lambda dt=None: real_sqs_s(dt) + moved.offset_ms / 1000)
    return moved


def visit(
    functions: SimpleNamespace, event_id: str, url: str, *, minutes_ago: int = 5, visitor: str = LAPTOP
) -> None:
    body = {
        "event_id": event_id,
        "visitor_id": visitor,
        "url": url,
        "ts": int(time.time() * 1000) - minutes_ago * 60_000,
    }
    assert invoke(functions.collect, api_event("POST", "/collect", body=body))[2]["accepted"] == 1


def fill_form(functions: SimpleNamespace, email: str = ADA, visitor: str = LAPTOP) -> None:
    body = {
        "email": email,
        "visitor_id": visitor,
        "form_id": "demo-request",
        "submission_id": f"sub-{visitor}",
    }
    assert invoke(functions.identify, api_event("POST", "/identify", body=body))[0] == 200


def two_leads(functions: SimpleNamespace, aws: SimpleNamespace) -> None:
    """Ada and Grace came from the LinkedIn ad and filled the form: one message each, in one batch."""
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions, ADA, LAPTOP)
    visit(functions, "evt-00000002", LINKEDIN_AD, visitor=DESKTOP)
    fill_form(functions, GRACE, DESKTOP)
    relay(functions, aws)


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


def test_a_429_holds_hubspot_back_for_the_rest_of_the_batch_and_requeues_without_counting(
    functions, aws, hubspot, delays, requeues, clock
):
    hubspot.add_contact(ADA, "501")
    hubspot.add_contact(GRACE, "502")
    hubspot.failures.append(Reply(429, HUBSPOT_RATE_LIMITED, {"Retry-After": "7"}))
    two_leads(functions, aws)

    # When HubSpot answers the first lead of the batch with a 429
    batch = receive(aws)
    assert len(batch) == 2
    assert work(functions, aws, batch) == {"batchItemFailures": []}

    # Then the second lead does not call HubSpot, and both are re-queued for after the wait: new
    # messages (the received ones are deleted), no failure, no back-off on the received ones
    assert len(hubspot.patches()) == 1
    assert [delay for _, delay in requeues] == [8, 8]  # Retry-After plus a second
    assert delays == []
    assert receive(aws) == []  # delayed

    clock.advance(8)
    again = receive(aws)
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in again] == ["1", "1"]
    assert work(functions, aws, again) == {"batchItemFailures": []}
    assert hubspot.contacts[ADA]["closedloop_original_channel"] == "Paid Social"
    assert hubspot.contacts[GRACE]["closedloop_original_channel"] == "Paid Social"


def test_sustained_rate_limits_never_send_valid_work_to_the_dead_letter_queue(
    functions, aws, hubspot, requeues, clock
):
    hubspot.add_contact(ADA)
    hubspot.failures.extend(
        Reply(429, HUBSPOT_RATE_LIMITED, {"Retry-After": "10"}) for _ in range(2 * MAX_RECEIVES)
    )
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    for _ in range(2 * MAX_RECEIVES):
        [message] = receive(aws)
        assert work(functions, aws, [message]) == {"batchItemFailures": []}
        clock.advance(11)

    [message] = receive(aws)
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert work(functions, aws, [message]) == {"batchItemFailures": []}
    assert hubspot.contacts[ADA]["closedloop_original_channel"] == "Paid Social"
    assert aws.sqs.receive_message(QueueUrl=aws.dlq_url).get("Messages", []) == []


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


# -- Pipedrive ------------------------------------------------------------------------------------------


ON_PIPEDRIVE = pytest.mark.parametrize("writeback_crms", [("pipedrive",)])
ON_SALESFORCE = pytest.mark.parametrize("writeback_crms", [("salesforce",)])


@ON_PIPEDRIVE
def test_pipedrive_gets_the_source_on_the_person_found_by_email(functions, aws, pipedrive):
    pipedrive.add_person(42, ADA)
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}

    assert pipedrive.persons["42"]["custom_fields"] == {
        PD_SOURCE_KEY: "Paid Social / linkedin / cpc / spring-launch",
        PD_SESSIONS_KEY: 1,
    }
    assert aws.store.get_sync_state(lead_id_for(ADA), "pipedrive#contact").record_id == "42"


@ON_PIPEDRIVE
def test_a_spent_pipedrive_window_holds_pipedrive_back_without_a_429_or_a_failure(
    functions, aws, crm_server, requeues, delays, clock
):
    # Pipedrive's answers say what is left of the window: the search and the update of one person
    pipedrive = FakePipedrive(crm_server, budget=2, window_seconds=2)
    pipedrive.add_person(42, ADA)
    pipedrive.add_person(43, GRACE)
    two_leads(functions, aws)

    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}

    # The first lead used the window (its update's answer said 0 left); the second made no call and
    # waits for the window's reset (2 s, and a second)
    assert [s.method for s in crm_server.seen] == ["GET", "PATCH"]
    assert [delay for _, delay in requeues] == [3]
    assert delays == []

    clock.advance(3)
    pipedrive.reset_window()
    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert all(p["custom_fields"][PD_SESSIONS_KEY] == 1 for p in pipedrive.persons.values())
    assert len(crm_server.seen) == 4  # a search and an update per person: Pipedrive never refused one


@ON_PIPEDRIVE
def test_a_spent_pipedrive_day_budget_waits_for_its_reset_without_calling_or_counting(
    functions, aws, pipedrive, crm_server, requeues, clock
):
    pipedrive.add_person(42, ADA)
    pipedrive.failures.append(PIPEDRIVE_TOKEN_BUDGET_SPENT)  # 429, x-ratelimit-reset: 3600
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    [(body, delay)] = requeues
    assert delay == 900  # SQS's longest delay; the copy knows the rest
    calls = len(crm_server.seen)

    for _ in range(4):  # every 15 minutes the copy comes back and is relayed, without a call
        clock.advance(900)
        assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}
    assert len(crm_server.seen) == calls
    *relays, last = [delay for _, delay in requeues]
    assert relays == [900, 900, 900, 900] and last <= 2  # then what is left of the hour, and a second

    clock.advance(2)
    [message] = receive(aws)
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert work(functions, aws, [message]) == {"batchItemFailures": []}
    assert pipedrive.persons["42"]["custom_fields"][PD_SOURCE_KEY].startswith("Paid Social")


@ON_PIPEDRIVE
def test_a_pipedrive_server_error_backs_off_and_counts(functions, aws, pipedrive, delays, requeues, clock):
    pipedrive.add_person(42, ADA)
    pipedrive.failures.append(PIPEDRIVE_SERVER_ERROR)
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    [message] = receive(aws)
    assert work(functions, aws, [message])["batchItemFailures"]
    [delay] = delays
    assert 15 <= delay <= 30 and requeues == []

    clock.advance(delay)
    [message] = receive(aws)
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"  # a real failure is counted
    assert work(functions, aws, [message]) == {"batchItemFailures": []}
    assert pipedrive.persons["42"]["custom_fields"][PD_SESSIONS_KEY] == 1


# -- Salesforce -----------------------------------------------------------------------------------------


@ON_SALESFORCE
def test_salesforce_gets_the_source_on_the_contact_found_by_email(functions, aws, salesforce):
    salesforce.records["Contact"]["003xx000004TmiQ"] = {"Email": ADA}
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}

    assert salesforce.records["Contact"]["003xx000004TmiQ"][SF_SOURCE_FIELD] == (
        "Paid Social / linkedin / cpc / spring-launch"
    )
    state = aws.store.get_sync_state(lead_id_for(ADA), "salesforce#contact")
    assert state.record_id == "Contact/003xx000004TmiQ"


@ON_SALESFORCE
def test_salesforce_server_errors_back_off_then_the_message_goes_to_the_dead_letter_queue(
    functions, aws, salesforce, delays, requeues, clock
):
    salesforce.records["Contact"]["003A"] = {"Email": ADA}
    salesforce.failures.extend(SALESFORCE_UNAVAILABLE for _ in range(MAX_RECEIVES))
    visit(functions, "evt-00000001", LINKEDIN_AD)
    fill_form(functions)
    relay(functions, aws)

    for receives in range(1, MAX_RECEIVES + 1):
        [message] = receive(aws)
        assert message["Attributes"]["ApproximateReceiveCount"] == str(receives)
        assert work(functions, aws, [message])["batchItemFailures"]
        clock.advance(delays[-1])

    assert requeues == []
    assert receive(aws) == []
    dead = aws.sqs.receive_message(QueueUrl=aws.dlq_url).get("Messages", [])
    assert [json.loads(m["Body"])["lead_id"] for m in dead] == [lead_id_for(ADA)]
    assert SF_SOURCE_FIELD not in salesforce.records["Contact"]["003A"]


@ON_SALESFORCE
def test_a_spent_salesforce_allowance_is_waited_out_an_hour_without_counting(
    functions, aws, salesforce, crm_server, requeues, delays, clock
):
    salesforce.records["Contact"]["003A"] = {"Email": ADA}
    salesforce.records["Contact"]["003B"] = {"Email": GRACE}
    salesforce.failures.append(SALESFORCE_REQUEST_LIMIT_EXCEEDED)  # 403, the org's daily allowance
    two_leads(functions, aws)

    assert work(functions, aws, receive(aws)) == {"batchItemFailures": []}

    # One refusal: the other lead made no call; both wait an hour (relayed every 15 minutes)
    assert [s.method for s in crm_server.seen] == ["POST", "GET"]  # the token, the refused query
    assert [delay for _, delay in requeues] == [900, 900]
    assert delays == []

    clock.advance(3601)
    while messages := receive(aws):
        assert work(functions, aws, messages) == {"batchItemFailures": []}
    assert salesforce.records["Contact"]["003A"][SF_SOURCE_FIELD].startswith("Paid Social")
    assert salesforce.records["Contact"]["003B"][SF_SOURCE_FIELD].startswith("Paid Social")
    assert aws.sqs.receive_message(QueueUrl=aws.dlq_url).get("Messages", []) == []


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
        def fetch_deals(self, deal_ids: Any, *, deadline: float | None = None) -> Any:
            raise AssertionError("our own property change must not trigger a lookup")

        def fetch_contact_emails(self, contact_ids: Any, *, deadline: float | None = None) -> Any:
            raise AssertionError("no lookup")

    from tests.integration.test_crm_webhook_handler import hubspot_headers

    signed = request.model_copy(update={"headers": {k.lower(): v for k, v in hubspot_headers(body).items()}})
    assert parse_hubspot(signed, config, client=NoCalls()) == []
