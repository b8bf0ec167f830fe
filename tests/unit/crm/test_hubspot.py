"""HubSpot: signatures computed independently as HubSpot documents them, the batched webhook events, the
workflow webhook, and the CRM API lookups against a local server answering in HubSpot's shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import (
    CrmApiError,
    CrmApiRetryableError,
    CrmName,
    DealLifecycle,
    HubSpotClient,
    HubSpotConfig,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_hubspot,
    verify_hubspot_signature,
)
from tests.unit.crm.conftest import FakeCrmApi, Reply

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # the client secret of HubSpot's own examples
TOKEN = "pat-na1-00000000-0000-0000-0000-000000000000"
URL = "https://api.acme.test/webhooks/hubspot"
NOW_MS = 1_795_000_000_000
DEAL_ID = "5551"


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 steps: utf-8 of method + uri + body + timestamp, HMAC-SHA256, base64."""
    source = f"{method}{uri}{body.decode()}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def signed_request(
    body: bytes, *, url: str = URL, secret: str = SECRET, sent_ms: int = NOW_MS - 2_000
) -> WebhookRequest:
    timestamp = str(sent_ms)
    return WebhookRequest(
        method="POST",
        url=url,
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": v3_signature(secret, "POST", url, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
        },
        body=body,
    )


def config(**overrides: Any) -> HubSpotConfig:
    return HubSpotConfig.model_validate({"client_secret": SECRET, "private_app_token": TOKEN, **overrides})


# --- signatures -------------------------------------------------------------------------------------


def test_v1_signature_of_hubspots_documented_example_verifies() -> None:
    # Given the v1 example of HubSpot's docs, whose documented hash is below
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
        b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
    )
    documented = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert hashlib.sha256(SECRET.encode() + body).hexdigest() == documented
    request = WebhookRequest(
        url=URL, body=body, headers={"X-HubSpot-Signature": documented, "X-HubSpot-Signature-Version": "v1"}
    )
    # When / Then
    assert verify_hubspot_signature(request, SECRET) == "v1"


@pytest.mark.parametrize(
    ("method", "body", "documented"),
    [
        ("GET", b"", "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"),
        (
            "POST",
            b'{"example_field":"example_value"}',
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        ),
    ],
)
def test_v2_signatures_of_hubspots_documented_examples_verify(
    method: str, body: bytes, documented: str
) -> None:
    uri = "https://www.example.com/webhook_uri"
    assert hashlib.sha256(f"{SECRET}{method}{uri}".encode() + body).hexdigest() == documented
    request = WebhookRequest(
        method=method,
        url=uri,
        body=body,
        headers={"x-hubspot-signature": documented.upper(), "x-hubspot-signature-version": "v2"},
    )
    assert verify_hubspot_signature(request, SECRET) == "v2"


def test_v3_signature_verifies_and_header_names_are_case_insensitive() -> None:
    body = b'[{"eventId":1}]'
    stamp = str(NOW_MS - 60_000)
    request = WebhookRequest(
        url=URL,
        body=body,
        headers={
            "x-hubspot-signature-v3": v3_signature(SECRET, "POST", URL, body, stamp),
            "X-HUBSPOT-REQUEST-TIMESTAMP": stamp,
        },
    )
    assert verify_hubspot_signature(request, SECRET, now_ms=NOW_MS) == "v3"


