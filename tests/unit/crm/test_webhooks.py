"""``parse_crm_webhook``: one entry point for ``/webhooks/{crm}``, and the HTTP status of each outcome."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from closedloop.crm import (
    CrmApiError,
    CrmName,
    CrmNotConfiguredError,
    CrmSecrets,
    UnknownCrmError,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_crm_webhook,
)
from tests.unit.crm.conftest import FakeCrmApi, Reply

NOW_S = int(time.time())
SECRETS = CrmSecrets.model_validate(
    {
        "hubspot": {"client_secret": "hs-secret", "private_app_token": "pat-1"},
        "salesforce": {"url_token": "sf-token-0123456789abcdef", "organization_id": "00D000000000062"},
        "pipedrive": {
            "username": "u",
            "password": "password-1",
            "api_token": "pd-1",
            "company_domain": "acme",
        },
        "generic": {"signing_secret": "generic-secret-0123456789"},
    }
)


def generic_request() -> WebhookRequest:
    body = json.dumps(
        {"event_id": "e1", "deal_id": "d1", "status": "open", "occurred_at": "2026-11-19T08:00:00Z"}
    ).encode()
    digest = hmac.new(b"generic-secret-0123456789", f"{NOW_S}.".encode() + body, hashlib.sha256).hexdigest()
    return WebhookRequest(
        url="https://api.acme.test/webhooks/generic",
        headers={"X-Closedloop-Signature": f"t={NOW_S},v1={digest}"},
        body=body,
    )


def test_each_crm_routes_to_its_adapter() -> None:
    [event] = parse_crm_webhook("Generic", generic_request(), SECRETS, now_ms=NOW_S * 1000)
    assert event.crm is CrmName.GENERIC
    with pytest.raises(WebhookAuthError):  # the generic request is not a valid Salesforce message
        parse_crm_webhook("salesforce", generic_request(), SECRETS)


@pytest.mark.parametrize(
    ("crm", "secrets", "error", "status"),
    [
        ("marketo", SECRETS, UnknownCrmError, 404),
        ("", SECRETS, UnknownCrmError, 404),
        (
            "hubspot",
            CrmSecrets.model_validate({"generic": {"signing_secret": "x" * 16}}),
            CrmNotConfiguredError,
            404,
        ),
    ],
)
def test_unknown_and_unconfigured_crms(
    crm: str, secrets: CrmSecrets, error: type[Exception], status: int
) -> None:
    with pytest.raises(error) as raised:
        parse_crm_webhook(crm, generic_request(), secrets)
    assert getattr(raised.value, "status_code", None) == status


def test_error_statuses_are_what_the_api_answers() -> None:
    assert WebhookAuthError("x").status_code == 401
    assert WebhookPayloadError("x").status_code == 400
    assert CrmApiError("x").status_code == 503


def test_the_clients_are_built_from_the_secret_when_not_injected(crm_api: FakeCrmApi) -> None:
    # Given a Pipedrive section whose API base URL is the local server
    secrets = CrmSecrets.model_validate(
        {
            "pipedrive": {
                "username": "u",
                "password": "password-1",
                "api_token": "pd-1",
                "api_base_url": crm_api.base_url,
            }
        }
    )
    crm_api.route(
        "GET",
        "/persons/7",
        Reply(200, {"success": True, "data": {"id": 7, "emails": [{"value": "a@b.io", "primary": True}]}}),
    )
    body = json.dumps(
        {
            "meta": {"action": "create", "entity": "deal", "entity_id": "1", "id": "m1", "version": "2.0"},
            "data": {"id": 1, "status": "open", "person_id": 7, "update_time": "2026-11-19T08:00:00Z"},
            "previous": None,
        }
    ).encode()
    request = WebhookRequest(
        url="https://api.acme.test/webhooks/pipedrive",
        headers={"Authorization": "Basic " + base64.b64encode(b"u:password-1").decode()},
        body=body,
    )
    [event] = parse_crm_webhook("pipedrive", request, secrets)
    assert event.contact_emails == ("a@b.io",)
    assert crm_api.seen[0].headers["x-api-token"] == "pd-1"
