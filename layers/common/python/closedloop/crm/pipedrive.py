"""Pipedrive: webhooks v2 for deals, HTTP Basic authentication, and the person e-mail lookup.

Pipedrive signs nothing: a webhook authenticates with the HTTP Basic user name and password typed into
its form (compared here in constant time). A v2 body is ``{"meta": ..., "data": ..., "previous": ...}``
where ``data`` is the deal after the change and ``previous`` holds only the fields that changed (so a
``status`` in it tells a reopened deal from a new one). ``data`` carries ``person_id`` but no e-mail,
so the adapter reads the person from Pipedrive's API. Pipedrive waits 10 seconds for an answer: the
single lookup has a short timeout and a failure becomes a 503 that Pipedrive retries.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from closedloop.crm._common import (
    check_body,
    current_ms,
    deal_event,
    lenient_amount,
    lenient_currency,
    load_json,
    text,
    to_date,
    to_ms,
)
from closedloop.crm.config import PipedriveConfig
from closedloop.crm.errors import CrmApiError, CrmApiNotFoundError, WebhookAuthError, WebhookPayloadError
from closedloop.crm.http import JsonHttpClient
from closedloop.crm.models import CrmName, DealEvent, DealLifecycle, WebhookRequest, normalise_emails

__all__ = [
    "PipedriveClient",
    "PipedrivePersonReader",
    "parse_pipedrive",
    "verify_basic_auth",
]

_STATUS = {
    "open": DealLifecycle.OPEN,
    "won": DealLifecycle.WON,
    "lost": DealLifecycle.LOST,
    "deleted": DealLifecycle.DELETED,
}


def verify_basic_auth(request: WebhookRequest, username: str, password: str) -> None:
    """Check ``Authorization: Basic base64(user:password)`` in constant time.

    Raises
    ------
    WebhookAuthError
        When the header is missing, malformed, or either part is wrong.
    """
    header = (request.header("Authorization") or "").strip()
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise WebhookAuthError("the Pipedrive webhook has no HTTP Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookAuthError("the HTTP Basic credentials are not base64") from None
    given_user, colon, given_password = decoded.partition(b":")
    # Both parts are compared, always, so the time taken does not tell which one was wrong.
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (colon and user_ok and password_ok):
        raise WebhookAuthError("the HTTP Basic credentials do not match")


class PipedrivePersonReader(Protocol):
    """What the adapter needs from Pipedrive's API (:class:`PipedriveClient`, or a fake in tests)."""

    def fetch_person_emails(self, person_id: str) -> tuple[str, ...]:
        """Read a person's e-mail addresses, primary first."""
        ...


class PipedriveClient:
    """Pipedrive's API (v2 by default; v1 answers are read too), authenticated with an API token.

    Parameters
    ----------
    api_token
        A user's API token (sent as the ``x-api-token`` header, never in the URL).
    base_url
        ``https://{company_domain}.pipedrive.com/api/v2``; tests point it at a local server.
    timeout
        Seconds per call: the whole webhook must answer within Pipedrive's 10 s.
    """

    def __init__(self, api_token: str, *, base_url: str, timeout: float = 3.0) -> None:
        self._http = JsonHttpClient(
            base_url, headers={"x-api-token": api_token}, timeout=timeout, service="Pipedrive"
        )

    @classmethod
    def from_config(cls, config: PipedriveConfig) -> PipedriveClient | None:
        """Build the client from the ``pipedrive`` section; ``None`` without a token or a domain."""
        base_url = config.resolved_api_base_url
        if config.api_token is None or base_url is None:
            return None
        return cls(config.api_token.get_secret_value(), base_url=base_url, timeout=config.api_timeout_seconds)

    def fetch_person_emails(self, person_id: str) -> tuple[str, ...]:
        """``GET /persons/{id}``: the person's e-mails, primary first.

        Raises
        ------
        CrmApiNotFoundError
            When the person does not exist.
        CrmApiRetryableError
            When Pipedrive is slow, down or rate-limits.
        CrmApiError
            On any other failure.
        """
        answer = self._http.get_json(f"/persons/{quote(person_id, safe='')}")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise CrmApiError("Pipedrive API GET person: unexpected answer")
        # API v2 names the list "emails", v1 "email"; items are {"value", "primary", "label"}.
        entries = data.get("emails", data.get("email"))
        if isinstance(entries, str):
            return normalise_emails([entries])
        if not isinstance(entries, list):
            return ()
        ordered = sorted(
            (entry for entry in entries if isinstance(entry, dict)),
            key=lambda entry: entry.get("primary") is not True,
        )
        return normalise_emails(entry.get("value") for entry in ordered)


def _lifecycle(deal: Mapping[str, Any], config: PipedriveConfig) -> DealLifecycle:
    status = text(deal.get("status"))
    if status is not None and status.lower() in _STATUS:
        return _STATUS[status.lower()]
    if deal.get("is_deleted") is True:
        return DealLifecycle.DELETED
    return config.stage_rules.lifecycle_for(text(deal.get("stage_id"))) or DealLifecycle.OPEN