@pytest.mark.parametrize(
    ("called_url", "signed_uri"),
    [
        # HubSpot's table: these encodings are decoded before signing; others (%20) stay encoded.
        (
            "https://api.acme.test/webhooks/hubspot?state=a%3Ab%2Cc%40d&x=%20",
            "https://api.acme.test/webhooks/hubspot?state=a:b,c@d&x=%20",
        ),
        (
            "https://api.acme.test/webhooks/hubspot?q=%21%24%27%28%29%2A%3B%2F%3F",
            "https://api.acme.test/webhooks/hubspot?q=!$'()*;/?",
        ),
    ],
)
def test_v3_signs_the_uri_with_the_documented_characters_decoded(called_url: str, signed_uri: str) -> None:
    body = b"[]"
    stamp = str(NOW_MS)
    headers = {
        "X-HubSpot-Signature-v3": v3_signature(SECRET, "POST", signed_uri, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }
    request = WebhookRequest(url=called_url, body=body, headers=headers)
    assert verify_hubspot_signature(request, SECRET, now_ms=NOW_MS) == "v3"


def _tampered(request: WebhookRequest, **changes: Any) -> WebhookRequest:
    return request.model_copy(update=changes)


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("wrong secret", lambda: signed_request(b"[]", secret="another-secret")),
        ("body changed", lambda: _tampered(signed_request(b"[]"), body=b"[ ]")),
        ("url changed", lambda: _tampered(signed_request(b"[]"), url=URL + "?x=1")),
        ("older than 5 minutes", lambda: signed_request(b"[]", sent_ms=NOW_MS - 300_001)),
        ("from the future", lambda: signed_request(b"[]", sent_ms=NOW_MS + 300_001)),
        ("no signature", lambda: WebhookRequest(url=URL, body=b"[]")),
        (
            "no timestamp",
            lambda: WebhookRequest(
                url=URL,
                body=b"[]",
                headers={"X-HubSpot-Signature-v3": signed_request(b"[]").headers["x-hubspot-signature-v3"]},
            ),
        ),
        (
            "v1 with an unknown version",
            lambda: WebhookRequest(
                url=URL,
                body=b"[]",
                headers={
                    "X-HubSpot-Signature": hashlib.sha256(SECRET.encode() + b"[]").hexdigest(),
                    "X-HubSpot-Signature-Version": "v9",
                },
            ),
        ),
    ],
)
def test_bad_or_stale_signatures_are_refused(case: str, make: Any) -> None:
    with pytest.raises(WebhookAuthError):
        verify_hubspot_signature(make(), SECRET, now_ms=NOW_MS)


def test_a_wrong_v3_signature_is_not_rescued_by_a_valid_v1() -> None:
    body = b"[]"
    request = WebhookRequest(
        url=URL,
        body=body,
        headers={
            "X-HubSpot-Signature-v3": "bm90IGEgc2lnbmF0dXJl",
            "X-HubSpot-Request-Timestamp": str(NOW_MS),
            "X-HubSpot-Signature": hashlib.sha256(SECRET.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1",
        },
    )
    with pytest.raises(WebhookAuthError, match="v3"):
        verify_hubspot_signature(request, SECRET, now_ms=NOW_MS)


def test_legacy_signatures_can_be_switched_off() -> None:
    body = b"[]"
    request = WebhookRequest(
        url=URL,
        body=body,
        headers={
            "X-HubSpot-Signature": hashlib.sha256(SECRET.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1",
        },
    )
    assert verify_hubspot_signature(request, SECRET, accept_legacy=True) == "v1"
    with pytest.raises(WebhookAuthError):
        verify_hubspot_signature(request, SECRET, accept_legacy=False)


def test_a_bad_signature_stops_before_any_lookup(crm_api: FakeCrmApi) -> None:
    body = json.dumps([deal_event("deal.creation", 1)]).encode()
    request = _tampered(signed_request(body), body=body + b" ")
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    with pytest.raises(WebhookAuthError):
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS)
    assert crm_api.seen == []


# --- the batch and the lookups ----------------------------------------------------------------------


def deal_event(subscription_type: str, event_id: int, **fields: Any) -> dict[str, Any]:
    """One event in the documented shape of HubSpot's webhook batches."""
    return {
        "objectId": int(DEAL_ID),
        "changeSource": "CRM_UI",
        "eventId": event_id,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": 1_794_999_000_000 + event_id,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        **fields,
    }


def serve_deal(api: FakeCrmApi, *, stage: str = "closedwon", amount: str = "12000.50", **extra: str) -> None:
    """The deal and its contacts as HubSpot's CRM API v3 returns them."""
    properties = {
        "amount": amount,
        "closedate": "2026-12-01T10:00:00Z",
        "createdate": "2026-10-01T09:00:00.000Z",
        "dealstage": stage,
        "deal_currency_code": "eur",
        "hs_lastmodifieddate": "2026-11-19T08:00:00.000Z",
        "hs_object_id": DEAL_ID,
        "pipeline": "default",
        **extra,
    }

    def deal(seen: Any) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"status": "error", "message": "Authentication credentials not found."})
        return Reply(
            200,
            {
                "id": DEAL_ID,
                "properties": properties,
                "createdAt": "2026-10-01T09:00:00.000Z",
                "updatedAt": "2026-11-19T08:00:00.000Z",
                "archived": False,
                "associations": {
                    "contacts": {
                        "results": [
                            {"id": "201", "type": "deal_to_contact"},
                            {"id": "202", "type": "deal_to_contact"},
                        ]
                    }
                },
            },
        )

    def contacts(seen: Any) -> Reply:
        emails = {"201": "Ada@Example.com", "202": "grace@example.org"}
        return Reply(
            200,
            {
                "status": "COMPLETE",
                "results": [
                    {
                        "id": item["id"],
                        "properties": {"email": emails[item["id"]], "hs_object_id": item["id"]},
                        "createdAt": "2026-09-01T00:00:00Z",
                        "updatedAt": "2026-09-01T00:00:00Z",
                        "archived": False,
                    }
                    for item in seen.body["inputs"]
                ],
                "startedAt": "2026-11-19T08:00:01Z",
                "completedAt": "2026-11-19T08:00:01Z",
            },
        )

    api.route("GET", f"/crm/v3/objects/deals/{DEAL_ID}", deal)
    api.route("POST", "/crm/v3/objects/contacts/batch/read", contacts)


