"""The generic webhook: a documented JSON shape any other CRM or automation tool (Zapier, Make, n8n, a
script) can send, signed with a shared secret.

Signature: ``X-Closedloop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.
The timestamp must be within 5 minutes of the server's clock; several ``v1=`` entries may be sent
while a secret is being rotated. The body is one event object, or ``{"events": [...]}`` with up to 100.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from closedloop.crm._common import check_body, current_ms, describe, load_json, to_ms
from closedloop.crm.config import GenericConfig
from closedloop.crm.errors import WebhookAuthError, WebhookPayloadError
from closedloop.crm.models import (
    MAX_DEAL_TIME_MS,
    MAX_DEAL_VERSION,
    CrmName,
    DealEvent,
    DealLifecycle,
    WebhookRequest,
)
from closedloop.crm.money import normalise_currency, parse_amount

__all__ = [
    "GENERIC_SIGNATURE_HEADER",
    "GenericDealPayload",
    "parse_generic",
    "sign_generic",
    "verify_generic_signature",
]

GENERIC_SIGNATURE_HEADER: Final = "X-Closedloop-Signature"
GENERIC_MAX_AGE_SECONDS: Final = 5 * 60
GENERIC_MAX_EVENTS: Final = 100


def _digest(secret: str, body: bytes, timestamp: int | str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_generic(secret: str, body: bytes, timestamp: int) -> str:
    """Compute the ``X-Closedloop-Signature`` header value for a body (senders, tests, the demo).

    Parameters
    ----------
    secret
        ``generic.signing_secret`` of the webhook secret.
    body
        The exact bytes that will be sent.
    timestamp
        Unix time in seconds, normally now.

    Returns
    -------
    str
        ``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``.
    """
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def verify_generic_signature(request: WebhookRequest, secret: str, *, now_ms: int | None = None) -> None:
    """Check ``X-Closedloop-Signature`` in constant time, with a 5-minute window.

    Raises
    ------
    WebhookAuthError
        When the header is missing or malformed, the timestamp is more than 5 minutes off, or no
        ``v1`` signature matches.
    """
    header = request.header(GENERIC_SIGNATURE_HEADER)
    if not header:
        raise WebhookAuthError(f"the request has no {GENERIC_SIGNATURE_HEADER} header")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value.strip()
        elif key == "v1":
            signatures.append(value.strip().lower())
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise WebhookAuthError(f"{GENERIC_SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex>")
    if abs(current_ms(now_ms) // 1000 - int(timestamp)) > GENERIC_MAX_AGE_SECONDS:
        raise WebhookAuthError("the signature timestamp is more than 5 minutes off")
    expected = _digest(secret, request.body, timestamp).encode()
    # Compare against every v1 entry (no early exit) so timing does not reveal which one matched.
    matches = [hmac.compare_digest(expected, signature.encode()) for signature in signatures]
    if not any(matches):
        raise WebhookAuthError("the signature does not match")


class GenericDealPayload(BaseModel):
    """One deal event in the generic webhook's documented shape (see ``docs/crm-setup.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[
        str, Field(min_length=1, max_length=256, description="Unique per event; resends reuse it.")
    ]
    deal_id: Annotated[str, Field(min_length=1, max_length=256, description="The deal's id in your system.")]
    status: Annotated[Literal["open", "won", "lost", "deleted"], Field(description="Where the deal is.")]
    occurred_at: Annotated[AwareDatetime, Field(description="ISO 8601 with a time zone.")]
    contact_email: Annotated[str | None, Field(max_length=320)] = None
    contact_emails: Annotated[list[Annotated[str, Field(max_length=320)]], Field(max_length=50)] = []
    pipeline: Annotated[str | None, Field(max_length=256)] = None
    stage: Annotated[str | None, Field(max_length=256)] = None
    amount: Annotated[Decimal | None, Field(description='A number or a decimal string, e.g. "1200.50".')] = (
        None
    )
    currency: Annotated[str | None, Field(description="ISO 4217, required with an amount.")] = None
    close_date: date | None = None
    created_at: AwareDatetime | None = None
    version: Annotated[
        int | None,
        Field(ge=0, le=MAX_DEAL_VERSION, description="Your ordering key; occurred_at in ms when omitted."),
    ] = None

    @field_validator("occurred_at", "created_at", mode="after")
    @classmethod
    def _storable_time(cls, value: datetime | None) -> datetime | None:
        if value is not None and not 0 <= value.timestamp() * 1000 <= MAX_DEAL_TIME_MS:
            raise ValueError("must be between 1970 and 2100")
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: object) -> object:
        return parse_amount(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: object) -> object:
        return normalise_currency(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _currency_with_amount(self) -> Self:
        if self.amount is not None and self.currency is None:
            raise ValueError("currency is required when amount is given")
        return self

    def to_event(self) -> DealEvent:
        """Return the normalised deal event."""
        occurred_at = to_ms(self.occurred_at) or 0
        return DealEvent(
            crm=CrmName.GENERIC,
            event_id=self.event_id,
            deal_id=self.deal_id,
            lifecycle=DealLifecycle(self.status),
            occurred_at=occurred_at,
            version=self.version if self.version is not None else occurred_at,
            contact_emails=(*([self.contact_email] if self.contact_email else []), *self.contact_emails),
            pipeline=self.pipeline,
            stage=self.stage,
            amount=self.amount,
            currency=self.currency,
            close_date=self.close_date,
            created_at=to_ms(self.created_at),
        )


def parse_generic(
    request: WebhookRequest, config: GenericConfig, *, now_ms: int | None = None
) -> list[DealEvent]:
    """Verify a generic webhook and read its deal events.

    Parameters
    ----------
    request
        The delivery, with ``X-Closedloop-Signature``.
    config
        The ``generic`` section of the webhook secret.
    now_ms
        The clock, ms (tests).

    Returns
    -------
    list of DealEvent
        One per event in the body.

    Raises
    ------
    WebhookAuthError
        Missing, wrong or stale signature (401).
    WebhookPayloadError
        A body that is not the documented shape; the message names each wrong field (400).
    """
    check_body(request)
    verify_generic_signature(request, config.signing_secret.get_secret_value(), now_ms=now_ms)
    body = load_json(request.body, "generic")
    if isinstance(body, dict) and set(body) == {"events"}:
        items = body["events"]
        if not isinstance(items, list) or not items or len(items) > GENERIC_MAX_EVENTS:
            raise WebhookPayloadError(f"events must be a list of 1 to {GENERIC_MAX_EVENTS} event objects")
    else:
        items = [body]
    events: list[DealEvent] = []
    for index, item in enumerate(items):
        what = "generic deal event" if len(items) == 1 else f"generic deal event {index}"
        try:
            events.append(GenericDealPayload.model_validate(item).to_event())
        except ValidationError as exc:
            raise describe(exc, what) from None
    return events
