"""Pipedrive webhooks v2: HTTP Basic authentication as Pipedrive sends it, the meta/data/previous body,
and the person e-mail lookup against a local server answering in Pipedrive's API shapes."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import (
    CrmApiRetryableError,
    CrmName,
    DealLifecycle,
    PipedriveClient,
    PipedriveConfig,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_pipedrive,
)
from tests.unit.crm.conftest import FakeCrmApi, Reply

USERNAME = "closedloop"
PASSWORD = "correct-horse-battery-staple"
API_TOKEN = "0123456789abcdef0123456789abcdef01234567"
URL = "https://api.acme.test/webhooks/pipedrive"


def basic(username: str, password: str) -> str:
    """The Authorization header an HTTP Basic client (Pipedrive's webhook sender) builds."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def config(**overrides: Any) -> PipedriveConfig:
    return PipedriveConfig.model_validate(
        {
            "username": USERNAME,
            "password": PASSWORD,
            "api_token": API_TOKEN,
            "company_domain": "acme",
            **overrides,
        }
    )


def webhook(
    *,
    action: str = "change",
    entity: str = "deal",
    data: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    meta_id: str = "f3d8a7e0-5b1c-4c55-9b4a-1f2e3d4c5b6a",
) -> dict[str, Any]:
    """A webhooks v2 body: meta, data (the deal after the change) and previous (changed fields only)."""
    return {
        "data": data,
        "previous": previous,
        "meta": {
            "action": action,
            "company_id": "12882925",
            "correlation_id": "a8c3b0c2-1111-4222-8333-444455556666",
            "entity_id": "42",
            "entity": entity,
            "id": meta_id,
            "is_bulk_edit": False,
            "timestamp": "2026-11-19T08:00:01.123Z",
            "type": "general",
            "user_id": "18487521",
            "version": "2.0",
            "webhook_id": "99",
            "webhook_owner_id": "18487521",
            "change_source": "app",
            "permitted_user_ids": ["18487521"],
            "attempt": 1,
            "host": "acme.pipedrive.com",
        },
    }


def deal(**fields: Any) -> dict[str, Any]:
    return {
        "id": 42,
        "title": "Acme renewal",
        "value": 4800.5,
        "currency": "usd",
        "status": "won",
        "stage_id": 5,
        "pipeline_id": 1,
        "person_id": 1001,
        "org_id": 7,
        "owner_id": 18487521,
        "add_time": "2026-10-01T09:00:00Z",
        "update_time": "2026-11-19T08:00:00Z",
        "won_time": "2026-11-19T08:00:00Z",
        "lost_time": None,
        "close_time": "2026-11-19T08:00:00Z",
        "expected_close_date": "2026-11-30",
        "custom_fields": {},
        **fields,
    }


def request(body: object, authorization: str | None = None) -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = authorization if authorization is not None else basic(USERNAME, PASSWORD)
    return WebhookRequest(url=URL, headers=headers, body=json.dumps(body).encode())


def serve_person(api: FakeCrmApi, *, shape: str = "v2") -> None:
    """``GET /persons/1001`` as API v2 (``emails``) or v1 (``email``) answers it."""
    entries = [
        {"value": "ada@work.example", "primary": False, "label": "work"},
        {"value": "Ada@Example.com", "primary": True, "label": "home"},
    ]
    key = "emails" if shape == "v2" else "email"

    def person(seen: Any) -> Reply:
        if seen.headers.get("x-api-token") != API_TOKEN:
            return Reply(401, {"success": False, "error": "unauthorized access", "errorCode": 401})
        return Reply(200, {"success": True, "data": {"id": 1001, "name": "Ada Lovelace", key: entries}})

    api.route("GET", "/persons/1001", person)


def client_for(api: FakeCrmApi, timeout: float = 3.0) -> PipedriveClient:
    return PipedriveClient(API_TOKEN, base_url=api.base_url, timeout=timeout)


@pytest.mark.parametrize("shape", ["v2", "v1"])
def test_a_won_deal_becomes_an_event_with_the_persons_emails(crm_api: FakeCrmApi, shape: str) -> None:
    serve_person(crm_api, shape=shape)
    body = webhook(data=deal(), previous={"status": "open", "stage_id": 4})
    [event] = parse_pipedrive(request(body), config(), client=client_for(crm_api))
    assert event.crm is CrmName.PIPEDRIVE
    assert (event.deal_id, event.event_id) == ("42", "f3d8a7e0-5b1c-4c55-9b4a-1f2e3d4c5b6a")
    assert event.lifecycle is DealLifecycle.WON
    assert (event.pipeline, event.stage) == ("1", "5")
    assert (event.amount, event.currency) == (Decimal("4800.5"), "USD")
    assert event.close_date == date(2026, 11, 19)
    assert event.contact_emails == ("ada@example.com", "ada@work.example")  # primary first
    assert event.version == event.occurred_at == int(datetime(2026, 11, 19, 8, tzinfo=UTC).timestamp() * 1000)
    [lookup] = crm_api.seen
    assert lookup.path == "/persons/1001"
    assert "api_token" not in lookup.query  # the token travels in a header, not in logged URLs


@pytest.mark.parametrize(
    ("data", "previous", "lifecycle"),
    [
        ({"status": "open"}, {"stage_id": 4}, DealLifecycle.OPEN),
        ({"status": "open"}, {"status": "won"}, DealLifecycle.REOPENED),
        ({"status": "open"}, {"status": "lost"}, DealLifecycle.REOPENED),
        ({"status": "lost"}, {"status": "open"}, DealLifecycle.LOST),
        ({"status": "won"}, None, DealLifecycle.WON),
    ],
)
def test_status_and_previous_status_give_the_lifecycle(
    crm_api: FakeCrmApi, data: dict[str, Any], previous: dict[str, Any] | None, lifecycle: DealLifecycle
) -> None:
    serve_person(crm_api)
    body = webhook(data=deal(**data), previous=previous)
    [event] = parse_pipedrive(request(body), config(), client=client_for(crm_api))
    assert event.lifecycle is lifecycle


def test_a_deleted_deal_needs_no_lookup() -> None:
    body = webhook(action="delete", data=None, previous=deal())
    [event] = parse_pipedrive(request(body), config(), client=None)
    assert (event.deal_id, event.lifecycle) == ("42", DealLifecycle.DELETED)


def test_other_objects_are_ignored() -> None:
    assert parse_pipedrive(request(webhook(entity="person", data={"id": 1})), config(), client=None) == []


def test_a_redelivery_has_the_same_dedupe_key(crm_api: FakeCrmApi) -> None:
    serve_person(crm_api)
    body = webhook(data=deal())
    first = parse_pipedrive(request(body), config(), client=client_for(crm_api))
    body["meta"]["attempt"] = 2
    again = parse_pipedrive(request(body), config(), client=client_for(crm_api))
    assert first[0].dedupe_key == again[0].dedupe_key


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        basic(USERNAME, "wrong-password"),
        basic("someone-else", PASSWORD),
        basic(USERNAME, PASSWORD)[:-4] + "%%%%",
        "Bearer " + API_TOKEN,
        "Basic " + base64.b64encode(f"{USERNAME}{PASSWORD}".encode()).decode(),  # no colon
    ],
    ids=["missing", "wrong password", "wrong user", "not base64", "not basic", "no colon"],
)
def test_wrong_or_missing_basic_credentials_are_refused(crm_api: FakeCrmApi, authorization: str) -> None:
    with pytest.raises(WebhookAuthError):
        parse_pipedrive(request(webhook(data=deal()), authorization), config(), client=client_for(crm_api))
    assert crm_api.seen == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"current": {"id": 42}, "previous": None, "meta": {"v": 1, "object": "deal"}}, "v1"),
        ([1, 2], "JSON object"),
        ({"data": {}}, "no meta"),
        ({**webhook(data=deal()), "meta": {"entity": "deal", "action": "change"}}, "no deal id"),
    ],
)
def test_bodies_that_are_not_webhooks_v2_are_payload_errors(body: object, problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem):
        parse_pipedrive(request(body), config(), client=None)


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (429, {"success": False, "error": "Request over limit", "errorCode": 429}),
        (500, {"success": False, "error": "Internal server error", "errorCode": 500}),
    ],
)
def test_a_rate_limited_or_failing_api_is_retryable(crm_api: FakeCrmApi, status: int, payload: Any) -> None:
    crm_api.route("GET", "/persons/1001", Reply(status, payload))
    with pytest.raises(CrmApiRetryableError):
        parse_pipedrive(request(webhook(data=deal())), config(), client=client_for(crm_api))