def test_a_batch_becomes_deal_events_read_through_the_crm_api(crm_api: FakeCrmApi) -> None:
    # Given HubSpot's documented batch (a contact event) plus deal events, and the deal in the API
    serve_deal(crm_api)
    batch = [
        {
            "objectId": 1246965,
            "propertyName": "lifecyclestage",
            "propertyValue": "subscriber",
            "changeSource": "ACADEMY",
            "eventId": 3816279340,
            "subscriptionId": 25,
            "portalId": 33,
            "appId": 1160452,
            "occurredAt": 1462216307945,
            "subscriptionType": "contact.propertyChange",
            "attemptNumber": 0,
        },
        deal_event("deal.creation", 101),
        deal_event("deal.propertyChange", 102, propertyName="dealstage", propertyValue="closedwon"),
    ]
    request = signed_request(json.dumps(batch).encode())
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)

    # When
    events = parse_hubspot(request, config(), client=client, now_ms=NOW_MS)

    # Then the contact event is left out and the two deal events carry the deal as the API has it
    assert [e.event_id for e in events] == ["101", "102"]
    won = events[1]
    assert won.crm is CrmName.HUBSPOT
    assert won.deal_id == DEAL_ID
    assert won.lifecycle is DealLifecycle.WON
    assert won.stage == "closedwon"
    assert won.pipeline == "default"
    assert won.amount == Decimal("12000.50")
    assert won.currency == "EUR"
    assert won.contact_emails == ("ada@example.com", "grace@example.org")
    assert won.close_date == date(2026, 12, 1)
    assert won.occurred_at == batch[2]["occurredAt"]
    # the version is the deal's last modification, later than the event
    assert won.version > won.occurred_at
    # one lookup per deal per batch, authenticated with the private-app token
    deal_calls = [s for s in crm_api.seen if s.path.startswith("/crm/v3/objects/deals/")]
    assert len(deal_calls) == 1
    assert set(deal_calls[0].query["properties"][0].split(",")) >= {"dealstage", "amount", "closedate"}
    assert deal_calls[0].query["associations"] == ["contacts"]


