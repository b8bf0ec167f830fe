"""The deal model, stage rules, the request view, the webhook secret, and money."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from closedloop.crm import (
    CrmName,
    CrmNotConfiguredError,
    CrmSecrets,
    CurrencyRateError,
    DealEvent,
    DealLifecycle,
    StageRules,
    UnknownCrmError,
    WebhookRequest,
    normalise_emails,
    parse_amount,
    to_base_currency,
)

SECRET_JSON = {
    "hubspot": {"client_secret": "hs-client-secret-value", "private_app_token": "pat-na1-token-value"},
    "salesforce": {"url_token": "sf-url-token-0123456789", "organization_id": "00D000000000062EAA"},
    "pipedrive": {
        "username": "closedloop",
        "password": "pd-password-value",
        "api_token": "pd-api-token-value",
    },
    "generic": {"signing_secret": "generic-signing-secret-value"},
}


def test_the_webhook_secret_never_prints_its_secrets() -> None:
    secrets = CrmSecrets.model_validate_json(json.dumps(SECRET_JSON))
    shown = f"{secrets!r} {secrets} {secrets.model_dump()} {secrets.model_dump_json()}"
    for section in SECRET_JSON.values():
        for key, value in section.items():
            if key not in {"organization_id", "username"}:
                assert value not in shown, key
    assert secrets.section("HubSpot") is secrets.hubspot


@pytest.mark.parametrize(
    ("crm", "error", "status"),
    [("marketo", UnknownCrmError, 404), ("pipedrive", CrmNotConfiguredError, 404)],
)
def test_unknown_or_unconfigured_crms_are_404s(crm: str, error: type[Exception], status: int) -> None:
    secrets = CrmSecrets.model_validate({"generic": SECRET_JSON["generic"]})
    with pytest.raises(error) as raised:
        secrets.section(crm)
    assert getattr(raised.value, "status_code", None) == status


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"salesforce": {**SECRET_JSON["salesforce"], "organization_id": "001000000000062"}},
        {"generic": {"signing_secret": "short"}},
        {"hubspot": {**SECRET_JSON["hubspot"], "api_base_url": "file:///etc/passwd"}},
        {"hubspot": {**SECRET_JSON["hubspot"], "won_stages": ["x"], "lost_stages": ["X"]}},
        {"zoho": {}},
    ],
    ids=["empty", "not an org id", "weak secret", "file url", "won and lost", "unknown crm"],
)
def test_invalid_webhook_secrets_are_refused_at_cold_start(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CrmSecrets.model_validate(document)


@pytest.mark.parametrize(
    ("crm", "stage", "lifecycle"),
    [
        (CrmName.HUBSPOT, "closedwon", DealLifecycle.WON),
        (CrmName.HUBSPOT, " ClosedLost ", DealLifecycle.LOST),
        (CrmName.HUBSPOT, "presentationscheduled", None),
        (CrmName.SALESFORCE, "closed won", DealLifecycle.WON),
        (CrmName.PIPEDRIVE, "closedwon", None),
        (CrmName.GENERIC, None, None),
    ],
)
def test_default_stage_rules(crm: CrmName, stage: str | None, lifecycle: DealLifecycle | None) -> None:
    assert StageRules.for_crm(crm).lifecycle_for(stage) is lifecycle


def test_configured_stages_add_to_the_defaults() -> None:
    secrets = CrmSecrets.model_validate({"hubspot": {**SECRET_JSON["hubspot"], "won_stages": ["1234567"]}})
    assert secrets.hubspot is not None
    rules = secrets.hubspot.stage_rules
    assert rules.lifecycle_for("1234567") is DealLifecycle.WON
    assert rules.lifecycle_for("closedwon") is DealLifecycle.WON


def deal(**fields: Any) -> DealEvent:
    values: dict[str, Any] = {
        "crm": "pipedrive",
        "event_id": "e1",
        "deal_id": "42",
        "lifecycle": "won",
        "occurred_at": 1,
        "version": 1,
        **fields,
    }
    return DealEvent.model_validate(values)


def test_a_deal_event_normalises_currency_and_emails() -> None:
    event = deal(currency="usd", amount="10.10", contact_emails=["A@X.io", "a@x.io ", "b@y.io"])
    assert (event.currency, event.amount) == ("USD", Decimal("10.10"))
    assert event.contact_emails == ("a@x.io", "b@y.io")
    assert event.dedupe_key == "pipedrive#e1"


@pytest.mark.parametrize(
    "fields",
    [
        {"currency": "US"},
        {"contact_emails": ["nobody"]},
        {"lifecycle": "pending"},
        {"event_id": ""},
        {"crm": "zoho"},
    ],
)
def test_invalid_deal_events_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        deal(**fields)


def test_normalise_emails_drops_junk_and_splits_lists() -> None:
    assert normalise_emails([None, "", "x", "A@B.co; c@d.io", 5, "a@b.co"]) == ("a@b.co", "c@d.io")


def test_the_request_view_reads_headers_and_query_whatever_their_source() -> None:
    request = WebhookRequest(method="post", url="https://h.test/p?token=a%2Fb&x=1", headers={"X-Foo": "1"})
    assert (request.method, request.header("x-foo"), request.header("X-FOO")) == ("POST", "1", "1")
    assert request.query_param("token") == "a/b"
    assert WebhookRequest(url="https://h.test/p?token=1", query={"token": "2"}).query_param("token") == "2"


@pytest.mark.parametrize(
    ("amount", "currency", "base", "expected"),
    [
        (Decimal("100"), "eur", "USD", Decimal("100") * Decimal("1.08")),
        (Decimal("100"), "USD", "usd", Decimal("100")),
        (Decimal("2500"), "JPY", "USD", Decimal("2500") * Decimal("0.0067")),
    ],
)
def test_to_base_currency(amount: Decimal, currency: str, base: str, expected: Decimal) -> None:
    rates = {"EUR": Decimal("1.08"), "jpy": Decimal("0.0067")}
    assert to_base_currency(amount, currency, rates, base) == expected


@pytest.mark.parametrize("rates", [{}, {"GBP": Decimal("0")}, {"GBP": Decimal("-1")}])
def test_to_base_currency_without_a_usable_rate(rates: dict[str, Decimal]) -> None:
    with pytest.raises(CurrencyRateError):
        to_base_currency(Decimal("1"), "GBP", rates, "EUR")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1200.50", Decimal("1200.50")), (7, Decimal(7)), (0.1, Decimal("0.1")), ("", None), (None, None)],
)
def test_parse_amount_is_exact(value: object, expected: Decimal | None) -> None:
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value", ["1,200.50", "Infinity", "abc", True, [1]])
def test_parse_amount_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(ValueError, match=r"number|boolean"):
        parse_amount(value)
