"""Privacy promises over a full run under moto: no secret, personal data or IP address in any log line
(with the most talkative settings: DEBUG, every event logged), no IP address stored, and the retention
of page views and touches (DynamoDB TTL)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.logging.filters import SuppressFilter

from closedloop.local.crm_senders import DealChange, build_delivery
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.local.stack import LOCAL_CRM_SECRETS
from closedloop.observability import logger
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.support import api_event, invoke

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
SECRETS = [value for section in LOCAL_CRM_SECRETS.values() for value in section.values() if len(value) > 16]
VISITOR = "GraceVisitorAAAAAAAAAA"
NOW = int(time.time() * 1000)


@pytest.fixture
def functions(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="closedloop-webhooks", SecretString=json.dumps(LOCAL_CRM_SECRETS)
    )
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    monkeypatch.setenv("RETENTION_DAYS", "30")
    # The most talkative settings an operator could turn on while debugging.
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    return {
        name: load_function(name) for name in ("collect", "identify", "crm_webhook", "attribute", "erase")
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


def full_run(functions: dict[str, ModuleType]) -> None:
    """A visit (API and pixel), a form, a deal from every CRM, the attribute job, then an erasure."""
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
    # A delivery with a wrong secret is refused, and logged as refused
    bad = build_delivery(change, {**LOCAL_CRM_SECRETS, "generic": {"signing_secret": "w" * 32}}, "x")
    assert (
        invoke(functions["crm_webhook"], request("POST", bad.path, body=bad.body, headers=bad.headers))[0]
        == 401
    )
    context = LambdaContextStub(function_name="attribute")
    assert functions["attribute"].handler({"mode": "full"}, context)["deals"] == 4
    assert functions["erase"].handler({"email": PERSON["email"]}, context)["erased"]["found"]


def test_no_secret_personal_data_or_ip_address_reaches_any_log_line(functions, every_log_line):
    full_run(functions)

    logs = every_log_line.getvalue()
    assert "webhook stored" in logs and "webhook refused" in logs and "person erased" in logs
    assert '"rawPath":"/webhooks/salesforce"' in logs  # events were logged, as asked: summarised
    leaks = [v for v in (*PERSON.values(), PERSON["email"].lower(), VISITOR_IP, FORWARDED_IP) if v in logs]
    leaks += [f"secret #{i}" for i, secret in enumerate(SECRETS) if secret in logs]
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