def test_the_same_event_delivered_twice_has_the_same_dedupe_key(crm_api: FakeCrmApi) -> None:
    serve_deal(crm_api)
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    first = deal_event("deal.propertyChange", 7, propertyName="amount", propertyValue="12000.50")
    retry = {**first, "attemptNumber": 3}
    [original] = parse_hubspot(
        signed_request(json.dumps([first]).encode()), config(), client=client, now_ms=NOW_MS
    )
    [replayed] = parse_hubspot(
        signed_request(json.dumps([retry]).encode()), config(), client=client, now_ms=NOW_MS
    )
    assert original.dedupe_key == replayed.dedupe_key == "hubspot#7"


@pytest.mark.parametrize(
    ("properties", "rules", "lifecycle"),
    [
        ({"stage": "closedwon"}, {}, DealLifecycle.WON),
        ({"stage": "closedlost"}, {}, DealLifecycle.LOST),
        ({"stage": "appointmentscheduled"}, {}, DealLifecycle.OPEN),
        # a custom pipeline: numeric stage ids, known through the configured rules ...
        ({"stage": "87654321"}, {"won_stages": ["87654321"]}, DealLifecycle.WON),
        # ... or through HubSpot's calculated flags
        ({"stage": "12345", "hs_is_closed_won": "false", "hs_is_closed": "true"}, {}, DealLifecycle.LOST),
        ({"stage": "12345", "hs_is_closed_won": "true", "hs_is_closed": "true"}, {}, DealLifecycle.WON),
    ],
)
def test_stages_map_to_lifecycles(
    crm_api: FakeCrmApi, properties: dict[str, str], rules: dict[str, Any], lifecycle: DealLifecycle
) -> None:
    serve_deal(crm_api, **properties)
    request = signed_request(
        json.dumps([deal_event("deal.propertyChange", 1, propertyName="dealstage")]).encode()
    )
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    [event] = parse_hubspot(request, config(**rules), client=client, now_ms=NOW_MS)
    assert event.lifecycle is lifecycle


def test_deletions_need_no_lookup_and_merges_delete_the_merged_deals(crm_api: FakeCrmApi) -> None:
    serve_deal(crm_api, stage="qualifiedtobuy")
    batch = [
        deal_event("deal.deletion", 11, objectId=999),
        deal_event("deal.merge", 12, mergedObjectIds=[int(DEAL_ID), 777]),
        # the newer webhooks format names the object type instead
        deal_event("object.deletion", 13, objectId=998, objectTypeId="0-3"),
        deal_event("object.deletion", 14, objectId=997, objectTypeId="0-1"),  # a contact
    ]
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    events = parse_hubspot(signed_request(json.dumps(batch).encode()), config(), client=client, now_ms=NOW_MS)
    assert [(e.deal_id, e.lifecycle) for e in events] == [
        ("999", DealLifecycle.DELETED),
        ("777", DealLifecycle.DELETED),
        (DEAL_ID, DealLifecycle.OPEN),
        ("998", DealLifecycle.DELETED),
    ]
    assert len({e.dedupe_key for e in events}) == len(events)


def test_a_deal_deleted_before_the_lookup_is_left_out(crm_api: FakeCrmApi) -> None:
    crm_api.route(
        "GET",
        f"/crm/v3/objects/deals/{DEAL_ID}",
        Reply(
            404,
            {
                "status": "error",
                "message": "Object not found.  objectId are usually numeric.",
                "correlationId": "3a9b1b0c-0000-4000-8000-000000000000",
                "context": {"id": [DEAL_ID]},
                "category": "OBJECT_NOT_FOUND",
            },
        ),
    )
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    assert parse_hubspot(request, config(), client=client, now_ms=NOW_MS) == []


@pytest.mark.parametrize(
    ("status", "payload", "headers"),
    [
        (
            429,
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "c033cdaa-0000-4000-8000-000000000000",
                "policyName": "SECONDLY",
            },
            {"Retry-After": "1"},
        ),
        (502, {"status": "error", "message": "Bad gateway"}, {}),
    ],
)
def test_a_rate_limited_or_failing_api_is_retryable(
    crm_api: FakeCrmApi, status: int, payload: dict[str, Any], headers: dict[str, str]
) -> None:
    crm_api.route("GET", f"/crm/v3/objects/deals/{DEAL_ID}", Reply(status, payload, headers))
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    with pytest.raises(CrmApiRetryableError) as raised:
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS)
    assert raised.value.status == status
    assert raised.value.status_code == 503
    assert TOKEN not in str(raised.value)


