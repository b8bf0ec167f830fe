"""The CRM webhook function under moto: each CRM's signed delivery stored once, in order, all or nothing.

Every delivery is built and signed here the way the CRM documents it, independently of
``closedloop.crm``; HubSpot's and Pipedrive's APIs are a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from closedloop.clock import day_of
from closedloop.crm import CrmName, DealEvent, DealLifecycle
from closedloop.deals import DealLink, StoredDeal, record_deal_event
from closedloop.identity import journey_touches, lead_id_for
from closedloop.local.gateway import load_function
from closedloop.observability import logger
from closedloop.store import DynamoStore, WriteOutcome
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.support import api_event, invoke
from tests.unit.crm.conftest import FakeCrmApi, Reply
from tests.unit.crm.test_hubspot import ASSOCIATIONS_BATCH, CONTACTS_BATCH, DEALS_BATCH, serve_hubspot

API_HOST = "api.acme.test"  # the host header tests.support sends: API Gateway's domainName
HUBSPOT_SECRET = "hubspot-client-secret-6f1e"
HUBSPOT_TOKEN = "pat-na1-0c7e-test-token"
SALESFORCE_TOKEN = "sf-url-token-8d0f3b6c2a9e4d1f"
SALESFORCE_ORG = "00D5e000000KQ2eEAG"
PIPEDRIVE_USER = "closedloop"
PIPEDRIVE_PASSWORD = "pipedrive-password-91c2"
PIPEDRIVE_TOKEN = "pipedrive-api-token-3b7a"
GENERIC_SECRET = "generic-signing-secret-5e8d2c"
SECRET_VALUES = (
    HUBSPOT_SECRET,
    HUBSPOT_TOKEN,
    SALESFORCE_TOKEN,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_TOKEN,
    GENERIC_SECRET,
)
ADA = "ada@example.com"
GRACE = "grace@example.org"


def secret_document(api_base_url: str) -> dict[str, Any]:
    """The webhook secret as docs/crm-setup.md tells the admin to write it (APIs on 127.0.0.1)."""
    return {
        "hubspot": {
            "client_secret": HUBSPOT_SECRET,
            "private_app_token": HUBSPOT_TOKEN,
            "api_base_url": api_base_url,
        },
        "salesforce": {
            "url_token": SALESFORCE_TOKEN,
            "organization_id": SALESFORCE_ORG,
            "default_currency": "EUR",
        },
        "pipedrive": {
            "username": PIPEDRIVE_USER,
            "password": PIPEDRIVE_PASSWORD,
            "api_token": PIPEDRIVE_TOKEN,
            "api_base_url": f"{api_base_url}/api/v2",
        },
        "generic": {"signing_secret": GENERIC_SECRET},
    }


@pytest.fixture
def crm_api() -> Iterator[FakeCrmApi]:
    api = FakeCrmApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture
def secrets_manager(dynamodb: Any) -> Any:
    """moto's Secrets Manager, inside the same mock as the table."""
    return boto3.client("secretsmanager", region_name="us-east-1")


