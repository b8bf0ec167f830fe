"""Salesforce: Outbound Messages (SOAP 1.1) of Opportunity records.

An outbound message carries no custom header and no signature, so it authenticates the way Salesforce
allows: a long random token in the endpoint URL (``?token=...``, compared in constant time) and the
sending org's id in the message, checked against the configured one. The XML is parsed with
``defusedxml`` and no DTD at all, which rules out entity expansion (billion laughs) and external
entities (XXE).

A message holds up to 100 notifications. Delivery is at least once and possibly out of order: each
notification's ``Id`` identifies it across retries, and ``SystemModstamp`` / ``LastModifiedDate``
order them. Salesforce retries for up to 24 hours until it gets :func:`salesforce_ack`.
"""

from __future__ import annotations

import hmac
import html
from typing import Final
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from closedloop.crm._common import (
    check_body,
    deal_event,
    lenient_amount,
    lenient_currency,
    text,
    to_date,
    to_ms,
)
from closedloop.crm.config import SalesforceConfig
from closedloop.crm.errors import WebhookAuthError, WebhookPayloadError
from closedloop.crm.models import CrmName, DealEvent, DealLifecycle, WebhookRequest, normalise_emails

__all__ = [
    "SALESFORCE_MAX_NOTIFICATIONS",
    "parse_salesforce",
    "salesforce_ack",
    "salesforce_fault",
    "verify_salesforce_token",
]

SALESFORCE_MAX_NOTIFICATIONS: Final = 100
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"

_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}">\n'
    "  <soapenv:Body>\n"
    f'    <notificationsResponse xmlns="{_OUTBOUND}">\n'
    "      <Ack>{ack}</Ack>\n"
    "    </notificationsResponse>\n"
    "  </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
)


_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}">\n'
    "  <soapenv:Body>\n"
    "    <soapenv:Fault>\n"
    "      <faultcode>soapenv:{code}</faultcode>\n"
    "      <faultstring>{message}</faultstring>\n"
    "    </soapenv:Fault>\n"
    "  </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
)


def salesforce_fault(message: str, *, server: bool) -> str:
    """The SOAP fault Salesforce shows the admin for a refused message (``server``: a 5xx, it retries)."""
    return _FAULT.format(code="Server" if server else "Client", message=html.escape(message))


def salesforce_ack(ok: bool = True) -> str:
    """Return the SOAP answer Salesforce waits for (content type ``text/xml; charset=utf-8``).

    Parameters
    ----------
    ok
        ``True`` acknowledges every notification of the message; ``False`` asks Salesforce to retry.

    Returns
    -------
    str
        The ``notificationsResponse`` envelope with ``<Ack>true</Ack>`` (or ``false``).
    """
    return _ACK.format(ack="true" if ok else "false")


def verify_salesforce_token(request: WebhookRequest, url_token: str) -> None:
    """Check the ``token`` query parameter of the endpoint URL in constant time.

    Raises
    ------
    WebhookAuthError
        When the token is missing or wrong.
    """
    given = request.query_param("token")
    if not given:
        raise WebhookAuthError("the Salesforce endpoint URL has no token parameter")
    if not hmac.compare_digest(given.encode(), url_token.encode()):
        raise WebhookAuthError("the Salesforce endpoint token does not match")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: Element, name: str) -> Element | None:
    return next((child for child in parent if _local(child.tag) == name), None)


def _value(element: Element | None) -> str | None:
    if element is None or element.get(f"{{{_XSI}}}nil") == "true":
        return None
    return text(element.text)


def _flag(fields: dict[str, str | None], name: str) -> bool | None:
    value = fields.get(name)
    return None if value is None else value.strip().lower() == "true"


def _same_org(given: str, configured: str) -> bool:
    # 18-character ids are the 15-character (case-sensitive) id plus a checksum suffix.
    return given[:15] == configured[:15]


