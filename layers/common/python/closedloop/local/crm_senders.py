"""Deal-event deliveries built and signed the way each CRM sends them, for the demo's synthetic company.

- HubSpot: a workflow "Send a webhook" call (the deal's properties, legacy ``{"value": ...}`` shape),
  signed with ``X-HubSpot-Signature-v3`` over ``POST`` + ``https://{host}{path}`` + body + timestamp.
- Salesforce: an Outbound Message (SOAP 1.1) of the Opportunity, to ``/webhooks/salesforce?token=...``.
- Pipedrive: a webhooks v2 ``meta/data/previous`` body with HTTP Basic credentials. Pipedrive sends the
  person's id only; the adapter also reads a person nested with its e-mails (as v1-style payloads and
  Pipedrive automations send it), which the demo uses since it has no Pipedrive API to look persons up.
- Generic: the documented JSON event with ``X-Closedloop-Signature``.

See ``docs/crm-setup.md`` for each CRM's setup; the secrets are the local stack's ``LOCAL_CRM_SECRETS``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from closedloop.crm import GENERIC_SIGNATURE_HEADER, sign_generic, sign_hubspot_v3

__all__ = ["CrmDelivery", "DealChange", "build_delivery"]

# Each CRM's stage names for: created, moved on, won, lost.
STAGES: dict[str, tuple[str, str, str, str]] = {
    "hubspot": ("appointmentscheduled", "presentationscheduled", "closedwon", "closedlost"),
    "salesforce": ("Prospecting", "Proposal/Price Quote", "Closed Won", "Closed Lost"),
    "pipedrive": ("1", "3", "5", "5"),
    "generic": ("discovery", "proposal", "closed won", "closed lost"),
}


@dataclass(frozen=True)
class DealChange:
    """One change of a deal, as the CRM records it (``status`` is open, won or lost)."""

    crm: str
    deal_id: str
    email: str
    status: str
    step: int  # 0 created, 1 moved a stage, 2 closed
    amount: int
    currency: str
    created_at: int  # ms
    occurred_at: int  # ms, increasing along a deal's changes

    @property
    def stage(self) -> str:
        names = STAGES[self.crm]
        if self.status == "won":
            return names[2]
        if self.status == "lost":
            return names[3]
        return names[min(self.step, 1)]

    @property
    def event_id(self) -> str:
        return f"{self.crm}-{self.deal_id}-{self.step}-{self.status}"


@dataclass(frozen=True)
class CrmDelivery:
    """An HTTP request as the CRM sends it: ``POST {api}{path}`` with these headers and body."""

    crm: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hubspot(change: DealChange, secrets: dict[str, str], host: str) -> CrmDelivery:
    # A workflow webhook: the deal's properties as the legacy API returns them, and the contact's e-mail.
    properties = {
        "dealname": f"Deal {change.deal_id}",
        "dealstage": change.stage,
        "amount": str(change.amount),
        "deal_currency_code": change.currency,
        "pipeline": "default",
        "createdate": _iso(change.created_at),
        "hs_lastmodifieddate": _iso(change.occurred_at),
        "closedate": _iso(change.occurred_at) if change.status != "open" else None,
        "contact_email": change.email,
    }
    body = json.dumps(
        {
            "objectId": change.deal_id,
            "portalId": 4_461_392,
            "properties": {key: {"value": value} for key, value in properties.items() if value is not None},
        }
    ).encode()
    timestamp = int(time.time() * 1000)
    signature = sign_hubspot_v3(
        secrets["client_secret"], "POST", f"https://{host}/webhooks/hubspot", body, timestamp
    )
    return CrmDelivery(
        "hubspot",
        "/webhooks/hubspot",
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": str(timestamp),
        },
    )


def _salesforce(change: DealChange, secrets: dict[str, str]) -> CrmDelivery:
    closed = change.status in {"won", "lost"}
    fields = {
        "Id": change.deal_id,
        "Amount": f"{change.amount:.1f}",
        "CloseDate": _iso(change.occurred_at)[:10],
        "Contact_Email__c": escape(change.email),
        "CreatedDate": _iso(change.created_at),
        "CurrencyIsoCode": change.currency,
        "IsClosed": str(closed).lower(),
        "IsWon": str(change.status == "won").lower(),
        "LastModifiedDate": _iso(change.occurred_at),
        "StageName": escape(change.stage),
        "SystemModstamp": _iso(change.occurred_at),
    }
    sobject = "".join(f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items())
    # Salesforce's notification id identifies a notification across its retries.
    notification_id = "04l5e" + hashlib.sha1(change.event_id.encode()).hexdigest()[:13]  # noqa: S324 - an id
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{secrets['organization_id']}</OrganizationId>"
        "<ActionId>04k5e000000KyqaAAC</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5e000000KQ2e</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5e000000KQ2e</PartnerUrl>"
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{sobject}</sObject></Notification>"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()
    return CrmDelivery(
        "salesforce",
        f"/webhooks/salesforce?token={secrets['url_token']}",
        body,
        {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '""',
            "User-Agent": "Salesforce - OutboundMessaging",
        },
    )


def _pipedrive(change: DealChange, secrets: dict[str, str]) -> CrmDelivery:
    person = 1000 + int("".join(ch for ch in change.deal_id if ch.isdigit()) or 0)
    previous: dict[str, object] = {"stage_id": int(STAGES["pipedrive"][0])} if change.step == 1 else {}
    if change.step == 2:
        previous = {"status": "open"}
    body = json.dumps(
        {
            "meta": {
                "action": "create" if change.step == 0 else "change",
                "entity": "deal",
                "entity_id": change.deal_id,
                "id": f"pd-{change.event_id}",
                "timestamp": _iso(change.occurred_at),
                "version": "2.0",
                "webhook_id": "77",
            },
            "data": {
                "id": change.deal_id,
                "title": f"{change.deal_id} deal",
                "value": change.amount,
                "currency": change.currency,
                "status": change.status,
                "stage_id": int(change.stage),
                "pipeline_id": 1,
                "person_id": {
                    "value": person,
                    "email": [{"value": change.email, "primary": True, "label": "work"}],
                },
                "add_time": _iso(change.created_at),
                "update_time": _iso(change.occurred_at),
            },
            "previous": previous,
        }
    ).encode()
    credentials = base64.b64encode(f"{secrets['username']}:{secrets['password']}".encode()).decode()
    return CrmDelivery(
        "pipedrive",
        "/webhooks/pipedrive",
        body,
        {
            "Content-Type": "application/json",
            "Authorization": f"Basic {credentials}",
            "User-Agent": "Pipedrive Webhooks",
        },
    )


def _generic(change: DealChange, secrets: dict[str, str]) -> CrmDelivery:
    body = json.dumps(
        {
            "event_id": change.event_id,
            "deal_id": change.deal_id,
            "status": change.status,
            "stage": change.stage,
            "occurred_at": _iso(change.occurred_at),
            "created_at": _iso(change.created_at),
            "contact_email": change.email,
            "amount": str(change.amount),
            "currency": change.currency,
            "pipeline": "new business",
        }
    ).encode()
    return CrmDelivery(
        "generic",
        "/webhooks/generic",
        body,
        {
            "Content-Type": "application/json",
            GENERIC_SIGNATURE_HEADER: sign_generic(secrets["signing_secret"], body, int(time.time())),
        },
    )


def build_delivery(change: DealChange, secrets: dict[str, dict[str, str]], host: str) -> CrmDelivery:
    """Build and sign the delivery of one deal change as its CRM would send it.

    Parameters
    ----------
    change
        The deal change.
    secrets
        The webhook secret document (one section per CRM), e.g. the local stack's ``LOCAL_CRM_SECRETS``.
    host
        The ``Host`` the request is sent to (HubSpot signs the full URL ``https://{host}{path}``).

    Returns
    -------
    CrmDelivery
        The path (with its query), headers and body to ``POST``. Building it again gives the same body
        (a retry), with a fresh signature timestamp where the CRM signs one.
    """
    match change.crm:
        case "hubspot":
            return _hubspot(change, secrets["hubspot"], host)
        case "salesforce":
            return _salesforce(change, secrets["salesforce"])
        case "pipedrive":
            return _pipedrive(change, secrets["pipedrive"])
        case "generic":
            return _generic(change, secrets["generic"])
    raise ValueError(f"unknown CRM {change.crm!r}")