def create_secret(secrets_manager: Any, monkeypatch: pytest.MonkeyPatch, document: dict[str, Any]) -> str:
    arn = secrets_manager.create_secret(Name="closedloop-webhooks", SecretString=json.dumps(document))["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    return str(arn)


@pytest.fixture
def crm_webhook(secrets_manager: Any, crm_api: FakeCrmApi, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    create_secret(secrets_manager, monkeypatch, secret_document(crm_api.base_url))
    return load_function("crm_webhook")


@pytest.fixture
def store(dynamodb: Any) -> DynamoStore:
    return DynamoStore(TABLE_NAME, client=dynamodb)


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Everything the functions log (Powertools' JSON lines, as CloudWatch would receive them)."""
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return buffer


def table_items(dynamodb: Any) -> list[dict[str, Any]]:
    return list(dynamodb.scan(TableName=TABLE_NAME, ConsistentRead=True)["Items"])


# -- deliveries, signed as each CRM documents it ------------------------------------------------------


def deliver(
    module: ModuleType,
    crm: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    query: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    event = api_event(
        "POST", f"/webhooks/{crm}", body=body, content_type=content_type, headers=headers, query=query
    )
    return invoke(module, event)


def generic_event(
    event_id: str = "evt_01",
    *,
    deal_id: str = "D-1042",
    status: str = "open",
    stage: str | None = None,
    version: int | None = None,
    email: str | None = "Ada@Example.COM",
    **fields: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "deal_id": deal_id,
        "status": status,
        "occurred_at": "2026-11-19T08:00:00Z",
        **fields,
    }
    if stage is not None:
        event["stage"] = stage
    if version is not None:
        event["version"] = version
    if email is not None:
        event["contact_email"] = email
    return event


def generic_headers(body: bytes, *, secret: str = GENERIC_SECRET, at: float | None = None) -> dict[str, str]:
    """``X-Closedloop-Signature: t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (docs/crm-setup.md)."""
    t = int(at if at is not None else time.time())
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Closedloop-Signature": f"t={t},v1={v1}"}


def send_generic(module: ModuleType, *events: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    body = json.dumps(events[0] if len(events) == 1 else {"events": list(events)}).encode()
    return deliver(module, "generic", body, headers=generic_headers(body))


def hubspot_headers(
    body: bytes, *, secret: str = HUBSPOT_SECRET, timestamp_ms: int | None = None
) -> dict[str, str]:
    """HubSpot's v3 signature: base64 HMAC-SHA256(client secret, method + URI + body + timestamp)."""
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    uri = f"https://{API_HOST}/webhooks/hubspot"
    message = b"POST" + uri.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def hubspot_batch(*events: tuple[str, int]) -> bytes:
    """Subscription events as HubSpot batches them: ids only, no deal properties."""
    return json.dumps(
        [
            {
                "eventId": event_id,
                "subscriptionId": 25,
                "portalId": 33,
                "appId": 1160452,
                "occurredAt": 1_795_000_000_000 + event_id,
                "subscriptionType": subscription_type,
                "attemptNumber": 0,
                "objectId": 555,
                "changeSource": "CRM_UI",
                **(
                    {"propertyName": "dealstage", "propertyValue": "closedwon"}
                    if "propertyChange" in subscription_type
                    else {}
                ),
            }
            for subscription_type, event_id in events
        ]
    ).encode()


HUBSPOT_DEAL = {
    "amount": "12000.50",
    "closedate": "2026-12-01T10:00:00Z",
    "createdate": "2026-10-01T09:00:00.000Z",
    "dealstage": "closedwon",
    "deal_currency_code": "usd",
    "hs_lastmodifieddate": "2026-11-19T08:00:00.000Z",
    "pipeline": "default",
}


def serve_hubspot_deal(api: FakeCrmApi) -> None:
    """Deal 555 with two contacts, as HubSpot's batch reads answer (only with the private-app token)."""
    serve_hubspot(
        api,
        {"555": HUBSPOT_DEAL},
        {"555": ["201", "202"]},
        {"201": "Ada@Example.com", "202": GRACE},
        token=HUBSPOT_TOKEN,
    )


def hubspot_bulk_edit(api: FakeCrmApi, count: int) -> bytes:
    """A bulk edit of ``count`` deals' stage in one delivery; each deal has two contacts of its own."""
    deals = [str(7000 + n) for n in range(1, count + 1)]
    contacts = {deal: [f"{deal}1", f"{deal}2"] for deal in deals}
    emails = {c: f"buyer{c}@example.com" for ids in contacts.values() for c in ids}
    serve_hubspot(api, dict.fromkeys(deals, HUBSPOT_DEAL), contacts, emails, token=HUBSPOT_TOKEN)
    return json.dumps(
        [
            {
                "eventId": 100 + n,
                "subscriptionId": 25,
                "portalId": 33,
                "appId": 1160452,
                "occurredAt": 1_795_000_000_000 + n,
                "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0,
                "objectId": int(deal),
                "changeSource": "CRM_UI_BULK_ACTION",
                "propertyName": "dealstage",
                "propertyValue": "closedwon",
            }
            for n, deal in enumerate(deals)
        ]
    ).encode()


def salesforce_message(
    *, org: str = SALESFORCE_ORG, stage: str = "Closed Won", amount: str = "125000.0"
) -> bytes:
    """An Opportunity outbound message, in the envelope of Salesforce's outbound messaging WSDL."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k5e000000KyqaAAC</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000KQ2e</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e</PartnerUrl>"
        "<Notification><Id>04l5e00000BuH8nAAF</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        "<sf:Id>0065e00000KxYzAAAV</sf:Id>"
        f"<sf:Amount>{amount}</sf:Amount>"
        "<sf:CloseDate>2026-12-15</sf:CloseDate>"
        "<sf:Contact_Email__c>Ada@Example.com</sf:Contact_Email__c>"
        "<sf:CreatedDate>2026-10-01T09:30:00.000Z</sf:CreatedDate>"
        "<sf:IsClosed>true</sf:IsClosed><sf:IsWon>true</sf:IsWon>"
        "<sf:LastModifiedDate>2026-11-19T08:00:00.000Z</sf:LastModifiedDate>"
        f"<sf:StageName>{stage}</sf:StageName>"
        "</sObject></Notification>"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def send_salesforce(
    module: ModuleType, body: bytes, token: str = SALESFORCE_TOKEN
) -> tuple[int, dict[str, str], Any]:
    return deliver(module, "salesforce", body, content_type="text/xml; charset=utf-8", query={"token": token})


def pipedrive_body() -> bytes:
    """A webhooks v2 deal change: meta, the deal after the change, and the fields that changed."""
    return json.dumps(
        {
            "meta": {
                "action": "change",
                "entity": "deal",
                "entity_id": "42",
                "id": "f3d8a7e0-5b1c-4c55-9b4a-1f2e3d4c5b6a",
                "timestamp": "2026-11-19T08:00:01.123Z",
                "version": "2.0",
                "webhook_id": "99",
            },
            "data": {
                "id": 42,
                "value": 4800.5,
                "currency": "usd",
                "status": "won",
                "stage_id": 5,
                "pipeline_id": 1,
                "person_id": 1001,
                "add_time": "2026-10-01T09:00:00Z",
                "update_time": "2026-11-19T08:00:00Z",
            },
            "previous": {"status": "open"},
        }
    ).encode()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def serve_pipedrive_person(api: FakeCrmApi) -> None:
    def person(seen: Any) -> Reply:
        if seen.headers.get("x-api-token") != PIPEDRIVE_TOKEN:
            return Reply(401, {"success": False, "error": "unauthorized access"})
        emails = [{"value": "Ada@Example.com", "primary": True, "label": "work"}]
        return Reply(200, {"success": True, "data": {"id": 1001, "emails": emails}})

    api.route("GET", "/api/v2/persons/1001", person)


# -- each CRM, end to end ---------------------------------------------------------------------------


def test_a_generic_deal_is_stored_with_its_history_its_lead_and_an_offline_lead(crm_webhook, store):
    # Given a signed generic event for a contact who never filled a form
    event = generic_event(status="won", stage="contract signed", amount="12000.50", currency="eur")

    # When it is delivered
    status, _, reply = send_generic(crm_webhook, event)

    # Then the deal, its history and the contact's (offline) lead are stored
    assert (status, reply) == (200, {"received": 1, "duplicates": 0})
    lead_id = lead_id_for(ADA)
    deal = store.get_deal(CrmName.GENERIC, "D-1042")
    assert deal is not None
    assert (deal.lifecycle, deal.stage, deal.currency) == (DealLifecycle.WON, "contract signed", "EUR")
    assert isinstance(deal.amount, Decimal) and deal.amount == Decimal("12000.50")
    assert (deal.lead_ids, deal.contact_emails, deal.revision) == ((lead_id,), (ADA,), 1)
    [stored_event] = store.deal_events("generic", "D-1042")
    assert (stored_event.event_id, stored_event.amount) == ("evt_01", Decimal("12000.50"))
    assert store.deals_of_lead(lead_id) == [
        DealLink(lead_id=lead_id, crm=CrmName.GENERIC, deal_id="D-1042", linked_at=deal.changed_at)
    ]
    lead = store.get_lead(lead_id)
    assert lead is not None
    assert (lead.email, lead.submissions, lead.version) == (ADA, 0, 1)
    assert store.links_of_lead(lead_id) == []
    # And the attribution job finds it among the deals changed today
    assert [d.deal_id for d in store.deals_changed_on(day_of(deal.changed_at))] == ["D-1042"]
    assert list(store.deals_changed_on("2001-01-01")) == []


def test_hubspot_ids_only_events_are_resolved_through_its_api(crm_webhook, store, crm_api):
    # Given HubSpot's API knows deal 555 and its two contacts
    serve_hubspot_deal(crm_api)
    body = hubspot_batch(("deal.creation", 1), ("deal.propertyChange", 2))

    # When HubSpot delivers a batch of two events that carry ids only
    status, _, reply = deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))

    # Then both are stored, the state read from the API, both contacts linked
    assert (status, reply) == (200, {"received": 2, "duplicates": 0})
    deal = store.get_deal("hubspot", "555")
    assert deal is not None
    assert (deal.lifecycle, deal.amount, deal.currency) == (DealLifecycle.WON, Decimal("12000.50"), "USD")
    assert set(deal.lead_ids) == {lead_id_for(ADA), lead_id_for(GRACE)}
    assert [e.event_id for e in store.deal_events("hubspot", "555")] == ["1", "2"]
    assert store.get_lead(lead_id_for(GRACE)) is not None
    assert [seen.path for seen in crm_api.seen] == [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH]


def test_a_hubspot_bulk_edit_of_100_deals_is_stored_after_four_api_calls(crm_webhook, store, crm_api):
    # Given a bulk edit: 100 deals, 200 contacts, in one delivery
    body = hubspot_bulk_edit(crm_api, 100)

    # When HubSpot delivers it
    status, _, reply = deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))

    # Then all 100 are stored, each deal with its own two leads, after 4 batch reads (not 200 reads)
    assert (status, reply) == (200, {"received": 100, "duplicates": 0})
    assert [seen.path for seen in crm_api.seen] == [
        DEALS_BATCH,
        ASSOCIATIONS_BATCH,
        CONTACTS_BATCH,
        CONTACTS_BATCH,
    ]
    last = store.get_deal("hubspot", "7100")
    assert last is not None and last.lifecycle is DealLifecycle.WON
    assert set(last.lead_ids) == {
        lead_id_for("buyer71001@example.com"),
        lead_id_for("buyer71002@example.com"),
    }


def test_salesforce_gets_its_soap_acknowledgement_once_the_opportunity_is_stored(crm_webhook, store):
    status, headers, reply = send_salesforce(crm_webhook, salesforce_message())

    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    assert "<Ack>true</Ack>" in reply
    deal = store.get_deal("salesforce", "0065e00000KxYzAAAV")
    assert deal is not None
    assert (deal.lifecycle, deal.amount, deal.currency) == (DealLifecycle.WON, Decimal("125000.0"), "EUR")
    assert deal.lead_ids == (lead_id_for(ADA),)
    assert [e.event_id for e in store.deal_events("salesforce", "0065e00000KxYzAAAV")] == [
        "04l5e00000BuH8nAAF"
    ]


def test_pipedrive_deals_get_their_persons_email_through_its_api(crm_webhook, store, crm_api):
    serve_pipedrive_person(crm_api)

    status, _, reply = deliver(
        crm_webhook,
        "pipedrive",
        pipedrive_body(),
        headers={"Authorization": basic(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD)},
    )

    assert (status, reply) == (200, {"received": 1, "duplicates": 0})
    deal = store.get_deal("pipedrive", "42")
    assert deal is not None
    assert (deal.lifecycle, deal.amount, deal.currency) == (DealLifecycle.WON, Decimal("4800.5"), "USD")
    assert deal.lead_ids == (lead_id_for(ADA),)
    assert [seen.path for seen in crm_api.seen] == ["/api/v2/persons/1001"]


def test_a_base64_encoded_body_is_verified_over_its_bytes(crm_webhook, store):
    body = json.dumps(generic_event()).encode()
    event = api_event(
        "POST",
        "/webhooks/generic",
        body=body,
        content_type="application/octet-stream",
        headers=generic_headers(body),
    )
    assert event["isBase64Encoded"] is True

    status, _, reply = invoke(crm_webhook, event)

    assert (status, reply) == (200, {"received": 1, "duplicates": 0})
    assert store.get_deal("generic", "D-1042") is not None


# -- retries, order, concurrency -------------------------------------------------------------------


def test_the_same_delivery_five_times_counts_once(crm_webhook, store, dynamodb):
    event = generic_event(status="won", amount="500", currency="USD")

    replies = [send_generic(crm_webhook, event)[2] for _ in range(5)]
    items_after_all = len(table_items(dynamodb))

    assert replies == [{"received": 1, "duplicates": 0}] + [{"received": 1, "duplicates": 1}] * 4
    assert len(store.deal_events("generic", "D-1042")) == 1
    deal = store.get_deal("generic", "D-1042")
    assert deal is not None and deal.revision == 1
    # state, history, lead link, offline lead: nothing more
    assert items_after_all == 4


STAGES = (
    generic_event("evt_1", status="open", stage="qualified", version=1),
    generic_event("evt_2", status="open", stage="proposal", version=2, email=GRACE),
    generic_event("evt_3", status="won", stage="contract signed", version=3, amount="900", currency="EUR"),
)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=lambda o: "-".join(map(str, o)))
def test_stage_changes_delivered_out_of_order_never_move_the_deal_back(crm_webhook, store, order):
    versions_seen = []
    for index in order:
        status, _, _ = send_generic(crm_webhook, STAGES[index])
        assert status == 200
        deal = store.get_deal("generic", "D-1042")
        assert deal is not None
        versions_seen.append(deal.version)

    # The state only ever moved forward, and ends at the newest event
    assert versions_seen == sorted(versions_seen)
    assert deal is not None
    assert (deal.lifecycle, deal.stage, deal.version) == (DealLifecycle.WON, "contract signed", 3)
    # Every event is in the history, in the CRM's order, whatever order it arrived in
    assert [e.event_id for e in store.deal_events("generic", "D-1042")] == ["evt_1", "evt_2", "evt_3"]


def deal_event(event_id: str, version: int, email: str) -> DealEvent:
    return DealEvent(
        crm=CrmName.GENERIC,
        event_id=event_id,
        deal_id="D-7",
        lifecycle=DealLifecycle.OPEN,
        occurred_at=version * 1_000,
        version=version,
        contact_emails=(email,),
    )


@pytest.mark.parametrize("stored_before", [False, True], ids=["new-deal", "existing-deal"])
def test_a_concurrent_change_between_read_and_write_is_retried_on_the_new_state(store, stored_before):
    # Given (maybe) a stored deal, and another delivery that changes it right after our first read
    if stored_before:
        assert record_deal_event(deal_event("e0", 1, ADA), store=store, received_at=1_000).applied
    competing = deal_event("e2", 2, GRACE)
    ours = deal_event("e3", 3, "linus@example.net")

    class RacingStore:
        def __init__(self) -> None:
            self.reads = 0

        def get_deal(self, crm: Any, deal_id: str) -> StoredDeal | None:
            self.reads += 1
            stale = store.get_deal(crm, deal_id)
            if self.reads == 1:
                assert record_deal_event(competing, store=store, received_at=2_000).applied
            return stale

        def put_lead_if_absent(self, lead: Any) -> bool:
            return store.put_lead_if_absent(lead)

        def record_deal_event(self, event: DealEvent, **kwargs: Any) -> WriteOutcome:
            return store.record_deal_event(event, **kwargs)

    racing = RacingStore()

    # When our event is recorded
    recorded = record_deal_event(ours, store=racing, received_at=3_000)

    # Then the first write conflicted, and the retry applied our event over the competing one's state
    assert racing.reads == 2
    assert recorded.applied
    deal = store.get_deal("generic", "D-7")
    assert deal is not None
    earlier = [lead_id_for(ADA)] if stored_before else []
    assert deal.lead_ids == (*earlier, lead_id_for(GRACE), lead_id_for("linus@example.net"))
    assert (deal.last_event_id, deal.version, deal.revision) == ("e3", 3, len(earlier) + 2)
    assert [e.event_id for e in store.deal_events("generic", "D-7")] == [
        *(["e0"] if stored_before else []),
        "e2",
        "e3",
    ]
    assert {link.lead_id for link in store.deals_of_lead(lead_id_for(GRACE))} == {lead_id_for(GRACE)}


def test_a_dynamodb_failure_answers_503_and_the_retry_stores_exactly_once(crm_webhook, store, monkeypatch):
    # Given DynamoDB throttles the deal's transaction
    event = generic_event(status="won", amount="250", currency="USD")

    def throttled(**_kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "TransactWriteItems",
        )

    with monkeypatch.context() as patch:
        patch.setattr(crm_webhook.store.client, "transact_write_items", throttled)
        # When the CRM delivers
        status, headers, reply = send_generic(crm_webhook, event)

    # Then it is told to retry, and no deal was half-stored
    assert status == 503
    assert headers["retry-after"]
    assert reply["error"]["code"] == "dependency_unavailable"
    assert store.get_deal("generic", "D-1042") is None
    assert store.deal_events("generic", "D-1042") == []

    # When it retries once DynamoDB is back, the deal is stored exactly once
    assert send_generic(crm_webhook, event)[2] == {"received": 1, "duplicates": 0}
    assert send_generic(crm_webhook, event)[2] == {"received": 1, "duplicates": 1}
    deal = store.get_deal("generic", "D-1042")
    assert deal is not None and deal.revision == 1
    assert len(store.deal_events("generic", "D-1042")) == 1


def test_a_hubspot_api_outage_answers_503_and_stores_nothing(crm_webhook, dynamodb, crm_api):
    crm_api.route("POST", DEALS_BATCH, Reply(503, {"status": "error"}, headers={"Retry-After": "7"}))
    body = hubspot_batch(("deal.creation", 1))

    status, headers, reply = deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))

    assert (status, reply["error"]["code"]) == (503, "crm_api_unavailable")
    assert headers["retry-after"]
    assert table_items(dynamodb) == []


@pytest.mark.parametrize("limited", [DEALS_BATCH, ASSOCIATIONS_BATCH, CONTACTS_BATCH])
def test_a_rate_limited_hubspot_api_answers_503_and_stores_nothing_of_the_bulk_edit(
    crm_webhook, dynamodb, crm_api, limited
):
    # Given HubSpot's burst limit is reached at one of the batch reads, even the last one
    body = hubspot_bulk_edit(crm_api, 100)
    rate_limited = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}
    crm_api.route("POST", limited, Reply(429, rate_limited, headers={"Retry-After": "10"}))

    # When the delivery arrives
    status, headers, reply = deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))

    # Then HubSpot is told to retry, and not one of the 100 events (nor a lead) was written
    assert (status, reply["error"]["code"]) == (503, "crm_api_unavailable")
    assert headers["retry-after"]
    assert table_items(dynamodb) == []
    assert crm_api.seen[-1].path == limited  # no call after the refused one


# -- refusals: nothing written ----------------------------------------------------------------------


def _generic_wrong_secret() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    body = json.dumps(generic_event()).encode()
    return "generic", body, generic_headers(body, secret="another-secret-0123456789"), None


def _generic_no_signature() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    return "generic", json.dumps(generic_event()).encode(), {}, None


def _generic_stale() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    body = json.dumps(generic_event()).encode()
    return "generic", body, generic_headers(body, at=time.time() - 600), None


def _hubspot_wrong_secret() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    body = hubspot_batch(("deal.creation", 1))
    return "hubspot", body, hubspot_headers(body, secret="not-the-client-secret"), None


def _hubspot_stale() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    body = hubspot_batch(("deal.creation", 1))
    return "hubspot", body, hubspot_headers(body, timestamp_ms=int(time.time() * 1000) - 600_000), None


def _hubspot_no_signature() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    return "hubspot", hubspot_batch(("deal.creation", 1)), {}, None


def _pipedrive_wrong_password() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    return "pipedrive", pipedrive_body(), {"Authorization": basic(PIPEDRIVE_USER, "guessed-password")}, None


def _pipedrive_no_credentials() -> tuple[str, bytes, dict[str, str], dict[str, str] | None]:
    return "pipedrive", pipedrive_body(), {}, None


@pytest.mark.parametrize(
    "make",
    [
        _generic_wrong_secret,
        _generic_no_signature,
        _generic_stale,
        _hubspot_wrong_secret,
        _hubspot_stale,
        _hubspot_no_signature,
        _pipedrive_wrong_password,
        _pipedrive_no_credentials,
    ],
    ids=lambda make: make.__name__.strip("_"),
)
def test_a_bad_or_stale_signature_is_401_and_writes_nothing(crm_webhook, dynamodb, crm_api, make):
    serve_hubspot_deal(crm_api)
    serve_pipedrive_person(crm_api)
    crm, body, headers, _ = make()

    status, _, reply = deliver(crm_webhook, crm, body, headers=headers)

    assert (status, reply["error"]["code"]) == (401, "invalid_signature")
    assert table_items(dynamodb) == []
    assert crm_api.seen == []  # not even a lookup


@pytest.mark.parametrize(
    ("token", "org"),
    [("wrong-token-0123456789abcdef", SALESFORCE_ORG), (SALESFORCE_TOKEN, "00D5e000000ZZZZEAG")],
    ids=["wrong-token", "another-org"],
)
def test_a_salesforce_message_with_a_wrong_token_or_org_is_a_401_soap_fault(
    crm_webhook, dynamodb, token, org
):
    status, headers, reply = send_salesforce(crm_webhook, salesforce_message(org=org), token=token)

    assert status == 401
    assert headers["content-type"].startswith("text/xml")
    assert "<faultcode>soapenv:Client</faultcode>" in reply
    assert table_items(dynamodb) == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&lol9;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""


def test_an_xml_bomb_is_a_400_soap_fault_and_writes_nothing(crm_webhook, dynamodb):
    status, headers, reply = send_salesforce(crm_webhook, BILLION_LAUGHS)

    assert status == 400
    assert headers["content-type"].startswith("text/xml")
    assert "DTD or entities" in reply
    assert table_items(dynamodb) == []


def test_an_authentic_but_unreadable_delivery_is_a_400_naming_the_problem(crm_webhook, dynamodb):
    status, _, reply = send_generic(crm_webhook, generic_event(status="maybe"))

    assert status == 400
    assert reply["error"]["code"] == "invalid_payload"
    assert "status" in reply["error"]["message"]
    assert table_items(dynamodb) == []


def test_a_batch_with_one_event_the_store_cannot_keep_is_a_400_and_stores_nothing(crm_webhook, dynamodb):
    # Given a batch whose first event is fine (its contact would become an offline lead) and whose
    # second has a version of 41 digits, which DynamoDB cannot keep
    fine = generic_event("evt_ok", status="won")
    unstorable = generic_event("evt_bad", deal_id="D-2", version=10**40)

    status, _, reply = send_generic(crm_webhook, fine, unstorable)

    # Then the whole delivery is refused before the first write, naming the event and the field
    assert (status, reply["error"]["code"]) == (400, "invalid_payload")
    assert "generic deal event 1: version" in reply["error"]["message"]
    assert table_items(dynamodb) == []


def test_a_hubspot_workflow_call_with_an_infinite_time_is_a_400(crm_webhook, dynamodb):
    # (with its contact's e-mail, so no lookup is needed: the deal is read from the call alone)
    body = b'{"objectId": 7, "dealstage": "closedwon", "email": "ada@example.com", '
    body += b'"hs_lastmodifieddate": Infinity}'

    status, _, reply = deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))

    assert (status, reply["error"]["code"]) == (400, "invalid_payload")
    assert "hs_lastmodifieddate is not a finite number" in reply["error"]["message"]
    assert table_items(dynamodb) == []


def test_a_salesforce_amount_dynamodb_cannot_keep_is_a_400_soap_fault(crm_webhook, dynamodb):
    status, headers, reply = send_salesforce(crm_webhook, salesforce_message(amount="1e999"))

    assert status == 400
    assert headers["content-type"].startswith("text/xml")
    assert "<faultcode>soapenv:Client</faultcode>" in reply
    assert "amount" in reply
    assert table_items(dynamodb) == []


def test_an_unknown_crm_is_404(crm_webhook):
    body = json.dumps(generic_event()).encode()

    status, _, reply = deliver(crm_webhook, "marketo", body, headers=generic_headers(body))

    assert (status, reply["error"]["code"]) == (404, "unknown_crm")


def test_the_empty_secret_of_a_fresh_stack_answers_404_for_every_crm(secrets_manager, monkeypatch):
    create_secret(secrets_manager, monkeypatch, {})
    module = load_function("crm_webhook")
    body = json.dumps(generic_event()).encode()

    status, _, reply = deliver(module, "generic", body, headers=generic_headers(body))

    assert (status, reply["error"]["code"]) == (404, "crm_not_configured")


def test_the_first_delivery_after_the_crm_is_set_up_is_stored_without_waiting_for_the_cache(
    secrets_manager, monkeypatch, store
):
    # Given a warm function that has read the empty secret of a fresh stack
    arn = create_secret(secrets_manager, monkeypatch, {})
    module = load_function("crm_webhook")
    assert send_generic(module, generic_event("evt_early"))[0] == 404
    # When the admin saves the generic section, and the sender delivers a minute later
    secrets_manager.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"generic": {"signing_secret": GENERIC_SECRET}})
    )

    status, _, reply = send_generic(module, generic_event("evt_first"))

    # Then it is stored: the secret was read again before answering 404 (HubSpot would not retry)
    assert (status, reply) == (200, {"received": 1, "duplicates": 0})
    assert store.get_deal("generic", "D-1042") is not None


def test_a_delivery_signed_with_a_rotated_secret_is_stored_at_once(crm_webhook, secrets_manager, store):
    # Given a warm function that has cached the secret
    assert send_generic(crm_webhook, generic_event("evt_before"))[0] == 200
    # When the admin rotates the generic signing secret, and the sender signs with the new one
    rotated = "generic-signing-secret-rotated-7a1f"
    secrets_manager.put_secret_value(
        SecretId="closedloop-webhooks", SecretString=json.dumps({"generic": {"signing_secret": rotated}})
    )
    body = json.dumps(generic_event("evt_after")).encode()

    status, _, _ = deliver(crm_webhook, "generic", body, headers=generic_headers(body, secret=rotated))

    # Then the delivery is stored, not refused with the cached secret's 401
    assert status == 200
    assert {e.event_id for e in store.deal_events("generic", "D-1042")} == {"evt_before", "evt_after"}


def test_an_invalid_secret_is_a_503_whose_log_names_the_field_not_the_value(
    secrets_manager, monkeypatch, log_output
):
    create_secret(secrets_manager, monkeypatch, {"generic": {"signing_secret": "Sh0rt-XyZ"}})
    module = load_function("crm_webhook")
    body = json.dumps(generic_event()).encode()

    status, _, reply = deliver(module, "generic", body, headers=generic_headers(body, secret="Sh0rt-XyZ"))

    assert (status, reply["error"]["code"]) == (503, "webhook_secret_unavailable")
    logs = log_output.getvalue()
    assert "generic.signing_secret" in logs
    assert "Sh0rt-XyZ" not in logs


def test_no_secret_and_no_contact_email_reaches_the_logs(crm_webhook, crm_api, log_output):
    serve_hubspot_deal(crm_api)
    body = hubspot_batch(("deal.creation", 1))
    assert deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body))[0] == 200
    assert send_generic(crm_webhook, generic_event())[0] == 200
    assert deliver(crm_webhook, "hubspot", body, headers=hubspot_headers(body, secret="x"))[0] == 401

    logs = log_output.getvalue()
    assert "webhook stored" in logs and "webhook refused" in logs
    for value in (*SECRET_VALUES, ADA, GRACE, "Ada@Example"):
        assert value not in logs


# -- the closed loop --------------------------------------------------------------------------------


def test_a_deal_contact_who_later_fills_a_form_gets_the_deal_and_their_journey(crm_webhook, store):
    collect, identify = load_function("collect"), load_function("identify")
    visitor = "LaptopVisitorAAAAAAAAAA"
    # Given a visitor who came from a paid search ad
    page = {
        "event_id": "evt-paid-1",
        "visitor_id": visitor,
        "url": f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc&gclid=x",
        "ts": int(time.time() * 1000) - 3_600_000,
    }
    assert invoke(collect, api_event("POST", "/collect", body=page))[0] == 200
    # And a deal whose contact the CRM knew before any form
    assert send_generic(crm_webhook, generic_event(status="won", amount="900", currency="EUR"))[0] == 200
    lead_id = lead_id_for(ADA)

    # When that person fills a form on the site
    status, _, reply = invoke(
        identify, api_event("POST", "/identify", body={"email": "ADA@example.com", "visitor_id": visitor})
    )

    # Then the form reaches the same lead, which now has the deal and the visitor's journey
    assert (status, reply) == (200, {"lead_id": lead_id, "status": "updated"})
    assert [link.deal_id for link in store.deals_of_lead(lead_id)] == ["D-1042"]
    links = store.links_of_lead(lead_id)
    journey = journey_touches(
        links, {link.visitor_id: store.touches_of_visitor(link.visitor_id) for link in links}
    )
    assert [touch.channel for touch in journey] == ["Paid Search"]
    lead = store.get_lead(lead_id)
    assert lead is not None and lead.submissions == 1
    assert lead.original_source is not None and lead.original_source.channel == "Paid Search"


# -- contacts: one transaction per event, a bounded list per deal ----------------------------------


def contacts(first: int, count: int) -> list[str]:
    return [f"buyer{n:03d}@example.com" for n in range(first, first + count)]


def test_an_event_naming_more_contacts_than_its_transaction_holds_keeps_its_first_49(crm_webhook, store):
    # Given a batch whose second event names 50 contacts: with a link and a lead each, they and the
    # event and the state would be 102 items, over DynamoDB's 100 per transaction
    fine = generic_event("evt_ok", status="won")
    crowded = generic_event("evt_crowded", deal_id="D-2", email=None, contact_emails=contacts(0, 50))

    status, _, reply = send_generic(crm_webhook, fine, crowded)

    # Then both deals are stored (a refused delivery would be lost: HubSpot never retries a 4xx),
    # the crowded one with its first 49 contacts, the 50th counted as dropped
    assert status == 200, reply
    deal = store.get_deal("generic", "D-2")
    assert deal is not None and deal.contact_emails == tuple(contacts(0, 49))
    assert store.get_deal("generic", "D-1042") is not None


def test_an_event_with_49_new_contacts_stores_their_leads_and_links_in_its_one_transaction(
    crm_webhook, store, dynamodb, monkeypatch
):
    # Given a deal event naming 49 contacts who never filled a form
    emails = contacts(0, 49)
    real = crm_webhook.store.client.transact_write_items
    transactions: list[int] = []

    def counted(**kwargs: Any) -> Any:
        transactions.append(len(kwargs["TransactItems"]))
        return real(**kwargs)

    monkeypatch.setattr(crm_webhook.store.client, "transact_write_items", counted)

    # When it is delivered
    status, _, _ = send_generic(crm_webhook, generic_event(email=None, contact_emails=emails))

    # Then one transaction of 100 items wrote the event, the state, 49 links and 49 offline leads
    assert status == 200
    assert transactions == [100]
    for email in emails:
        lead = store.get_lead(lead_id_for(email))
        assert lead is not None and lead.email == email
        assert [link.deal_id for link in store.deals_of_lead(lead_id_for(email))] == ["D-1042"]
    assert len(table_items(dynamodb)) == 100


def test_a_contact_who_filled_a_form_keeps_their_profile_and_only_new_contacts_become_offline_leads(
    store,
):
    # Given Ada filled a form (her lead has a submission), Grace never did
    identify = load_function("identify")
    assert invoke(identify, api_event("POST", "/identify", body={"email": ADA, "company": "Acme"}))[0] == 200
    ada_before = store.get_lead(lead_id_for(ADA))
    event = DealEvent(
        crm=CrmName.GENERIC,
        event_id="e1",
        deal_id="D-9",
        lifecycle=DealLifecycle.OPEN,
        occurred_at=1_000,
        version=1,
        contact_emails=(ADA, GRACE),
    )

    # When a deal names them both
    recorded = record_deal_event(event, store=store, received_at=5_000)

    # Then the deal is stored, Ada's profile is untouched, and only Grace's lead is created
    assert (recorded.applied, recorded.offline_leads) == (True, 1)
    assert store.get_lead(lead_id_for(ADA)) == ada_before
    grace = store.get_lead(lead_id_for(GRACE))
    assert grace is not None and (grace.email, grace.submissions, grace.created_at) == (GRACE, 0, 5_000)
    deal = store.get_deal("generic", "D-9")
    assert deal is not None and deal.lead_ids == (lead_id_for(ADA), lead_id_for(GRACE))


def test_a_deal_keeps_its_first_contact_and_the_latest_ones_up_to_100(store):
    # Given three events of one deal naming 145 contacts in all, the last naming two early ones again
    names = contacts(0, 145)
    batches = [names[:49], names[49:98], [names[0], names[10], *names[98:]]]

    # When they are recorded in order
    for version, batch in enumerate(batches, start=1):
        event = DealEvent(
            crm=CrmName.GENERIC,
            event_id=f"e{version}",
            deal_id="D-crowded",
            lifecycle=DealLifecycle.OPEN,
            occurred_at=version * 1_000,
            version=version,
            contact_emails=tuple(batch),
        )
        assert record_deal_event(event, store=store, received_at=version * 10_000).applied

    # Then the deal keeps 100, in their order: its first contact, the last event's, then the most
    # recent others (the oldest dropped)
    deal = store.get_deal("generic", "D-crowded")
    assert deal is not None
    kept = [names[0], names[10], *names[47:]]
    assert deal.contact_emails == tuple(kept)
    assert deal.lead_ids == tuple(lead_id_for(email) for email in kept)
    # And a dropped contact's lead still links to the deal (erasure finds it through the link)
    assert [link.deal_id for link in store.deals_of_lead(lead_id_for(names[1]))] == ["D-crowded"]
    assert store.get_lead(lead_id_for(names[1])) is not None
