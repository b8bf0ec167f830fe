"""Salesforce outbound messages: the SOAP envelope as Salesforce documents it, the URL token and org
check, the acknowledgement, and the XML attacks defusedxml must stop."""

from __future__ import annotations

import xml.etree.ElementTree as StdlibElementTree
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import (
    CrmName,
    DealLifecycle,
    SalesforceConfig,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_salesforce,
    salesforce_ack,
)

URL_TOKEN = "s3cr3t-url-token-0123456789abcdef"
ORG_18 = "00D000000000062EAA"
ORG_15 = ORG_18[:15]
URL = f"https://api.acme.test/webhooks/salesforce?token={URL_TOKEN}"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def config(**overrides: Any) -> SalesforceConfig:
    return SalesforceConfig.model_validate({"url_token": URL_TOKEN, "organization_id": ORG_15, **overrides})


def opportunity(
    notification_id: str = "04l000000000001AAA",
    *,
    opportunity_id: str = "006D000000IRFmaIAH",
    stage: str = "Closed Won",
    is_won: str | None = "true",
    is_closed: str | None = "true",
    modified: str | None = "2026-11-19T08:00:00.000Z",
    email: str = "Ada@Example.com",
    sobject_type: str = "sf:Opportunity",
    extra: str = "",
) -> str:
    """One <Notification> with the Opportunity fields an admin selects, as Salesforce sends them."""
    flags = "".join(
        f"<sf:{name}>{value}</sf:{name}>"
        for name, value in (("IsWon", is_won), ("IsClosed", is_closed))
        if value
    )
    modified_field = f"<sf:LastModifiedDate>{modified}</sf:LastModifiedDate>" if modified else ""
    return (
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{opportunity_id}</sf:Id>"
        "<sf:Amount>125000.0</sf:Amount>"
        "<sf:CloseDate>2026-12-15</sf:CloseDate>"
        "<sf:Contact_Email__c>" + email + "</sf:Contact_Email__c>"
        "<sf:CreatedDate>2026-10-01T09:30:00.000Z</sf:CreatedDate>"
        "<sf:CurrencyIsoCode>EUR</sf:CurrencyIsoCode>"
        f"{flags}{modified_field}"
        f"<sf:StageName>{stage}</sf:StageName>{extra}"
        "</sObject></Notification>"
    )


