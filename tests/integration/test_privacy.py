"""Privacy promises over a full run under moto: no secret, personal data or IP address in any log line
(with the most talkative settings: DEBUG, every event logged), no IP address stored, and the retention
of page views and touches (DynamoDB TTL). The run covers the outward loop too: the table's stream
through the publish function (events with the e-mail, write-back messages) and the CRM write-back
worker against local HubSpot, Pipedrive and Salesforce APIs (found by e-mail), one of which fails."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.logging.filters import SuppressFilter

from closedloop.changes import STREAM_FILTERS
from closedloop.local.crm_senders import DealChange, build_delivery
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.local.stack import LOCAL_CRM_SECRETS
from closedloop.observability import logger
from closedloop.store.schema import STREAM_VIEW_TYPE
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.event_support import StreamDrain, matches, sqs_event, streams_client
from tests.support import api_event, invoke
from tests.unit.crm.conftest import FakeCrmApi, Reply
from tests.unit.writeback.fakes import FakeHubSpot, FakePipedrive, FakeSalesforce

BUCKET = "closedloop-analytics-test"
VISITOR_IP, FORWARDED_IP = "203.0.113.7", "198.51.100.23"
PERSON = {
    "email": "Grace.Hopper@Navy.example.com",
    "first_name": "Grace",
    "last_name": "Hopperlastname",
    "phone": "+1 202 555 0147",
    "company": "Cobol Compilers Inc",
    "nickname": "amazing-grace-custom",
}
# The write-back credentials, added to the local stack's webhook secret (tokens are secrets too).
WRITEBACK_SECRETS = {
    "hubspot": {"private_app_token": "pat-na1-privacy-test-token-0001"},
    "pipedrive": {"api_token": "pipedrive-privacy-test-api-token-0001"},
    "salesforce": {"client_secret": "salesforce-privacy-test-consumer-secret-0001"},
}
SECRETS = [
    value
    for sections in (LOCAL_CRM_SECRETS, WRITEBACK_SECRETS)
    for section in sections.values()
    for value in section.values()
    if len(value) > 16
]
# A pseudonym, as the tracker makes them (the leak check below looks for the person's name everywhere).
VISITOR = "PrivacyVisitorAAAAAAAA"
NOW = int(time.time() * 1000)
PD_SOURCE_KEY = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"


@pytest.fixture
def crms() -> Iterator[SimpleNamespace]:
    """Local HubSpot, Pipedrive and Salesforce APIs that know the person (by e-mail) and the deal; HubSpot
    and Pipedrive fail the first write (503), then Pipedrive rate-limits the second (429)."""
    api = FakeCrmApi()
    api.start()
    email = PERSON["email"].lower()
    hubspot, pipedrive = FakeHubSpot(api), FakePipedrive(api)
    salesforce = FakeSalesforce(api, client_secret=WRITEBACK_SECRETS["salesforce"]["client_secret"])
    hubspot.add_contact(email, "501")
    hubspot.add_deal("77", ["501"])
    hubspot.failures.append(Reply(503, {"status": "error", "message": "internal error"}))
    pipedrive.add_person(42, email)
    pipedrive.failures.extend(
        [
            Reply(503, {"success": False, "error": "Service unavailable", "errorCode": 503}),
            Reply(
                429,
                {"success": False, "error": "Rate limit has been exceeded", "errorCode": 429},
                {"Retry-After": "0", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"},
            ),
        ]
    )
    salesforce.records["Contact"]["003xx000004TmiQ"] = {"Email": email}
    yield SimpleNamespace(api=api, hubspot=hubspot, pipedrive=pipedrive, salesforce=salesforce)
    api.stop()


def secret_document(base_url: str) -> dict[str, Any]:
    """The local stack's webhook secret, with write-back on for HubSpot, Pipedrive and Salesforce."""
    return {
        **LOCAL_CRM_SECRETS,
        "hubspot": {
            **LOCAL_CRM_SECRETS["hubspot"],
            **WRITEBACK_SECRETS["hubspot"],
            "api_base_url": base_url,
            "writeback": {},
        },
        "pipedrive": {
            **LOCAL_CRM_SECRETS["pipedrive"],
            **WRITEBACK_SECRETS["pipedrive"],
            "api_base_url": f"{base_url}/api/v2",
            "writeback": {"person_fields": {"original_source": PD_SOURCE_KEY}},
        },
        "salesforce": {
            **LOCAL_CRM_SECRETS["salesforce"],
            "writeback": {
                "instance_url": base_url,
                "client_id": "3MVG9-consumer-key",
                **WRITEBACK_SECRETS["salesforce"],
                "fields": {"original_source": "Closedloop_Original_Source__c"},
            },
        },
    }


