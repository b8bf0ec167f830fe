"""Property tests (hypothesis) for every parser of untrusted input.

Each parser either returns a value or raises the error the API maps to a 4xx (or, for a CRM lookup, a
503): nothing else, whatever the bytes. Round trips check that what survives parsing is what was sent.
Signatures are checked against tampering and with a constant-time comparison.
"""

from __future__ import annotations

import base64
import hmac
import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from closedloop.crm import (
    CrmApiRetryableError,
    GenericConfig,
    HubSpotConfig,
    PipedriveConfig,
    SalesforceConfig,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_generic,
    parse_hubspot,
    parse_pipedrive,
    parse_salesforce,
    sign_generic,
    sign_hubspot_v3,
)
from closedloop.errors import ClientInputError, DependencyError, InvalidInputError
from closedloop.forms import read_form
from closedloop.identify import safe_redirect
from closedloop.models.collect import CollectEvent
from closedloop.models.leads import IdentifyRequest
from closedloop.models.numbers import is_storable_number
from closedloop.traffic import UTM_MAX_LENGTH, InvalidUrlError, parse_traffic_source

SITE = "https://www.acme.test"
NOW_S = 1_795_000_000
NOW_MS = NOW_S * 1000
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
# Strings that look like URLs some of the time, and like anything the rest of the time.
url_like = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, host, rest: f"{scheme}{host}{rest}",
        st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "//", "android-app://", ""]),
        st.text(max_size=20),
        st.text(max_size=40),
    ),
)
host_names = st.from_regex(r"\A[a-z][a-z0-9]{0,9}(\.[a-z][a-z0-9]{0,9}){0,2}\.(com|org|net|io)\Z")
tag_values = st.text(min_size=1, max_size=1200).filter(lambda v: v.strip())


# -- page URLs, UTM tags and referrers ---------------------------------------------------------------


@PROPERTY
@given(page_url=url_like, referrer=st.none() | url_like)
def test_any_page_url_and_referrer_is_a_source_or_an_invalid_url(page_url: str, referrer: str | None) -> None:
    try:
        visit = parse_traffic_source(page_url, referrer, frozenset({"acme.test"}))
    except InvalidUrlError as exc:
        reason = str(exc)
    else:
        assert visit.source and visit.medium and visit.landing_path.startswith("/")
        return
    assert len(page_url) < 12 or page_url not in reason  # the reason never echoes the URL


@PROPERTY
@given(source=tag_values, medium=tag_values, campaign=tag_values, extra=st.text(max_size=20))
def test_utm_tags_arrive_as_sent_trimmed_and_cut(source: str, medium: str, campaign: str, extra: str) -> None:
    query = urlencode({"utm_source": source, "utm_medium": medium, "utm_campaign": campaign, "x": extra})

    visit = parse_traffic_source(f"{SITE}/landing?{query}", "https://www.google.com/")

    def sent(value: str) -> str:
        return value.strip()[:UTM_MAX_LENGTH].strip()

    assert (visit.source, visit.medium) == (sent(source).lower(), sent(medium).lower())
    assert visit.campaign == sent(campaign)
    assert visit.is_new_source


@PROPERTY
@given(host=host_names, path=st.text(max_size=20).map(lambda p: quote(p)))
def test_an_external_referrer_names_the_visit_and_an_own_one_does_not(host: str, path: str) -> None:
    external = parse_traffic_source(f"{SITE}/", f"https://{host}/{path}", frozenset({"acme.test"}))
    own = parse_traffic_source(f"{SITE}/", f"https://{host}.acme.test/{path}", frozenset({"acme.test"}))

    assert external.referrer_host == host and external.is_new_source
    assert external.medium in {"referral", "organic"}
    assert (own.source, own.medium, own.is_new_source) == ("(direct)", "(none)", False)


# -- form bodies ----------------------------------------------------------------------------------------

CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "text/plain",
    "application/xml",
    "",
]


@PROPERTY
@given(content_type=st.sampled_from(CONTENT_TYPES), body=st.binary(max_size=300))
def test_any_form_body_is_fields_or_a_4xx(content_type: str, body: bytes) -> None:
    try:
        fields = read_form(content_type, body)
    except ClientInputError as exc:
        status = exc.status_code
    else:
        assert isinstance(fields, dict)
        return
    assert 400 <= status < 500


