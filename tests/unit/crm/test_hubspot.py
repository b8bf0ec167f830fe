"""HubSpot: signatures computed independently as HubSpot documents them, the batched webhook events, the
workflow webhook, and the CRM API lookups against a local server answering in HubSpot's shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import (
    HUBSPOT_DEAL_PROPERTIES,
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


DEAL_PROPERTIES = {
    "amount": "12000.50",
    "closedate": "2026-12-01T10:00:00Z",
    "createdate": "2026-10-01T09:00:00.000Z",
    "dealstage": "closedwon",
    "deal_currency_code": "eur",
    "hs_lastmodifieddate": "2026-11-19T08:00:00.000Z",
    "pipeline": "default",
}
DEALS_BATCH = "/crm/v3/objects/deals/batch/read"
ASSOCIATIONS_BATCH = "/crm/v4/associations/deals/contacts/batch/read"
CONTACTS_BATCH = "/crm/v3/objects/contacts/batch/read"


def _refused(seen: Any, token: str, keys: set[str], limit: int) -> Reply | None:
    """HubSpot's 401 without the token, and its 400 for a body not in the documented batch shape."""
    if seen.headers.get("authorization") != f"Bearer {token}":
        return Reply(401, {"status": "error", "message": "Authentication credentials not found."})
    body = seen.body
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if (
        set(body or {}) != keys
        or not isinstance(inputs, list)
        or not 1 <= len(inputs) <= limit
        or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in inputs)
    ):
        return Reply(400, {"status": "error", "category": "VALIDATION_ERROR", "message": "Invalid input"})
    return None


def _batch_answer(results: list[dict[str, Any]], missing: list[str], category: str) -> Reply:
    """200 when every id was found; HubSpot's 207 Multi-Status naming the others otherwise."""
    answer: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": "2026-11-19T08:00:01Z",
        "completedAt": "2026-11-19T08:00:01Z",
    }
    if not missing:
        return Reply(200, answer)
    error = {
        "status": "error",
        "category": category,
        "message": "Could not get some objects",
        "context": {"ids": missing},
    }
    return Reply(207, {**answer, "numErrors": 1, "errors": [error]})


def serve_hubspot(
    api: FakeCrmApi,
    deals: dict[str, dict[str, str]],
    contacts: dict[str, list[str]],
    emails: dict[str, str],
    *,
    token: str = TOKEN,
) -> None:
    """HubSpot's three batch reads as its API reference documents them: the bodies they accept (a 400
    otherwise), 100 ids a call for objects and 1,000 for associations, and their 200/207 answers."""

    def read_deals(seen: Any) -> Reply:
        refused = _refused(seen, token, {"properties", "propertiesWithHistory", "inputs"}, 100)
        if refused:
            return refused
        ids = [i["id"] for i in seen.body["inputs"]]
        results = [
            {
                "id": deal_id,
                "properties": {
                    **dict.fromkeys(seen.body["properties"]),
                    **deals[deal_id],
                    "hs_object_id": deal_id,
                },
                "createdAt": "2026-10-01T09:00:00.000Z",
                "updatedAt": "2026-11-19T08:00:00.000Z",
                "archived": False,
            }
            for deal_id in ids
            if deal_id in deals
        ]
        return _batch_answer(results, [i for i in ids if i not in deals], "OBJECT_NOT_FOUND")

    def read_associations(seen: Any) -> Reply:
        refused = _refused(seen, token, {"inputs"}, 1000)
        if refused:
            return refused
        ids = [i["id"] for i in seen.body["inputs"]]
        results = [
            {
                "from": {"id": deal_id},
                "to": [
                    {
                        "toObjectId": int(contact_id),
                        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}],
                    }
                    for contact_id in contacts[deal_id]
                ],
            }
            for deal_id in ids
            if contacts.get(deal_id)
        ]
        return _batch_answer(results, [i for i in ids if not contacts.get(i)], "NO_ASSOCIATIONS_FOUND")

    def read_contacts(seen: Any) -> Reply:
        refused = _refused(seen, token, {"properties", "propertiesWithHistory", "inputs"}, 100)
        if refused:
            return refused
        ids = [i["id"] for i in seen.body["inputs"]]
        results = [
            {
                "id": contact_id,
                "properties": {"email": emails[contact_id], "hs_object_id": contact_id},
                "createdAt": "2026-09-01T00:00:00Z",
                "updatedAt": "2026-09-01T00:00:00Z",
                "archived": False,
            }
            for contact_id in ids
            if contact_id in emails
        ]
        return _batch_answer(results, [i for i in ids if i not in emails], "OBJECT_NOT_FOUND")

    api.route("POST", DEALS_BATCH, read_deals)
    api.route("POST", ASSOCIATIONS_BATCH, read_associations)
    api.route("POST", CONTACTS_BATCH, read_contacts)