def test_a_refused_token_is_an_api_error_that_does_not_leak_it(crm_api: FakeCrmApi) -> None:
    serve_deal(crm_api)
    client = HubSpotClient("pat-wrong", base_url=crm_api.base_url)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    with pytest.raises(CrmApiError) as raised:
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS)
    assert not isinstance(raised.value, CrmApiRetryableError)
    assert raised.value.status == 401
    assert "pat-wrong" not in str(raised.value)


def test_deal_subscriptions_without_a_token_are_a_configuration_error() -> None:
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    with pytest.raises(CrmApiError, match="private_app_token"):
        parse_hubspot(request, config(private_app_token=None), client=None, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not valid JSON"),
        (b"42", "array of events"),
        (
            json.dumps([{"eventId": 1, "subscriptionType": "deal.creation", "occurredAt": 1}]).encode(),
            "objectId",
        ),
        (json.dumps(["x"]).encode(), "not an object"),
    ],
)
def test_unreadable_bodies_are_payload_errors_naming_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem):
        parse_hubspot(signed_request(body), config(), client=None, now_ms=NOW_MS)


# --- workflow "Send a webhook" ------------------------------------------------------------------------


def test_a_workflow_webhook_with_the_deals_properties_needs_only_the_contact_lookup(
    crm_api: FakeCrmApi,
) -> None:
    # Given a deal-based workflow's call: the deal as the legacy deals API returns it
    serve_deal(crm_api)
    body = json.dumps(
        {
            "portalId": 62515,
            "dealId": int(DEAL_ID),
            "isDeleted": False,
            "associations": {"associatedVids": [201], "associatedCompanyIds": [], "associatedDealIds": []},
            "properties": {
                "dealstage": {"value": "closedlost", "timestamp": 1794999000000, "source": "CRM_UI"},
                "amount": {"value": "900", "timestamp": 1794999000000, "source": "CRM_UI"},
                "deal_currency_code": {"value": "USD", "timestamp": 1794999000000, "source": "CRM_UI"},
                "hs_lastmodifieddate": {"value": "1794999000500", "timestamp": 1794999000500},
            },
        }
    ).encode()
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)

    # When
    [event] = parse_hubspot(signed_request(body), config(), client=client, now_ms=NOW_MS)

    # Then
    assert (event.deal_id, event.lifecycle, event.amount, event.currency) == (
        DEAL_ID,
        DealLifecycle.LOST,
        Decimal("900"),
        "USD",
    )
    assert event.contact_emails == ("ada@example.com",)
    assert event.version == event.occurred_at == 1794999000500
    assert [s.path for s in crm_api.seen] == ["/crm/v3/objects/contacts/batch/read"]
    # a retry of the same call has the same body, hence the same dedupe key
    [again] = parse_hubspot(signed_request(body, sent_ms=NOW_MS), config(), client=client, now_ms=NOW_MS)
    assert again.dedupe_key == event.dedupe_key


def test_a_workflow_webhook_with_a_custom_flat_body_and_email_needs_no_lookup() -> None:
    body = json.dumps(
        {"hs_object_id": DEAL_ID, "dealstage": "closedwon", "amount": "50", "email": "Ada@Example.com"}
    ).encode()
    [event] = parse_hubspot(signed_request(body), config(default_currency="gbp"), client=None, now_ms=NOW_MS)
    assert (event.lifecycle, event.amount, event.currency, event.contact_emails) == (
        DealLifecycle.WON,
        Decimal("50"),
        "GBP",
        ("ada@example.com",),
    )


def test_a_workflow_webhook_without_a_deal_id_is_a_payload_error() -> None:
    with pytest.raises(WebhookPayloadError, match="deal id"):
        parse_hubspot(signed_request(b'{"dealstage": "closedwon"}'), config(), client=None, now_ms=NOW_MS)