field_names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,20}\Z")
field_values = st.text(max_size=50).filter(lambda v: "\r" not in v and "\n" not in v)


@PROPERTY
@given(fields=st.dictionaries(field_names, field_values, max_size=8))
def test_url_encoded_fields_round_trip(fields: dict[str, str]) -> None:
    assert read_form("application/x-www-form-urlencoded", urlencode(fields).encode()) == fields


@PROPERTY
@given(fields=st.dictionaries(field_names, field_values, min_size=1, max_size=8))
def test_multipart_fields_round_trip(fields: dict[str, str]) -> None:
    boundary = "----closedloop-7MA4YWxkTrZu0gW"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{value}\r\n"
        for name, value in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()

    assert read_form(f"multipart/form-data; boundary={boundary}", body) == fields


@PROPERTY
@given(document=st.dictionaries(st.text(max_size=15), json_values, max_size=8), email=st.emails())
def test_any_form_is_a_valid_request_whose_custom_fields_can_be_stored_or_is_refused(
    document: dict[str, Any], email: str
) -> None:
    try:
        request = IdentifyRequest.model_validate({**document, "email": email})
    except ValidationError:
        return
    for name, value in request.custom_fields.items():
        assert name.strip()
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert is_storable_number(value)


@PROPERTY
@given(props=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_event_properties_are_storable_or_refused(props: dict[str, Any]) -> None:
    event = {"event_id": "evt-00000001", "visitor_id": "V" * 20, "url": f"{SITE}/", "props": props}
    try:
        parsed = CollectEvent.model_validate(event)
    except ValidationError:
        return
    TypeSerializer().serialize(
        {k: Decimal(repr(v)) if isinstance(v, float) else v for k, v in (parsed.props or {}).items()}
    )


# -- numbers the store can keep --------------------------------------------------------------------------


def _serializes(value: int | float | Decimal) -> bool:
    """boto3's serializer is the reference, except that it lets infinities through (DynamoDB refuses)."""
    if isinstance(value, float | Decimal) and not Decimal(value).is_finite():
        return False
    try:
        TypeSerializer().serialize(Decimal(repr(value)) if isinstance(value, float) else value)
    except (ArithmeticError, TypeError, ValueError):
        return False
    return True


@PROPERTY
@given(
    value=st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats()
    | st.decimals()
    | st.builds(lambda d, e: Decimal(d).scaleb(e), st.integers(-(10**40), 10**40), st.integers(-200, 200))
)
def test_a_number_found_storable_never_fails_dynamodbs_serializer(value: int | float | Decimal) -> None:
    if is_storable_number(value):
        assert _serializes(value)


@pytest.mark.parametrize(
    ("value", "storable"),
    [
        (Decimal("1E-130"), True),
        (Decimal("9.9E-131"), False),  # boto3 would send it; DynamoDB's documented minimum is 1E-130
        (Decimal("9.9999999999999999999999999999999999999E+125"), True),
        (Decimal("1E+126"), False),
        (int("9" * 38), True),
        (int("9" * 39), False),
        (10**100, False),  # 101 digits: boto3 would have to round it
        (Decimal("1E+100"), True),
        (Decimal("-0.00"), True),
        (float("nan"), False),
        (Decimal("-Infinity"), False),
    ],
)
def test_the_documented_limits_of_dynamodb_numbers(value: int | float | Decimal, storable: bool) -> None:
    assert is_storable_number(value) is storable


# -- the redirect after an HTML form ---------------------------------------------------------------------

ALLOWED = (SITE, "https://app.acme.test")
tricky_targets = st.sampled_from(
    [
        "//evil.test/",
        "https://evil.test/",
        "https://www.acme.test.evil.test/",
        "https://www.acme.test@evil.test/",
        "https:evil.test",
        "javascript:alert(1)",
        "/\\evil.test",
        "https://www.acme.test/\r\nSet-Cookie: a=b",
        "https://www.acme.test\t.evil.test/",
        " https://evil.test",
        "/thanks.html",
        "https://app.acme.test/welcome",
    ]
)


@PROPERTY
@given(
    target=tricky_targets | url_like,
    referer=st.none() | st.sampled_from([f"{SITE}/contact", "https://evil.test/"]),
)
def test_a_redirect_goes_to_an_allowed_origin_or_is_refused(target: str, referer: str | None) -> None:
    try:
        location = safe_redirect(target, ALLOWED, referer=referer)
    except InvalidInputError:
        return
    assert any(location.lower().startswith(origin + "/") or location.lower() == origin for origin in ALLOWED)
    assert not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in location)