def serve_deal(api: FakeCrmApi, *, stage: str = "closedwon", amount: str = "12000.50", **extra: str) -> None:
    """Deal DEAL_ID and its two contacts, as HubSpot's batch reads return them."""
    properties = {**DEAL_PROPERTIES, "dealstage": stage, "amount": amount, **extra}
    serve_hubspot(
        api,
        {DEAL_ID: properties},
        {DEAL_ID: ["201", "202"]},
        {"201": "Ada@Example.com", "202": "grace@example.org"},
    )


def calls_to(api: FakeCrmApi, path: str) -> list[Any]:
    return [seen for seen in api.seen if seen.path == path]


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
    # the deal read once for the batch, with the properties the adapter needs, then its contacts
    [deals_call] = calls_to(crm_api, DEALS_BATCH)
    assert deals_call.body["inputs"] == [{"id": DEAL_ID}]
    assert set(deals_call.body["properties"]) >= {"dealstage", "amount", "closedate", "hs_lastmodifieddate"}
    assert [s.path for s in crm_api.seen] == [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH]


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
    # Given a batch about two deals, one of them deleted since (HubSpot answers 207, naming it)
    serve_deal(crm_api)
    batch = [deal_event("deal.creation", 1, objectId=4040), deal_event("deal.creation", 2)]
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    # When
    events = parse_hubspot(signed_request(json.dumps(batch).encode()), config(), client=client, now_ms=NOW_MS)
    # Then only the deal that still exists becomes an event; the other's deletion event follows
    assert [(e.event_id, e.deal_id) for e in events] == [("2", DEAL_ID)]
    assert calls_to(crm_api, DEALS_BATCH)[0].body["inputs"] == [{"id": "4040"}, {"id": DEAL_ID}]


def test_a_batch_of_deals_that_all_no_longer_exist_is_no_events(crm_api: FakeCrmApi) -> None:
    # HubSpot may answer a batch read of ids that all no longer exist with a 404
    not_found = {"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"}
    crm_api.route("POST", DEALS_BATCH, Reply(404, not_found))
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    assert parse_hubspot(request, config(), client=client, now_ms=NOW_MS) == []
    assert [s.path for s in crm_api.seen] == [DEALS_BATCH]


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
    crm_api.route("POST", DEALS_BATCH, Reply(status, payload, headers))
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())
    with pytest.raises(CrmApiRetryableError) as raised:
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS)
    assert raised.value.status == status
    assert raised.value.status_code == 503
    assert raised.value.retry_after == (1.0 if status == 429 else None)
    assert TOKEN not in str(raised.value)


def bulk_edit(count: int) -> list[dict[str, Any]]:
    """A bulk edit of ``count`` deals' stage: one delivery of ``count`` events, one deal each."""
    return [
        deal_event(
            "deal.propertyChange", n, objectId=9000 + n, propertyName="dealstage", propertyValue="closedwon"
        )
        for n in range(1, count + 1)
    ]


def serve_bulk(api: FakeCrmApi, count: int) -> None:
    """Deals 9001... each with two contacts of its own (two for the first, and so on)."""
    deals = {str(9000 + n): DEAL_PROPERTIES for n in range(1, count + 1)}
    contacts = {str(9000 + n): [str(20000 + 2 * n), str(20001 + 2 * n)] for n in range(1, count + 1)}
    emails = {c: f"buyer{c}@example.com" for ids in contacts.values() for c in ids}
    serve_hubspot(api, deals, contacts, emails)


def test_a_bulk_edit_of_100_deals_costs_four_batch_reads_in_hubspots_documented_shapes(
    crm_api: FakeCrmApi,
) -> None:
    # Given HubSpot's largest delivery: 100 deals, 200 contacts
    serve_bulk(crm_api, 100)
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps(bulk_edit(100)).encode())

    # When
    events = parse_hubspot(request, config(), client=client, now_ms=NOW_MS)

    # Then every deal is an event with its own contacts ...
    assert [e.deal_id for e in events] == [str(9000 + n) for n in range(1, 101)]
    assert events[0].contact_emails == ("buyer20002@example.com", "buyer20003@example.com")
    assert all(e.lifecycle is DealLifecycle.WON for e in events)
    # ... read in 4 calls (not 200): deals, associations, contacts in two hundreds
    assert [s.path for s in crm_api.seen] == [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH, CONTACTS_BATCH]
    deals_call, associations_call, *contacts_calls = crm_api.seen
    # POST /crm/v3/objects/deals/batch/read: properties, propertiesWithHistory, inputs of {"id"}
    assert deals_call.body == {
        "properties": list(HUBSPOT_DEAL_PROPERTIES),
        "propertiesWithHistory": [],
        "inputs": [{"id": str(9000 + n)} for n in range(1, 101)],
    }
    # POST /crm/v4/associations/deals/contacts/batch/read: inputs of {"id"}
    assert associations_call.body == {"inputs": [{"id": str(9000 + n)} for n in range(1, 101)]}
    # POST /crm/v3/objects/contacts/batch/read: the e-mail only, at most 100 ids a call
    assert [c.body["properties"] for c in contacts_calls] == [["email"], ["email"]]
    assert [len(c.body["inputs"]) for c in contacts_calls] == [100, 100]
    assert all(c.headers["content-type"] == "application/json" for c in crm_api.seen)