def _notification_event(notification: Element, index: int, config: SalesforceConfig) -> DealEvent:
    notification_id = _value(_child(notification, "Id"))
    sobject = _child(notification, "sObject")
    if notification_id is None or sobject is None:
        raise WebhookPayloadError(f"Salesforce notification {index} has no Id or sObject")
    sobject_type = _local(sobject.get(f"{{{_XSI}}}type") or "")
    if sobject_type.rsplit(":", 1)[-1] != "Opportunity":
        raise WebhookPayloadError(
            f"Salesforce notification {index} is not an Opportunity: point only Opportunity outbound "
            "messages at this endpoint"
        )
    fields = {_local(child.tag): _value(child) for child in sobject}
    deal_id = fields.get("Id")
    if deal_id is None:
        raise WebhookPayloadError(f"Salesforce notification {index} has no Opportunity Id")
    where = f"Salesforce notification {index}"
    modified = to_ms(fields.get("LastModifiedDate"), field=f"{where} LastModifiedDate")
    version = to_ms(fields.get("SystemModstamp"), field=f"{where} SystemModstamp") or modified
    if version is None:
        raise WebhookPayloadError(
            f"Salesforce notification {index} lacks LastModifiedDate: add it (or SystemModstamp) to the "
            "outbound message's fields, it orders the notifications"
        )

    stage = fields.get("StageName")
    won, closed = _flag(fields, "IsWon"), _flag(fields, "IsClosed")
    if _flag(fields, "IsDeleted"):
        lifecycle = DealLifecycle.DELETED
    elif won:
        lifecycle = DealLifecycle.WON
    elif closed:
        lifecycle = DealLifecycle.LOST
    elif won is None and closed is None:
        lifecycle = config.stage_rules.lifecycle_for(stage) or DealLifecycle.OPEN
    else:
        lifecycle = DealLifecycle.OPEN

    return deal_event(
        where,
        crm=CrmName.SALESFORCE,
        event_id=notification_id,
        deal_id=deal_id,
        lifecycle=lifecycle,
        occurred_at=modified or version,
        version=version,
        contact_emails=normalise_emails([fields.get(config.contact_email_field)]),
        pipeline=fields.get(config.pipeline_field) if config.pipeline_field else None,
        stage=stage,
        amount=lenient_amount(fields.get("Amount")),
        currency=lenient_currency(fields.get("CurrencyIsoCode"), config.default_currency),
        close_date=to_date(fields.get("CloseDate"), field=f"{where} CloseDate"),
        created_at=to_ms(fields.get("CreatedDate"), field=f"{where} CreatedDate"),
    )


def parse_salesforce(request: WebhookRequest, config: SalesforceConfig) -> list[DealEvent]:
    """Authenticate a Salesforce outbound message and turn its notifications into deal events.

    Parameters
    ----------
    request
        The POST of the outbound message (``text/xml``), with the ``token`` query parameter.
    config
        The ``salesforce`` section of the webhook secret.

    Returns
    -------
    list of DealEvent
        One per notification, in message order. Answer :func:`salesforce_ack` once they are stored
        (duplicates included: acknowledging a duplicate stops the retries).

    Raises
    ------
    WebhookAuthError
        Missing or wrong URL token, or a message from another org (401).
    WebhookPayloadError
        Not a well-formed outbound message, a DTD or entity in it, more than 100 notifications,
        an object other than Opportunity, no modification date, or a value no deal event can hold
        (an id over 256 characters, a time before 1970, an amount of 1e999) (400); raised before
        anything of the message is stored.
    """
    check_body(request)
    verify_salesforce_token(request, config.url_token.get_secret_value())
    try:
        # A SOAP message never has a DTD; refusing any DTD also refuses every entity trick.
        root = SafeElementTree.fromstring(
            request.body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise WebhookPayloadError("the Salesforce message has a DTD or entities, which are refused") from None
    except ParseError:
        raise WebhookPayloadError("the Salesforce message is not well-formed XML") from None

    body = _child(root, "Body") if _local(root.tag) == "Envelope" else None
    notifications = _child(body, "notifications") if body is not None else None
    if notifications is None:
        raise WebhookPayloadError("not a Salesforce outbound message (no Envelope/Body/notifications)")

    organization_id = _value(_child(notifications, "OrganizationId"))
    if organization_id is None or not _same_org(organization_id, config.organization_id):
        raise WebhookAuthError("the outbound message comes from another Salesforce organization")

    items = [child for child in notifications if _local(child.tag) == "Notification"]
    if len(items) > SALESFORCE_MAX_NOTIFICATIONS:
        raise WebhookPayloadError(
            f"the message has {len(items)} notifications; Salesforce sends at most "
            f"{SALESFORCE_MAX_NOTIFICATIONS}"
        )
    return [_notification_event(item, index, config) for index, item in enumerate(items)]