def envelope(*notifications: str, org: str = ORG_18) -> bytes:
    """The outbound message envelope of Salesforce's outbound messaging WSDL."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k000000000003AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D000000000062</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D000000000062</PartnerUrl>"
        + "".join(notifications)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def request(body: bytes, url: str = URL) -> WebhookRequest:
    return WebhookRequest(url=url, headers={"Content-Type": "text/xml; charset=utf-8"}, body=body)


def test_an_outbound_message_becomes_one_event_per_notification() -> None:
    body = envelope(
        opportunity("04l000000000001AAA"),
        opportunity(
            "04l000000000002AAA",
            opportunity_id="006D000000IRFmbIAH",
            stage="Prospecting",
            is_won="false",
            is_closed="false",
        ),
    )
    events = parse_salesforce(request(body), config())
    assert [e.event_id for e in events] == ["04l000000000001AAA", "04l000000000002AAA"]
    won = events[0]
    assert won.crm is CrmName.SALESFORCE
    assert won.deal_id == "006D000000IRFmaIAH"
    assert won.lifecycle is DealLifecycle.WON
    assert won.stage == "Closed Won"
    assert won.amount == Decimal("125000.0")
    assert won.currency == "EUR"
    assert won.close_date == date(2026, 12, 15)
    assert won.contact_emails == ("ada@example.com",)
    assert won.version == won.occurred_at == ms(datetime(2026, 11, 19, 8, 0, tzinfo=UTC))
    assert won.created_at == ms(datetime(2026, 10, 1, 9, 30, tzinfo=UTC))
    assert events[1].lifecycle is DealLifecycle.OPEN


def test_the_acknowledgement_is_the_notifications_response_envelope() -> None:
    root = StdlibElementTree.fromstring(salesforce_ack())
    soap = "{http://schemas.xmlsoap.org/soap/envelope/}"
    outbound = "{http://soap.sforce.com/2005/09/outbound}"
    assert root.tag == f"{soap}Envelope"
    ack = root.find(f"{soap}Body/{outbound}notificationsResponse/{outbound}Ack")
    assert ack is not None
    assert ack.text == "true"
    refused = StdlibElementTree.fromstring(salesforce_ack(ok=False))
    assert refused.findtext(f"{soap}Body/{outbound}notificationsResponse/{outbound}Ack") == "false"


def test_a_redelivered_notification_has_the_same_dedupe_key() -> None:
    body = envelope(opportunity("04l000000000009AAA"))
    first = parse_salesforce(request(body), config())
    second = parse_salesforce(request(body), config())
    assert first[0].dedupe_key == second[0].dedupe_key == "salesforce#04l000000000009AAA"


@pytest.mark.parametrize(
    ("is_won", "is_closed", "stage", "rules", "lifecycle"),
    [
        ("true", "true", "Closed Won", {}, DealLifecycle.WON),
        ("false", "true", "Closed Lost", {}, DealLifecycle.LOST),
        ("false", "false", "Negotiation/Review", {}, DealLifecycle.OPEN),
        # a renamed won stage: the flags still tell
        ("true", "true", "Signed", {}, DealLifecycle.WON),
        # flags not in the message: the stage rules decide
        (None, None, "Closed Lost", {}, DealLifecycle.LOST),
        (None, None, "Signed", {"won_stages": ["Signed"]}, DealLifecycle.WON),
        (None, None, "Qualification", {}, DealLifecycle.OPEN),
    ],
)
def test_won_and_closed_flags_then_stage_rules_give_the_lifecycle(
    is_won: str | None, is_closed: str | None, stage: str, rules: dict[str, Any], lifecycle: DealLifecycle
) -> None:
    body = envelope(opportunity(stage=stage, is_won=is_won, is_closed=is_closed))
    [event] = parse_salesforce(request(body), config(**rules))
    assert event.lifecycle is lifecycle


def test_the_mapped_contact_email_field_and_pipeline_field_are_read() -> None:
    extra = (
        "<sf:Buyer_Email__c>grace@example.org; ada@example.com</sf:Buyer_Email__c>"
        "<sf:RecordTypeId>012000000000001</sf:RecordTypeId>"
    )
    body = envelope(opportunity(extra=extra))
    [event] = parse_salesforce(
        request(body), config(contact_email_field="Buyer_Email__c", pipeline_field="RecordTypeId")
    )
    assert event.contact_emails == ("grace@example.org", "ada@example.com")
    assert event.pipeline == "012000000000001"


def test_an_org_configured_with_its_18_character_id_accepts_messages() -> None:
    [event] = parse_salesforce(request(envelope(opportunity(), org=ORG_18)), config(organization_id=ORG_18))
    assert event.deal_id == "006D000000IRFmaIAH"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("https://api.acme.test/webhooks/salesforce", envelope(opportunity())),
        ("https://api.acme.test/webhooks/salesforce?token=guess", envelope(opportunity())),
        (URL, envelope(opportunity(), org="00D000000000099EAA")),
    ],
    ids=["no token", "wrong token", "another org"],
)
def test_missing_token_wrong_token_or_another_org_is_refused(url: str, body: bytes) -> None:
    with pytest.raises(WebhookAuthError):
        parse_salesforce(request(body, url), config())


def test_the_token_is_checked_before_the_body_is_parsed() -> None:
    with pytest.raises(WebhookAuthError):
        parse_salesforce(request(b"<not xml", "https://api.acme.test/webhooks/salesforce?token=x"), config())


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

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&xxe;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/evil.dtd">
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD], ids=["bomb", "xxe", "dtd"])
def test_entity_expansion_and_external_entities_are_refused(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="DTD or entities"):
        parse_salesforce(request(body), config())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<soapenv:Envelope", "not well-formed"),
        (b"<Envelope><Body/></Envelope>", "not a Salesforce outbound message"),
        (envelope(*(opportunity(f"04l0000000000{i:02d}AAA") for i in range(101))), "101 notifications"),
        (envelope(opportunity(sobject_type="sf:Account")), "not an Opportunity"),
        (envelope(opportunity(modified=None)), "LastModifiedDate"),
    ],
    ids=["broken xml", "not outbound", "too many", "account", "no modified date"],
)
def test_messages_the_adapter_cannot_read_are_payload_errors(body: bytes, problem: str) -> None:
    with pytest.raises(WebhookPayloadError, match=problem):
        parse_salesforce(request(body), config())


def test_a_full_message_of_100_notifications_is_accepted() -> None:
    body = envelope(*(opportunity(f"04l0000000000{i:02d}AAA") for i in range(100)))
    assert len(parse_salesforce(request(body), config())) == 100


@pytest.mark.parametrize(
    ("notification", "problem"),
    [
        (opportunity(extra="<sf:Amount>1e999</sf:Amount>"), "notification 1: amount"),
        (opportunity("04l" + "0" * 300), "notification 1: event_id"),
        (opportunity(stage="S" * 257), "notification 1: stage"),
        (opportunity(modified="1969-12-31T23:59:59.000Z"), "notification 1 LastModifiedDate"),
        (opportunity(extra="<sf:CreatedDate>1901-01-01T00:00:00Z</sf:CreatedDate>"), "CreatedDate"),
        (opportunity(extra="<sf:SystemModstamp>" + "9" * 40 + "</sf:SystemModstamp>"), "SystemModstamp"),
    ],
    ids=["amount-1e999", "long-id", "long-stage", "modified-1969", "created-1901", "40-digit-modstamp"],
)
def test_values_no_deal_event_can_hold_refuse_the_message(notification: str, problem: str) -> None:
    body = envelope(opportunity("04l000000000001AAA"), notification)
    with pytest.raises(WebhookPayloadError, match=problem) as raised:
        parse_salesforce(request(body), config())
    assert raised.value.status_code == 400