def test_a_deal_with_more_contacts_than_a_page_is_read_to_its_last_page(crm_api: FakeCrmApi) -> None:
    serve_deal(crm_api)
    pages = {
        None: ({"toObjectId": 201, "associationTypes": []}, {"next": {"after": "MjAx"}}),
        "MjAx": ({"toObjectId": 202, "associationTypes": []}, None),
    }

    def associations(seen: Any) -> Reply:
        [wanted] = seen.body["inputs"]
        target, paging = pages[wanted.get("after")]
        result = {"from": {"id": wanted["id"]}, "to": [target], **({"paging": paging} if paging else {})}
        return Reply(200, {"status": "COMPLETE", "results": [result]})

    crm_api.route("POST", ASSOCIATIONS_BATCH, associations)
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    deals = client.fetch_deals([DEAL_ID])
    assert deals[DEAL_ID].contact_emails == ("ada@example.com", "grace@example.org")
    assert [c.body["inputs"] for c in calls_to(crm_api, ASSOCIATIONS_BATCH)] == [
        [{"id": DEAL_ID}],
        [{"id": DEAL_ID, "after": "MjAx"}],
    ]


@pytest.mark.parametrize("limited", [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH])
def test_a_rate_limit_on_any_batch_read_is_retryable_and_returns_no_event(
    crm_api: FakeCrmApi, limited: str
) -> None:
    # Given HubSpot's burst limit is reached at one of the three reads of a bulk edit
    serve_bulk(crm_api, 100)
    rate_limited = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    crm_api.route("POST", limited, Reply(429, rate_limited, {"Retry-After": "10"}))
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    request = signed_request(json.dumps(bulk_edit(100)).encode())
    # When / Then: a retryable 503, no partial list of events, and no call after the refused one
    with pytest.raises(CrmApiRetryableError) as raised:
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS)
    assert (raised.value.status, raised.value.retry_after, raised.value.status_code) == (429, 10.0, 503)
    assert crm_api.seen[-1].path == limited
    assert len(crm_api.seen) == [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH].index(limited) + 1


def test_the_lookups_of_a_delivery_share_one_time_budget(crm_api: FakeCrmApi) -> None:
    # Given HubSpot answers the deals in 0.3 s, then hangs on the associations
    serve_deal(crm_api)
    answer_deals = crm_api.find("POST", DEALS_BATCH)
    assert answer_deals is not None
    crm_api.route("POST", DEALS_BATCH, lambda seen: replace(answer_deals(seen), delay=0.3))
    crm_api.route("POST", ASSOCIATIONS_BATCH, Reply(200, {"status": "COMPLETE", "results": []}, delay=3.0))
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url, timeout=3.0)
    request = signed_request(json.dumps([deal_event("deal.creation", 1)]).encode())

    # When the delivery's lookups may take 0.6 s in all
    started = time.monotonic()
    with pytest.raises(CrmApiRetryableError) as raised:
        parse_hubspot(request, config(), client=client, now_ms=NOW_MS, budget_seconds=0.6)
    elapsed = time.monotonic() - started

    # Then the hanging call gets only what is left of them (not its own 3 s) and the answer is a 503
    assert 0.5 < elapsed < 1.2
    assert raised.value.status_code == 503
    assert [s.path for s in crm_api.seen] == [DEALS_BATCH, ASSOCIATIONS_BATCH]


def test_no_call_starts_once_the_budget_is_spent(crm_api: FakeCrmApi) -> None:
    serve_deal(crm_api)
    client = HubSpotClient(TOKEN, base_url=crm_api.base_url)
    with pytest.raises(CrmApiRetryableError, match="time budget"):
        client.fetch_deals([DEAL_ID], deadline=time.monotonic() - 0.001)
    assert crm_api.seen == []


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
    assert [s.path for s in crm_api.seen] == [CONTACTS_BATCH]
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