def test_behind_a_proxy_the_configured_webhook_url_is_what_is_verified() -> None:
    # Given HubSpot called the public URL, but the request reached us under an internal one
    public = "https://hooks.acme.test/webhooks/hubspot/"
    body = b'{"hs_object_id": "1", "dealstage": "closedwon"}'
    arrived = signed_request(body, url=public).model_copy(
        update={"url": "https://internal.acme.test/hubspot"}
    )
    # When / Then: only the configured URL verifies
    with pytest.raises(WebhookAuthError):
        parse_hubspot(arrived, config(), client=None, now_ms=NOW_MS)
    [event] = parse_hubspot(arrived, config(webhook_url=public), client=None, now_ms=NOW_MS)
    assert event.lifecycle is DealLifecycle.WON


def test_association_changes_reread_the_deal_whichever_end_it_is(crm_api: FakeCrmApi) -> None:
    # Given the two events HubSpot sends when a contact is associated with a deal (no objectId)
    serve_deal(crm_api)
    batch = [
        {
            "eventId": 21,
            "subscriptionId": 26,
            "portalId": 33,
            "appId": 1160452,
            "occurredAt": 1_794_999_000_021,
            "subscriptionType": subscription_type,
            "attemptNumber": 0,
            "changeSource": "USER",
            "associationType": association_type,
            "fromObjectId": from_id,
            "toObjectId": to_id,
            "associationRemoved": False,
            "isPrimaryAssociation": False,
        }
        for subscription_type, association_type, from_id, to_id in [
            ("deal.associationChange", "DEAL_TO_CONTACT", int(DEAL_ID), 201),
            ("contact.associationChange", "CONTACT_TO_DEAL", 201, int(DEAL_ID)),
            ("contact.associationChange", "CONTACT_TO_COMPANY", 201, 9),
        ]
    ]
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    # When
    events = parse_hubspot(signed_request(json.dumps(batch).encode()), config(), client=client, now_ms=NOW_MS)
    # Then both deal ends give the deal, with its contacts re-read; the company association is ignored
    assert [e.deal_id for e in events] == [DEAL_ID, DEAL_ID]
    assert events[0].contact_emails == ("ada@example.com", "grace@example.org")


# --- values no deal event can hold: a 400, never a crash or a write DynamoDB refuses ------------------


def workflow(**properties: Any) -> bytes:
    return json.dumps({"objectId": 1, "dealstage": "closedwon", **properties}).encode()


def deletion(**fields: Any) -> bytes:
    event = {"eventId": 1, "subscriptionType": "deal.deletion", "objectId": 1, "occurredAt": NOW_MS}
    return json.dumps([{**event, **fields}]).encode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # JSON's Infinity and NaN, which Python's json module reads as floats
        (workflow(hs_lastmodifieddate=float("inf")), "hs_lastmodifieddate is not a finite number"),
        (workflow(hs_lastmodifieddate=float("nan")), "hs_lastmodifieddate is not a finite number"),
        (workflow(hs_lastmodifieddate="9" * 5000), "hs_lastmodifieddate is not a readable number"),
        (workflow(closedate=1e300), "closedate is before 1970 or after 2100"),
        (workflow(createdate="1955-01-01T00:00:00Z"), "createdate is before 1970 or after 2100"),
        (workflow(dealstage="s" * 257), "stage"),
        (workflow(amount="1e999"), "amount"),
        (deletion(occurredAt=10**40), "occurredAt"),
        (deletion(eventId="e" * 300), "HubSpot event 0: event_id"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=[
        "infinity",
        "nan",
        "5000-digits",
        "huge-closedate",
        "created-1955",
        "long-stage",
        "amount-1e999",
        "occurredAt-1e40",
        "long-event-id",
        "deep-json",
    ],
)
def test_values_no_deal_event_can_hold_are_payload_errors(body: bytes, problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem) as raised:
        parse_hubspot(signed_request(body), config(), client=None, now_ms=NOW_MS)
    assert raised.value.status_code == 400