@pytest.fixture
def functions(dynamodb: Any, monkeypatch: pytest.MonkeyPatch, crms: SimpleNamespace) -> dict[str, ModuleType]:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="closedloop-webhooks", SecretString=json.dumps(secret_document(crms.api.base_url))
    )
    # The outward loop: the table's stream, the write-back queue and the event bus
    dynamodb.update_table(
        TableName=TABLE_NAME,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
    )
    queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="writeback")["QueueUrl"]
    boto3.client("events", region_name="us-east-1").create_event_bus(Name="closedloop-privacy")
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    monkeypatch.setenv("RETENTION_DAYS", "30")
    monkeypatch.setenv("WRITEBACK_QUEUE_URL", queue_url)
    monkeypatch.setenv("EVENT_BUS_NAME", "closedloop-privacy")
    # The most talkative settings an operator could turn on while debugging.
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    return {
        name: load_function(name)
        for name in ("collect", "identify", "crm_webhook", "attribute", "erase", "publish", "crm_writeback")
    }


@pytest.fixture
def every_log_line(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What CloudWatch would receive: the functions' logger (at DEBUG), and any other logger at its
    default level. (``POWERTOOLS_DEBUG``, Powertools' own internals at DEBUG, is not covered.)"""
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    other = logging.StreamHandler(buffer)
    # As on Lambda: Powertools filters its own records out of the root logger's (runtime's) handler.
    other.addFilter(SuppressFilter(logger.service))
    root = logging.getLogger()
    root.addHandler(other)
    try:
        yield buffer
    finally:
        root.removeHandler(other)


def request(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    event = api_event(
        method, path, headers={"x-forwarded-for": FORWARDED_IP, **kwargs.pop("headers", {})}, **kwargs
    )
    event["requestContext"]["http"]["sourceIp"] = VISITOR_IP
    return event


def outward_loop(functions: dict[str, ModuleType]) -> None:
    """The table's stream through the publish function (as its filters select it), then the write-back
    worker on the queue until it is empty, as Lambda's SQS poller runs it (failed ones come back)."""
    context = LambdaContextStub(function_name="outward")
    stream = StreamDrain(boto3.client("dynamodb", region_name="us-east-1"), streams_client(), TABLE_NAME)
    records = [r for r in stream.records() if any(matches(p, r) for p in STREAM_FILTERS)]
    assert functions["publish"].handler({"Records": records}, context) == {"batchItemFailures": []}
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = functions["crm_writeback"].settings.writeback_queue_url
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for _ in range(10):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not messages:
            attributes = ["ApproximateNumberOfMessagesDelayed"]
            delayed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attributes)["Attributes"]
            if delayed["ApproximateNumberOfMessagesDelayed"] == "0":
                return
            time.sleep(0.5)  # a re-queued message's delay (Retry-After 0, and a second)
            continue
        reply = functions["crm_writeback"].handler(sqs_event(messages, arn), context)
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] in failed:  # its back-off has passed
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError("the write-back queue did not drain")


def full_run(functions: dict[str, ModuleType]) -> None:
    """A visit (API and pixel), a form, a deal from every CRM, events and the CRM write-back (one CRM
    failing, one rate-limiting), the attribute job, then an erasure."""
    page = f"{SITE_ORIGIN}/pricing?utm_source=google&utm_medium=cpc&email={PERSON['email']}"
    body = {"event_id": "evt-grace-001", "visitor_id": VISITOR, "url": page, "ts": NOW - 60_000}
    assert invoke(functions["collect"], request("POST", "/collect", body=body))[0] == 200
    query = {"v": VISITOR, "e": "evt-grace-002", "u": f"{SITE_ORIGIN}/docs"}
    assert invoke(functions["collect"], request("GET", "/collect.gif", query=query))[0] == 200
    form = urlencode({**PERSON, "closedloop_visitor_id": VISITOR, "redirect": "/site/thanks.html"})
    headers = {"referer": f"{SITE_ORIGIN}/contact", "cookie": f"_cl_vid={VISITOR}"}
    status, _, _ = invoke(
        functions["identify"],
        request(
            "POST", "/identify", body=form, content_type="application/x-www-form-urlencoded", headers=headers
        ),
    )
    assert status == 303
    for crm in LOCAL_CRM_SECRETS:
        change = DealChange(crm, "77", PERSON["email"], "won", 2, 5000, "USD", NOW - 3_600_000, NOW - 60_000)
        delivery = build_delivery(change, LOCAL_CRM_SECRETS, "api.acme.test")
        path, _, query_string = delivery.path.partition("?")
        event = request("POST", path, body=delivery.body, headers=delivery.headers)
        event["rawQueryString"] = query_string
        assert invoke(functions["crm_webhook"], event)[0] == 200, crm
    outward_loop(functions)
    # A delivery with a wrong secret is refused, and logged as refused
    bad = build_delivery(change, {**LOCAL_CRM_SECRETS, "generic": {"signing_secret": "w" * 32}}, "x")
    assert (
        invoke(functions["crm_webhook"], request("POST", bad.path, body=bad.body, headers=bad.headers))[0]
        == 401
    )
    context = LambdaContextStub(function_name="attribute")
    assert functions["attribute"].handler({"mode": "full"}, context)["deals"] == 4
    assert functions["erase"].handler({"email": PERSON["email"]}, context)["erased"]["found"]


def test_no_secret_personal_data_or_ip_address_reaches_any_log_line(functions, crms, every_log_line):
    full_run(functions)

    logs = every_log_line.getvalue()
    assert "webhook stored" in logs and "webhook refused" in logs and "person erased" in logs
    # The outward loop ran, a CRM failed and one rate-limited, and every CRM got the source in the end
    assert "write-back failed" in logs and "write-back rate-limited" in logs and "write-back done" in logs
    email = PERSON["email"].lower()
    assert crms.hubspot.contacts[email]["closedloop_original_channel"] == "Paid Search"
    assert crms.pipedrive.persons["42"]["custom_fields"][PD_SOURCE_KEY].startswith("Paid Search")
    assert crms.salesforce.records["Contact"]["003xx000004TmiQ"]["Closedloop_Original_Source__c"]
    assert '"rawPath":"/webhooks/salesforce"' in logs  # events were logged, as asked: summarised
    assert '"kinds":{"aws:dynamodb:INSERT"' in logs  # stream batches too: counts, never their images
    leaks = [v for v in (*PERSON.values(), PERSON["email"].lower(), VISITOR_IP, FORWARDED_IP) if v in logs]
    leaks += [f"secret #{i}" for i, secret in enumerate(SECRETS) if secret in logs]
    leaks += ["Salesforce access token"] if "00Dxx!token" in logs else []
    assert leaks == []


def test_no_ip_address_is_stored_anywhere(functions, dynamodb):
    full_run(functions)

    table = json.dumps(dynamodb.scan(TableName=TABLE_NAME)["Items"])
    s3 = boto3.client("s3", region_name="us-east-1")
    lake = b"".join(
        s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    )
    for ip in (VISITOR_IP, FORWARDED_IP):
        assert ip not in table and ip.encode() not in lake


def test_page_views_and_touches_expire_after_the_retention_and_nothing_else_does(functions, dynamodb):
    # Given a retention of 30 days (RETENTION_DAYS), and TTL on the table's expires_at
    ttl = dynamodb.describe_time_to_live(TableName=TABLE_NAME)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

    # When a visitor comes and fills a form
    before = time.time()
    body = {
        "event_id": "evt-grace-001",
        "visitor_id": VISITOR,
        "url": f"{SITE_ORIGIN}/?utm_source=x&utm_medium=y",
    }
    invoke(functions["collect"], request("POST", "/collect", body=body))
    invoke(
        functions["identify"],
        request("POST", "/identify", body={"email": "a@example.com", "visitor_id": VISITOR}),
    )

    # Then the page view, the touch and the running session expire 30 days later (epoch seconds);
    # the lead and its links are kept until erased
    items = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    expiring = {i["sk"]["S"][:2]: int(i["expires_at"]["N"]) for i in items if "expires_at" in i}
    assert set(expiring) == {"E#", "T#", "ST"}
    for expires in expiring.values():
        assert before + 30 * 86_400 - 5 <= expires <= time.time() + 30 * 86_400 + 5


def test_a_retention_of_zero_keeps_page_views(dynamodb, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "0")
    collect = load_function("collect")
    body = {"event_id": "evt-grace-001", "visitor_id": VISITOR, "url": f"{SITE_ORIGIN}/"}
    invoke(collect, request("POST", "/collect", body=body))

    assert not [i for i in dynamodb.scan(TableName=TABLE_NAME)["Items"] if "expires_at" in i]


def test_the_formatter_redacts_emails_and_ip_addresses_a_careless_log_call_would_leak(every_log_line):
    logger.info("careless", note=f"contact {PERSON['email']} from {VISITOR_IP} or 2001:db8::7", n=3)

    line = every_log_line.getvalue()
    assert PERSON["email"] not in line and VISITOR_IP not in line and "2001:db8::7" not in line
    assert line.count("[redacted]") == 3