# -- CRM payloads ------------------------------------------------------------------------------------------

GENERIC = GenericConfig.model_validate({"signing_secret": "whsec-generic-0123456789abcdef"})
HUBSPOT = HubSpotConfig.model_validate(
    {"client_secret": "hubspot-client-secret", "private_app_token": "pat-na1-0000"}
)
PIPEDRIVE = PipedriveConfig.model_validate(
    {"username": "closedloop", "password": "pd-pass-0123", "api_token": "0" * 40, "company_domain": "acme"}
)
SALESFORCE = SalesforceConfig.model_validate(
    {"url_token": "sf-token-0123456789", "organization_id": "00D000000000062"}
)


class UnavailableApi:
    """A CRM API that is down: a lookup is a retryable dependency error (503), never a crash."""

    def fetch_deals(self, deal_ids: Any, *, deadline: float | None = None) -> Any:
        raise CrmApiRetryableError("the CRM API is down")

    def fetch_contact_emails(self, contact_ids: Any, *, deadline: float | None = None) -> tuple[str, ...]:
        raise CrmApiRetryableError("the CRM API is down")

    def fetch_person_emails(self, person_id: str) -> tuple[str, ...]:
        raise CrmApiRetryableError("the CRM API is down")


def generic_request(body: bytes, signature: str | None = None) -> WebhookRequest:
    header = (
        signature
        if signature is not None
        else sign_generic(GENERIC.signing_secret.get_secret_value(), body, NOW_S)
    )
    return WebhookRequest(
        url="https://api.acme.test/webhooks/generic",
        headers={"Content-Type": "application/json", "X-Closedloop-Signature": header},
        body=body,
    )


def hubspot_request(body: bytes) -> WebhookRequest:
    url = "https://api.acme.test/webhooks/hubspot"
    stamp = NOW_MS - 1000
    secret = HUBSPOT.client_secret.get_secret_value()
    return WebhookRequest(
        url=url,
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": str(stamp),
        },
        body=body,
    )


def pipedrive_request(body: bytes) -> WebhookRequest:
    credentials = base64.b64encode(b"closedloop:pd-pass-0123").decode()
    return WebhookRequest(
        url="https://api.acme.test/webhooks/pipedrive",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {credentials}"},
        body=body,
    )


def salesforce_request(body: bytes) -> WebhookRequest:
    return WebhookRequest(
        url="https://api.acme.test/webhooks/salesforce?token=sf-token-0123456789",
        headers={"Content-Type": "text/xml; charset=utf-8"},
        body=body,
    )


def parse(crm: str, body: bytes) -> list[Any]:
    match crm:
        case "generic":
            return parse_generic(generic_request(body), GENERIC, now_ms=NOW_MS)
        case "hubspot":
            return parse_hubspot(hubspot_request(body), HUBSPOT, client=UnavailableApi(), now_ms=NOW_MS)
        case "pipedrive":
            return parse_pipedrive(pipedrive_request(body), PIPEDRIVE, client=UnavailableApi(), now_ms=NOW_MS)
    return parse_salesforce(salesforce_request(body), SALESFORCE)


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["event_id", "deal_id", "status", "amount", "occurred_at", "events", "meta", "data"]),
        json_values,
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@PROPERTY
@pytest.mark.parametrize("crm", ["generic", "hubspot", "pipedrive", "salesforce"])
@given(body=bodies)
def test_any_authentic_body_is_deal_events_or_a_4xx_or_a_retryable_error(crm: str, body: bytes) -> None:
    try:
        events = parse(crm, body)
    except (ClientInputError, DependencyError) as exc:
        status = exc.status_code
    else:
        assert all(event.crm.value == crm for event in events)
        return
    assert 400 <= status < 500 or status == 503