def _emails(deal: Mapping[str, Any], client: PipedrivePersonReader | None) -> tuple[str, ...]:
    person = deal.get("person_id")
    # v1-style payloads nest the person: {"person_id": {"value": 5, "email": [...]}}.
    if isinstance(person, dict):
        inline = person.get("email")
        if isinstance(inline, list):
            found = normalise_emails(item.get("value") for item in inline if isinstance(item, dict))
            if found:
                return found
        person = person.get("value")
    person_id = text(person)
    if person_id is None:
        return ()
    if client is None:
        raise CrmApiError("Pipedrive deal events need pipedrive.api_token and company_domain in the secret")
    try:
        return client.fetch_person_emails(person_id)
    except CrmApiNotFoundError:
        return ()  # the person was deleted; the deal still counts


def _only_our_fields(previous: Mapping[str, Any], config: PipedriveConfig) -> bool:
    """Whether a change touched nothing but the custom fields Closedloop writes (and the update time)."""
    ours = set(config.writeback.deal_fields.values()) if config.writeback is not None else set()
    changed = previous.get("custom_fields")
    if not ours or not isinstance(changed, dict) or not changed:
        return False
    return set(previous) <= {"custom_fields", "update_time"} and set(changed) <= ours


def parse_pipedrive(
    request: WebhookRequest,
    config: PipedriveConfig,
    *,
    client: PipedrivePersonReader | None = None,
    now_ms: int | None = None,
) -> list[DealEvent]:
    """Authenticate a Pipedrive webhook v2 delivery and turn a deal change into a deal event.

    Parameters
    ----------
    request
        The delivery, with the ``Authorization`` header Pipedrive sends.
    config
        The ``pipedrive`` section of the webhook secret.
    client
        Reads persons' e-mails (:meth:`PipedriveClient.from_config`); needed when the deal has a person.
    now_ms
        The clock, ms (tests), used only when the delivery has no time at all.

    Returns
    -------
    list of DealEvent
        One event for a deal; none for other objects (persons, activities...).

    Raises
    ------
    WebhookAuthError
        Missing or wrong Basic credentials (401).
    WebhookPayloadError
        Not a v2 webhook body, or a value no deal event can hold (an id over 256 characters, a time
        before 1970 or after 2100, an amount DynamoDB cannot keep) (400).
    CrmApiRetryableError
        Pipedrive's API is slow, down or rate-limited (503, Pipedrive retries).
    """
    check_body(request)
    verify_basic_auth(request, config.username.get_secret_value(), config.password.get_secret_value())
    body = load_json(request.body, "Pipedrive")
    if not isinstance(body, dict):
        raise WebhookPayloadError("the Pipedrive webhook body must be a JSON object")
    if "current" in body and "data" not in body:
        raise WebhookPayloadError("this is a Pipedrive webhook v1 body: create the webhook with version 2.0")
    meta = body.get("meta")
    if not isinstance(meta, dict):
        raise WebhookPayloadError("the Pipedrive webhook has no meta object")
    if text(meta.get("entity")) != "deal":
        return []
    action = (text(meta.get("action")) or "").lower()
    data = body.get("data")
    previous = body.get("previous")
    data = data if isinstance(data, dict) else {}
    previous = previous if isinstance(previous, dict) else {}

    deal_id = text(meta.get("entity_id")) or text(data.get("id")) or text(previous.get("id"))
    event_id = text(meta.get("id"))
    if event_id is None:
        correlation = text(meta.get("correlation_id"))
        event_id = f"{correlation}:{deal_id}" if correlation else None
    if deal_id is None or event_id is None:
        raise WebhookPayloadError(
            "the Pipedrive webhook has no deal id (meta.entity_id) or event id (meta.id)"
        )

    if action in {"change", "changed", "update", "updated"} and _only_our_fields(previous, config):
        return []  # the echo of Closedloop's own write-back (docs/crm-writeback.md): no loop

    what = f"Pipedrive {action or 'deal'} webhook"
    sent_at = to_ms(meta.get("timestamp"), field="meta.timestamp")
    if action in {"delete", "deleted"}:
        at = sent_at or current_ms(now_ms)
        return [
            deal_event(
                what,
                crm=CrmName.PIPEDRIVE,
                event_id=event_id,
                deal_id=deal_id,
                lifecycle=DealLifecycle.DELETED,
                occurred_at=at,
                version=at,
            )
        ]
    if not data:
        raise WebhookPayloadError(f"the Pipedrive {action or 'deal'} webhook has no data object")

    lifecycle = _lifecycle(data, config)
    previous_status = (text(previous.get("status")) or "").lower()
    if lifecycle is DealLifecycle.OPEN and previous_status in {"won", "lost"}:
        lifecycle = DealLifecycle.REOPENED
    # update_time is the deal's own modification time: the best order key; the delivery time next.
    at = to_ms(data.get("update_time"), field="data.update_time") or sent_at or current_ms(now_ms)
    return [
        deal_event(
            what,
            crm=CrmName.PIPEDRIVE,
            event_id=event_id,
            deal_id=deal_id,
            lifecycle=lifecycle,
            occurred_at=at,
            version=at,
            contact_emails=_emails(data, client),
            pipeline=text(data.get("pipeline_id")),
            stage=text(data.get("stage_id")),
            amount=lenient_amount(data.get("value")),
            currency=lenient_currency(data.get("currency"), None),
            close_date=to_date(
                data.get("close_time") or data.get("expected_close_date"), field="data.close_time"
            ),
            created_at=to_ms(data.get("add_time"), field="data.add_time"),
        )
    ]
