"""The generic signed JSON webhook: the signature computed independently, its 5-minute window, and the
documented event shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import (
    CrmName,
    DealLifecycle,
    GenericConfig,
    WebhookAuthError,
    WebhookPayloadError,
    WebhookRequest,
    parse_generic,
    sign_generic,
)

SECRET = "whsec-generic-0123456789abcdef"
NOW_S = 1_795_000_000
NOW_MS = NOW_S * 1000
URL = "https://api.acme.test/webhooks/generic"
CONFIG = GenericConfig.model_validate({"signing_secret": SECRET})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """As documented: hex HMAC-SHA256 with the shared secret over "<t>.<body>"."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "evt_0001",
        "deal_id": "D-42",
        "contact_email": "Ada@Example.com",
        "pipeline": "new business",
        "stage": "contract signed",
        "status": "won",
        "amount": "1200.50",
        "currency": "eur",
        "occurred_at": "2026-11-19T08:00:00Z",
        **fields,
    }


def request(body: bytes, header: str | None) -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Closedloop-Signature"] = header
    return WebhookRequest(url=URL, headers=headers, body=body)


def signed(payload: object, *, secret: str = SECRET, timestamp: int = NOW_S - 10) -> WebhookRequest:
    body = json.dumps(payload).encode()
    return request(body, f"t={timestamp},v1={signature(secret, timestamp, body)}")


def test_sign_generic_matches_the_documented_scheme() -> None:
    body = b'{"event_id":"evt_1"}'
    assert sign_generic(SECRET, body, NOW_S) == f"t={NOW_S},v1={signature(SECRET, NOW_S, body)}"


def test_a_signed_event_becomes_a_deal_event() -> None:
    [deal] = parse_generic(signed(event()), CONFIG, now_ms=NOW_MS)
    occurred = int(datetime(2026, 11, 19, 8, tzinfo=UTC).timestamp() * 1000)
    assert deal.crm is CrmName.GENERIC
    assert (deal.event_id, deal.deal_id, deal.lifecycle) == ("evt_0001", "D-42", DealLifecycle.WON)
    assert (deal.amount, deal.currency) == (Decimal("1200.50"), "EUR")
    assert deal.contact_emails == ("ada@example.com",)
    assert (deal.pipeline, deal.stage) == ("new business", "contract signed")
    assert deal.version == deal.occurred_at == occurred
    assert deal.dedupe_key == "generic#evt_0001"


def test_a_batch_of_events_and_optional_fields() -> None:
    payload = {
        "events": [
            event(event_id="e1", status="open", amount=None, currency=None, contact_email=None),
            event(
                event_id="e2",
                status="lost",
                contact_emails=["a@example.com", "b@example.com"],
                close_date="2026-12-31",
                created_at="2026-10-01T00:00:00+02:00",
                version=7,
            ),
        ]
    }
    first, second = parse_generic(signed(payload), CONFIG, now_ms=NOW_MS)
    assert (first.lifecycle, first.amount, first.contact_emails) == (DealLifecycle.OPEN, None, ())
    assert second.contact_emails == ("ada@example.com", "a@example.com", "b@example.com")
    assert (second.version, second.close_date) == (7, date(2026, 12, 31))
    assert second.created_at == int(datetime(2026, 9, 30, 22, tzinfo=UTC).timestamp() * 1000)


def test_several_v1_signatures_are_accepted_during_a_secret_rotation() -> None:
    body = json.dumps(event()).encode()
    header = (
        f"t={NOW_S},v1={signature('the-old-secret-000000', NOW_S, body)},v1={signature(SECRET, NOW_S, body)}"
    )
    assert len(parse_generic(request(body, header), CONFIG, now_ms=NOW_MS)) == 1


@pytest.mark.parametrize(
    ("make", "case"),
    [
        (lambda: signed(event(), secret="not-the-secret-000000"), "wrong secret"),
        (lambda: signed(event(), timestamp=NOW_S - 301), "stale"),
        (lambda: signed(event(), timestamp=NOW_S + 301), "future"),
        (lambda: request(json.dumps(event()).encode(), None), "missing"),
        (lambda: request(json.dumps(event()).encode(), "sha256=abc"), "malformed"),
        (
            lambda: request(
                json.dumps(event(amount="1")).encode(),
                f"t={NOW_S},v1={signature(SECRET, NOW_S, json.dumps(event()).encode())}",
            ),
            "body changed",
        ),
        (
            lambda: request(
                json.dumps(event()).encode(),
                f"t={NOW_S - 1},v1={signature(SECRET, NOW_S, json.dumps(event()).encode())}",
            ),
            "timestamp changed",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_stale_or_missing_signatures_are_refused(make: Any, case: str) -> None:
    with pytest.raises(WebhookAuthError):
        parse_generic(make(), CONFIG, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (event(status="pending"), "status"),
        (event(amount="12,5"), "amount"),
        (event(amount="NaN"), "amount"),
        (event(currency="euro"), "currency"),
        (event(currency=None), "currency is required"),
        (event(occurred_at="2026-11-19T08:00:00"), "occurred_at"),  # no time zone
        (event(deal_id=""), "deal_id"),
        (event(contact_emails=["not-an-email"]), "contact"),
        (event(surprise=1), "surprise"),
        ({"events": []}, "events"),
        ({k: v for k, v in event().items() if k != "event_id"}, "event_id"),
    ],
)
def test_payload_errors_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(WebhookPayloadError, match=field) as raised:
        parse_generic(signed(payload), CONFIG, now_ms=NOW_MS)
    assert raised.value.status_code == 400
    # never echo the sender's values back (they may be personal data)
    assert "not-an-email" not in str(raised.value)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (event(version=10**40), "version"),  # once a decimal.Rounded from DynamoDB, a 500
        (event(occurred_at="1969-07-20T20:17:00Z"), "occurred_at"),
        (event(occurred_at="9999-12-31T00:00:00Z"), "occurred_at"),
        (event(created_at="1900-01-01T00:00:00Z"), "created_at"),
    ],
    ids=["version-1e40", "before-1970", "after-2100", "created-1900"],
)
def test_values_the_store_cannot_keep_are_payload_errors_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(WebhookPayloadError, match=field):
        parse_generic(signed(payload), CONFIG, now_ms=NOW_MS)


def test_one_unstorable_event_refuses_the_whole_batch() -> None:
    batch = {"events": [event(event_id="fine-1"), event(event_id="bad-2", version=10**40)]}
    with pytest.raises(WebhookPayloadError, match="generic deal event 1: version"):
        parse_generic(signed(batch), CONFIG, now_ms=NOW_MS)