def test_a_deleted_person_leaves_the_deal_without_emails(crm_api: FakeCrmApi) -> None:
    crm_api.route(
        "GET", "/persons/1001", Reply(404, {"success": False, "error": "Person not found", "data": None})
    )
    [event] = parse_pipedrive(request(webhook(data=deal())), config(), client=client_for(crm_api))
    assert event.contact_emails == ()


def test_a_slow_api_fails_fast_well_inside_pipedrives_10_seconds(crm_api: FakeCrmApi) -> None:
    crm_api.route("GET", "/persons/1001", Reply(200, {"success": True, "data": {"id": 1001}}, delay=2.0))
    started = time.monotonic()
    with pytest.raises(CrmApiRetryableError, match="timed out"):
        parse_pipedrive(request(webhook(data=deal())), config(), client=client_for(crm_api, timeout=0.3))
    assert time.monotonic() - started < 1.5


def test_the_client_is_built_from_the_company_domain() -> None:
    assert config().resolved_api_base_url == "https://acme.pipedrive.com/api/v2"
    assert (
        config(api_base_url="http://127.0.0.1:9/api/v1").resolved_api_base_url == "http://127.0.0.1:9/api/v1"
    )
    assert PipedriveClient.from_config(config(api_token=None)) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (webhook(data=deal(person_id=None, update_time=float("inf"))), "data.update_time"),
        (webhook(data=deal(person_id=None, add_time=-1)), "data.add_time"),
        (webhook(data=deal(person_id=None, close_time=10**30)), "data.close_time"),
        (webhook(data=deal(person_id=None, value="1e999")), "amount"),
        (webhook(data=deal(person_id=None), meta_id="m" * 257), "event_id"),
        (webhook(action="delete", meta_id="m" * 257), "event_id"),
    ],
    ids=["infinite-update-time", "added-before-1970", "huge-close-time", "amount-1e999", "long-id", "delete"],
)
def test_values_no_deal_event_can_hold_are_payload_errors(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem) as raised:
        parse_pipedrive(request(body), config(), client=None)
    assert raised.value.status_code == 400