@PROPERTY
@given(
    deal_id=st.text(min_size=1, max_size=40).filter(str.strip),
    stage=st.text(min_size=1, max_size=40).filter(str.strip),
    amount=st.decimals(min_value=-(10**12), max_value=10**12, places=2),
)
def test_a_valid_generic_event_arrives_exactly(deal_id: str, stage: str, amount: Decimal) -> None:
    payload = {
        "event_id": "evt-1",
        "deal_id": deal_id,
        "stage": stage,
        "status": "open",
        "amount": str(amount),
        "currency": "EUR",
        "occurred_at": "2026-11-19T08:00:00Z",
    }
    [event] = parse("generic", json.dumps(payload).encode())
    assert (event.deal_id, event.stage, event.amount, event.currency) == (deal_id, stage, amount, "EUR")


@PROPERTY
@given(
    stage=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and s.isprintable()),
    email=st.emails(),
)
def test_salesforce_field_values_arrive_unescaped(stage: str, email: str) -> None:
    from xml.sax.saxutils import escape

    from tests.unit.crm.test_salesforce import URL_TOKEN, config, envelope, opportunity, request

    [event] = parse_salesforce(
        request(envelope(opportunity(stage=escape(stage), is_won=None, is_closed=None, email=escape(email)))),
        config(),
    )
    assert event.stage == stage.strip()
    assert event.contact_emails == (email.lower(),)
    assert URL_TOKEN not in repr(event)


# Beyond the bombs tests/unit/crm/test_salesforce.py covers: a quadratic blow-up (one big entity used
# many times, which a depth limit does not catch) and a parameter entity fetching an external DTD.
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "' + b"x" * 50_000 + b'">]>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    + b"&a;" * 1000
    + b"</soapenv:Body></soapenv:Envelope>"
)
PARAMETER_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/x.dtd"> %ext;]>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/>'
    b"</soapenv:Envelope>"
)


@pytest.mark.parametrize("body", [QUADRATIC, PARAMETER_ENTITY], ids=["quadratic", "parameter-entity"])
def test_more_xml_attacks_are_refused(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError, match="DTD or entities"):
        parse_salesforce(salesforce_request(body), SALESFORCE)


# -- signatures -------------------------------------------------------------------------------------------


@PROPERTY
@given(payload=json_values, data=st.data())
def test_a_body_changed_after_signing_is_refused(payload: Any, data: st.DataObject) -> None:
    body = json.dumps({"event": payload}).encode()
    signature = sign_generic(GENERIC.signing_secret.get_secret_value(), body, NOW_S)
    index = data.draw(st.integers(0, len(body) - 1))
    flipped = body[:index] + bytes([body[index] ^ data.draw(st.integers(1, 255))]) + body[index + 1 :]

    with pytest.raises(WebhookAuthError):
        parse_generic(generic_request(flipped, signature), GENERIC, now_ms=NOW_MS)


@PROPERTY
@given(payload=json_values, secret=st.text(min_size=1, max_size=40))
def test_a_signature_with_another_secret_is_refused(payload: Any, secret: str) -> None:
    body = json.dumps(payload).encode()
    signature = sign_generic(secret, body, NOW_S)
    if secret == GENERIC.signing_secret.get_secret_value():
        return
    with pytest.raises(WebhookAuthError):
        parse_generic(generic_request(body, signature), GENERIC, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("crm", "module"),
    [
        ("generic", "closedloop.crm.generic"),
        ("hubspot", "closedloop.crm.hubspot"),
        ("pipedrive", "closedloop.crm.pipedrive"),
        ("salesforce", "closedloop.crm.salesforce"),
    ],
)
def test_every_adapter_compares_credentials_in_constant_time(
    crm: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a spy on the hmac module each adapter uses
    import importlib

    adapter = importlib.import_module(module)
    calls: list[int] = []
    real = hmac.compare_digest

    def compare_digest(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(adapter.hmac, "compare_digest", compare_digest)
    # When a delivery with the right credentials and an empty body is verified
    with pytest.raises((ClientInputError, DependencyError)):
        parse(crm, b"{}" if crm != "salesforce" else b"<x/>")
    # Then the credentials were compared with hmac.compare_digest (never ==)
    assert calls
