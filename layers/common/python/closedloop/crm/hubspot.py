"""HubSpot: request signatures (v3, and v1/v2 where HubSpot still sends them), the batched webhook events
of deal subscriptions, workflow "Send a webhook" calls, and the CRM API lookups they need.

HubSpot documents (developers.hubspot.com, "Validating requests"):

- v3: ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI + body + timestamp)),
  ``X-HubSpot-Request-Timestamp`` in ms; reject a timestamp older than 5 minutes. In the URI, the
  percent-encodings of ``: / ? @ ! $ ' ( ) * , ;`` are decoded before signing.
- v1: ``X-HubSpot-Signature`` = hex SHA-256(client secret + body), ``X-HubSpot-Signature-Version: v1``
  (webhook subscriptions).
- v2: hex SHA-256(client secret + method + URI + body), version ``v2`` (workflow webhooks, CRM cards).

Subscription events arrive in batches of up to 100 (a JSON array). HubSpot waits 5 seconds for the
answer, and retries a delivery that timed out or failed (a ``429`` or ``5xx``) up to 10 times over
about a day ("Error handling" › "Retries"); ``eventId`` identifies an event across retries. The events
carry ids only (a property change carries the one new value), so the adapter reads the deals and their
contacts' e-mails from the CRM API with a private-app token, with HubSpot's batch reads, so a whole
delivery costs a few calls whatever its size (one deal per call would be 200 calls for a bulk edit of
100 deals: far past the 5 seconds and the private app's burst limit of 100-190 calls per 10 s):

1. ``POST /crm/v3/objects/deals/batch/read``: the deals' properties, 100 ids a call;
2. ``POST /crm/v4/associations/deals/contacts/batch/read``: their contacts, 1,000 ids a call;
3. ``POST /crm/v3/objects/contacts/batch/read``: the contacts' e-mails, 100 ids a call.

All the lookups of one delivery share :data:`HUBSPOT_LOOKUP_BUDGET_SECONDS`. A lookup that is
rate-limited (``429``), fails (``5xx``), times out or would run past the budget raises
:class:`~closedloop.crm.errors.CrmApiRetryableError` before any event is returned, so the webhook
answers ``503`` with nothing written and HubSpot delivers the batch again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from closedloop.crm._common import (
    check_body,
    current_ms,
    deal_event,
    describe,
    lenient_amount,
    lenient_currency,
    load_json,
    text,
    to_date,
    to_ms,
)
from closedloop.crm.config import HubSpotConfig
from closedloop.crm.errors import (
    CrmApiError,
    CrmApiNotFoundError,
    CrmApiRetryableError,
    WebhookAuthError,
    WebhookPayloadError,
)
from closedloop.crm.http import JsonHttpClient
from closedloop.crm.models import (
    MAX_DEAL_TIME_MS,
    CrmName,
    DealEvent,
    DealLifecycle,
    StageRules,
    WebhookRequest,
    normalise_emails,
)

__all__ = [
    "HUBSPOT_DEAL_PROPERTIES",
    "HUBSPOT_LOOKUP_BUDGET_SECONDS",
    "HubSpotClient",
    "HubSpotDeal",
    "HubSpotDealReader",
    "hubspot_signed_uri",
    "parse_hubspot",
    "sign_hubspot_v3",
    "verify_hubspot_signature",
]

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000
# Properties Closedloop writes (closedloop.writeback.hubspot): changes of them are our own echo.
OWN_PROPERTY_PREFIX = "closedloop_"
HUBSPOT_DEAL_PROPERTIES = (
    "dealstage",
    "amount",
    "closedate",
    "pipeline",
    "deal_currency_code",
    "hs_lastmodifieddate",
    "createdate",
    "hs_is_closed_won",
    "hs_is_closed",
)
# HubSpot waits 5 s for the answer to a webhook; the deal lookups of one delivery get half of it, the
# rest is for a cold start, the webhook secret and the writes. The webhook cannot see the Lambda's
# remaining time (the handler does not pass it down), so the budget is this fixed share.
HUBSPOT_LOOKUP_BUDGET_SECONDS = 2.5
_DEAL_OBJECT_TYPE = "0-3"
_BATCH_READ_LIMIT = 100  # ids per objects batch read (deals, contacts)
_ASSOCIATIONS_READ_LIMIT = 1000  # ids per associations batch read (developer changelog, February 2025)
# The table of HubSpot's v3 instructions: these encodings are decoded in the URI before signing.
_V3_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_V3_PATTERN = re.compile("|".join(_V3_DECODED))
_V3_PATTERN_ANY_CASE = re.compile("|".join(_V3_DECODED), re.IGNORECASE)


# --- signatures --------------------------------------------------------------------------------------


def hubspot_signed_uri(url: str) -> str:
    """Return the URI as HubSpot's v3 signature covers it: the documented encodings decoded.

    Parameters
    ----------
    url
        The full URL HubSpot called, e.g. ``https://api.example.com/webhooks/hubspot?x=a%3Ab``.

    Returns
    -------
    str
        ``https://api.example.com/webhooks/hubspot?x=a:b``
    """
    return _V3_PATTERN.sub(lambda match: _V3_DECODED[match.group(0)], url)


def sign_hubspot_v3(client_secret: str, method: str, url: str, body: bytes, timestamp_ms: int) -> str:
    """Compute ``X-HubSpot-Signature-v3`` as HubSpot does (for demos and local senders).

    Parameters
    ----------
    client_secret
        The app's client secret.
    method
        The HTTP method (``POST``).
    url
        The full URL called; the documented encodings are decoded before signing.
    body
        The raw body.
    timestamp_ms
        The value of ``X-HubSpot-Request-Timestamp``.

    Returns
    -------
    str
        The base64 HMAC-SHA256.
    """
    return _v3(client_secret, method, hubspot_signed_uri(url), body, str(timestamp_ms))


def _v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _equal(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def verify_hubspot_signature(
    request: WebhookRequest,
    client_secret: str,
    *,
    now_ms: int | None = None,
    accept_legacy: bool = True,
) -> str:
    """Verify a HubSpot request's signature; return the version that verified it.

    A request with ``X-HubSpot-Signature-v3`` must pass v3 (fresh timestamp); without it, the v1 or v2
    signature named by ``X-HubSpot-Signature-Version`` is checked when ``accept_legacy``.

    Parameters
    ----------
    request
        The delivery, with the full URL as HubSpot called it.
    client_secret
        The app's client secret.
    now_ms
        The clock, ms (tests); the system clock when omitted.
    accept_legacy
        Whether v1/v2 signatures (no timestamp) are accepted.

    Returns
    -------
    str
        ``"v3"``, ``"v2"`` or ``"v1"``.

    Raises
    ------
    WebhookAuthError
        When the signature is missing, wrong, or its timestamp is more than 5 minutes off.
    """
    signature_v3 = request.header("X-HubSpot-Signature-v3")
    if signature_v3 is not None:
        stamp = (request.header("X-HubSpot-Request-Timestamp") or "").strip()
        if not stamp.isdigit():
            raise WebhookAuthError("X-HubSpot-Request-Timestamp is missing or not a number")
        # Five minutes either way: older is a replay, newer is a clock we cannot trust.
        if abs(current_ms(now_ms) - int(stamp)) > HUBSPOT_MAX_AGE_MS:
            raise WebhookAuthError("the HubSpot request timestamp is more than 5 minutes old")
        # The documented decoding first; HubSpot's table lists upper-case encodings, but RFC 3986
        # makes hex case-insignificant, so lower-case ones are tried too (both need the secret).
        candidates = dict.fromkeys(
            (
                hubspot_signed_uri(request.url),
                _V3_PATTERN_ANY_CASE.sub(lambda m: _V3_DECODED[m.group(0).upper()], request.url),
            )
        )
        for uri in candidates:
            if _equal(_v3(client_secret, request.method, uri, request.body, stamp), signature_v3):
                return "v3"
        raise WebhookAuthError("the HubSpot v3 signature does not match")

    signature = request.header("X-HubSpot-Signature")
    version = (request.header("X-HubSpot-Signature-Version") or "").strip().lower()
    if signature is None:
        raise WebhookAuthError("the request has no HubSpot signature")
    if not accept_legacy:
        raise WebhookAuthError("only v3 HubSpot signatures are accepted")
    secret = client_secret.encode()
    if version == "v1":
        expected = hashlib.sha256(secret + request.body).hexdigest()
    elif version == "v2":
        signed = secret + request.method.encode() + request.url.encode() + request.body
        expected = hashlib.sha256(signed).hexdigest()
    else:
        raise WebhookAuthError("X-HubSpot-Signature-Version must be v1 or v2")
    if not _equal(expected, signature.lower()):
        raise WebhookAuthError(f"the HubSpot {version} signature does not match")
    return version


# --- the CRM API --------------------------------------------------------------------------------------


class HubSpotDeal(BaseModel):
    """A deal as read from HubSpot's CRM API: its properties and its contacts' e-mails."""

    model_config = ConfigDict(frozen=True)

    id: str
    properties: Mapping[str, str | None]
    contact_ids: tuple[str, ...] = ()
    contact_emails: tuple[str, ...] = ()


class HubSpotDealReader(Protocol):
    """What the adapter needs from HubSpot's API (:class:`HubSpotClient`, or a fake in tests).

    ``deadline`` is a :func:`time.monotonic` instant: no call may end after it.
    """

    def fetch_deals(
        self, deal_ids: Sequence[str], *, deadline: float | None = None
    ) -> Mapping[str, HubSpotDeal]:
        """Read deals with :data:`HUBSPOT_DEAL_PROPERTIES` and their contacts' e-mails; a deal that no
        longer exists is left out of the mapping."""
        ...

    def fetch_contact_emails(
        self, contact_ids: Sequence[str], *, deadline: float | None = None
    ) -> tuple[str, ...]:
        """Read the e-mails of contacts by id."""
        ...


def _chunks(ids: Sequence[str], size: int) -> list[Sequence[str]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _results(answer: Any, what: str) -> list[dict[str, Any]]:
    """The ``results`` of a batch answer (200, or 207 when some ids failed); ``None`` (a 404) is none."""
    if answer is None:
        return []
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise CrmApiError(f"HubSpot API {what}: unexpected answer")
    return [item for item in results if isinstance(item, dict)]


class HubSpotClient:
    """HubSpot's CRM API, with a private-app token, through its batch reads.

    Parameters
    ----------
    token
        The private app's access token (scopes ``crm.objects.deals.read``, ``crm.objects.contacts.read``).
    base_url
        ``https://api.hubapi.com``; tests point it at a local server.
    timeout
        Seconds per call at most; a call never waits past the ``deadline`` it is given.
    """

    def __init__(self, token: str, *, base_url: str = "https://api.hubapi.com", timeout: float = 3.0) -> None:
        self._timeout = timeout
        self._http = JsonHttpClient(
            base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            service="HubSpot",
        )

    @classmethod
    def from_config(cls, config: HubSpotConfig) -> HubSpotClient | None:
        """Build the client from the ``hubspot`` secret section; ``None`` without a private-app token."""
        if config.private_app_token is None:
            return None
        return cls(
            config.private_app_token.get_secret_value(),
            base_url=config.api_base_url,
            timeout=config.api_timeout_seconds,
        )

    def fetch_deals(
        self, deal_ids: Sequence[str], *, deadline: float | None = None
    ) -> dict[str, HubSpotDeal]:
        """Read deals, their properties and their associated contacts' e-mails, in batches.

        ``POST /crm/v3/objects/deals/batch/read`` (100 ids a call), then
        ``POST /crm/v4/associations/deals/contacts/batch/read`` for the deals found, then
        ``POST /crm/v3/objects/contacts/batch/read`` for their contacts (100 a call): 3 calls for a
        delivery of up to 100 deals with up to 100 contacts in all.

        Parameters
        ----------
        deal_ids
            The deals; repeated ids are read once.
        deadline
            A :func:`time.monotonic` instant no call may end after; ``None``: only the per-call timeout.

        Returns
        -------
        dict of str to HubSpotDeal
            By deal id; a deal deleted or merged since the event (absent from HubSpot's answer) is
            left out.

        Raises
        ------
        CrmApiRetryableError
            When HubSpot is slow, down or rate-limits (``429``), or the deadline is reached.
        CrmApiError
            On any other failure (a refused token, an unexpected answer).
        """
        found: dict[str, dict[str, str | None]] = {}
        for deal_id, properties in self._batch_read(
            "deals", list(dict.fromkeys(deal_ids)), HUBSPOT_DEAL_PROPERTIES, deadline
        ):
            if deal_id is None or properties is None:
                raise CrmApiError("HubSpot API batch read deals: unexpected answer")
            found[deal_id] = {
                str(key): None if value is None else str(value) for key, value in properties.items()
            }
        contacts = self._deal_contacts(list(found), deadline)
        emails = self._emails_by_contact(
            list(dict.fromkeys(c for ids in contacts.values() for c in ids)), deadline
        )
        return {
            deal_id: HubSpotDeal(
                id=deal_id,
                properties=properties,
                contact_ids=tuple(contacts.get(deal_id, ())),
                contact_emails=normalise_emails(emails.get(c) for c in contacts.get(deal_id, ())),
            )
            for deal_id, properties in found.items()
        }

    def fetch_contact_emails(
        self, contact_ids: Sequence[str], *, deadline: float | None = None
    ) -> tuple[str, ...]:
        """Read contacts' e-mails, 100 ids per ``POST /crm/v3/objects/contacts/batch/read``."""
        ids = list(dict.fromkeys(contact_ids))
        emails = self._emails_by_contact(ids, deadline)
        return normalise_emails(emails.get(contact_id) for contact_id in ids)

    def _deal_contacts(self, deal_ids: list[str], deadline: float | None) -> dict[str, list[str]]:
        """The contact ids of each deal, following a deal's ``paging.next.after`` when it has more."""
        contacts: dict[str, list[str]] = {deal_id: [] for deal_id in deal_ids}
        pending: list[dict[str, str]] = [{"id": deal_id} for deal_id in deal_ids]
        followed: set[tuple[str, str]] = set()  # a cursor seen twice would loop forever
        while pending:
            chunk, pending = pending[:_ASSOCIATIONS_READ_LIMIT], pending[_ASSOCIATIONS_READ_LIMIT:]
            answer = self._post("/crm/v4/associations/deals/contacts/batch/read", {"inputs": chunk}, deadline)
            # A deal without contacts is absent from the results (a 207 naming it among the errors).
            for item in _results(answer, "batch read deal associations"):
                source = item.get("from")
                deal_id = text(source.get("id") if isinstance(source, dict) else None)
                if deal_id is None or deal_id not in contacts:
                    continue
                targets = item.get("to")
                for target in targets if isinstance(targets, list) else []:
                    contact_id = text(target.get("toObjectId") if isinstance(target, dict) else None)
                    if contact_id is not None and contact_id not in contacts[deal_id]:
                        contacts[deal_id].append(contact_id)
                paging = item.get("paging")
                following = paging.get("next") if isinstance(paging, dict) else None
                after = text(following.get("after") if isinstance(following, dict) else None)
                if after is not None and (deal_id, after) not in followed:
                    followed.add((deal_id, after))
                    pending.append({"id": deal_id, "after": after})
        return contacts

    def _emails_by_contact(self, contact_ids: list[str], deadline: float | None) -> dict[str, object]:
        return {
            contact_id: properties.get("email")
            for contact_id, properties in self._batch_read("contacts", contact_ids, ("email",), deadline)
            if contact_id is not None and properties is not None
        }

    def _batch_read(
        self, kind: str, ids: list[str], properties: Sequence[str], deadline: float | None
    ) -> Iterator[tuple[str | None, dict[str, Any] | None]]:
        """``POST /crm/v3/objects/<kind>/batch/read``, 100 ids a call: (id, properties) of each found."""
        for chunk in _chunks(ids, _BATCH_READ_LIMIT):
            answer = self._post(
                f"/crm/v3/objects/{kind}/batch/read",
                {
                    "properties": list(properties),
                    "propertiesWithHistory": [],
                    "inputs": [{"id": object_id} for object_id in chunk],
                },
                deadline,
            )
            for item in _results(answer, f"batch read {kind}"):
                found = item.get("properties")
                yield text(item.get("id")), found if isinstance(found, dict) else None

    def _post(self, path: str, payload: object, deadline: float | None) -> Any:
        """POST a batch read within the deadline; a 404 (none of the ids exists) is ``None``."""
        timeout = self._timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CrmApiRetryableError(
                    f"HubSpot API POST {path}: the delivery's lookup time budget is spent"
                )
            timeout = min(timeout, left)
        self._http.timeout = timeout  # set before every call: this call's share of what is left
        try:
            return self._http.post_json(path, payload)
        except CrmApiNotFoundError:
            return None


# --- the webhook ---------------------------------------------------------------------------------------


class _SubscriptionEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    event_id: str = Field(alias="eventId", min_length=1)
    subscription_type: str = Field(alias="subscriptionType", min_length=1)
    object_id: str | None = Field(default=None, alias="objectId", min_length=1)
    # association changes name both ends instead of objectId
    from_object_id: str | None = Field(default=None, alias="fromObjectId")
    to_object_id: str | None = Field(default=None, alias="toObjectId")
    association_type: str | None = Field(default=None, alias="associationType")
    occurred_at: int = Field(alias="occurredAt", ge=0, le=MAX_DEAL_TIME_MS)
    object_type_id: str | None = Field(default=None, alias="objectTypeId")
    property_name: str | None = Field(default=None, alias="propertyName")
    merged_object_ids: list[str] = Field(default_factory=list, alias="mergedObjectIds")

    @model_validator(mode="after")
    def _has_object(self) -> Self:
        if self.object_id is None and self.from_object_id is None:
            raise ValueError("objectId is required")
        return self

    @property
    def deal_id(self) -> str | None:
        """The deal the event is about; for an association change, the deal end of it."""
        if self.object_id is not None:
            return self.object_id
        kind = (self.association_type or "").upper()
        if kind.startswith("DEAL_TO_"):
            return self.from_object_id
        if kind.endswith("_TO_DEAL"):
            return self.to_object_id
        return None


def _lifecycle(properties: Mapping[str, Any], rules: StageRules) -> DealLifecycle:
    by_stage = rules.lifecycle_for(text(properties.get("dealstage")))
    if by_stage is not None:
        return by_stage
    # Custom pipelines have numeric stage ids; HubSpot's calculated flags still say won or closed.
    if str(properties.get("hs_is_closed_won") or "").lower() == "true":
        return DealLifecycle.WON
    if str(properties.get("hs_is_closed") or "").lower() == "true":
        return DealLifecycle.LOST
    return DealLifecycle.OPEN


def _deal_event(
    what: str,
    *,
    event_id: str,
    deal_id: str,
    properties: Mapping[str, Any],
    emails: Iterable[object],
    occurred_at: int,
    config: HubSpotConfig,
) -> DealEvent:
    modified = to_ms(properties.get("hs_lastmodifieddate"), field=f"{what} hs_lastmodifieddate")
    return deal_event(
        what,
        crm=CrmName.HUBSPOT,
        event_id=event_id,
        deal_id=deal_id,
        lifecycle=_lifecycle(properties, config.stage_rules),
        # The properties are the deal as of its last modification, which may be after the event.
        occurred_at=occurred_at,
        version=max(occurred_at, modified or 0),
        contact_emails=normalise_emails(emails),
        pipeline=text(properties.get("pipeline")),
        stage=text(properties.get("dealstage")),
        amount=lenient_amount(properties.get("amount")),
        currency=lenient_currency(properties.get("deal_currency_code"), config.default_currency),
        close_date=to_date(properties.get("closedate"), field=f"{what} closedate"),
        created_at=to_ms(properties.get("createdate"), field=f"{what} createdate"),
    )


def _deleted(what: str, event_id: str, deal_id: str, occurred_at: int) -> DealEvent:
    return deal_event(
        what,
        crm=CrmName.HUBSPOT,
        event_id=event_id,
        deal_id=deal_id,
        lifecycle=DealLifecycle.DELETED,
        occurred_at=occurred_at,
        version=occurred_at,
    )


def _is_deal(event: _SubscriptionEvent) -> bool:
    kind = event.subscription_type.split(".", 1)[0]
    return kind == "deal" or (kind == "object" and event.object_type_id == _DEAL_OBJECT_TYPE)


def _subscription_events(
    items: list[Any], config: HubSpotConfig, client: HubSpotDealReader | None, deadline: float
) -> list[DealEvent]:
    parsed: list[_SubscriptionEvent] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise WebhookPayloadError(f"HubSpot event {index} is not an object")
        try:
            parsed.append(_SubscriptionEvent.model_validate(item))
        except ValidationError as exc:
            raise describe(exc, f"HubSpot event {index}") from None

    # First the events in order, with a placeholder (what, event, deal id) where the deal must be read;
    # then every deal of the batch in one batched lookup; then the placeholders filled in.
    planned: list[DealEvent | tuple[str, _SubscriptionEvent, str]] = []
    for index, event in enumerate(parsed):
        what = f"HubSpot event {index}"
        deal_id = event.deal_id
        # Contact events are not deal events, except a contact associated with or removed from a deal.
        if deal_id is None or not (_is_deal(event) or event.object_id is None):
            continue
        if (event.property_name or "").startswith(OWN_PROPERTY_PREFIX):
            continue  # caused by Closedloop's own write-back (docs/crm-writeback.md): no loop
        action = event.subscription_type.split(".", 1)[1] if "." in event.subscription_type else ""
        if action in {"deletion", "privacyDeletion"}:
            planned.append(_deleted(what, event.event_id, deal_id, event.occurred_at))
            continue
        if action == "merge":
            # The merged-away deals no longer exist; the surviving deal is read below.
            for merged_id in event.merged_object_ids:
                if merged_id != deal_id:
                    planned.append(
                        _deleted(what, f"{event.event_id}:{merged_id}", merged_id, event.occurred_at)
                    )
        planned.append((what, event, deal_id))

    to_read = [entry[2] for entry in planned if isinstance(entry, tuple)]
    deals: Mapping[str, HubSpotDeal] = {}
    if to_read:
        if client is None:
            raise CrmApiError("HubSpot deal events need hubspot.private_app_token in the webhook secret")
        deals = client.fetch_deals(to_read, deadline=deadline)

    events: list[DealEvent] = []
    for entry in planned:
        if isinstance(entry, DealEvent):
            events.append(entry)
            continue
        what, event, deal_id = entry
        deal = deals.get(deal_id)
        if deal is None:
            continue  # deleted since: its deletion event follows
        events.append(
            _deal_event(
                what,
                event_id=event.event_id,
                deal_id=deal_id,
                properties=deal.properties,
                emails=deal.contact_emails,
                occurred_at=event.occurred_at,
                config=config,
            )
        )
    return events


def _flatten(properties: Mapping[str, Any]) -> dict[str, Any]:
    # Workflow webhooks send the record as the legacy API returns it: {"dealstage": {"value": ...}}.
    return {
        key: value.get("value") if isinstance(value, dict) and "value" in value else value
        for key, value in properties.items()
    }


def _contact_ids(body: Mapping[str, Any]) -> list[str]:
    associations = body.get("associations")
    if not isinstance(associations, dict):
        return []
    ids: list[object] = []
    legacy = associations.get("associatedVids")
    if isinstance(legacy, list):
        ids.extend(legacy)
    contacts = associations.get("contacts")
    results = contacts.get("results") if isinstance(contacts, dict) else None
    if isinstance(results, list):
        ids.extend(item.get("id") for item in results if isinstance(item, dict))
    return [value for value in dict.fromkeys(text(i) for i in ids) if value is not None]


def _workflow_event(
    request: WebhookRequest,
    body: Mapping[str, Any],
    config: HubSpotConfig,
    client: HubSpotDealReader | None,
    now: int,
    deadline: float,
) -> DealEvent | None:
    nested = body.get("properties")
    properties = _flatten(nested) if isinstance(nested, dict) else dict(body)
    deal_id = next(
        (
            value
            for value in (
                text(body.get("objectId")),
                text(body.get("dealId")),
                text(body.get("hs_object_id")),
                text(properties.get("hs_object_id")),
                text(body.get("id")),
            )
            if value is not None
        ),
        None,
    )
    if deal_id is None:
        raise WebhookPayloadError(
            "the HubSpot workflow webhook has no deal id (objectId, dealId or hs_object_id)"
        )
    # Workflow webhooks have no event id; a retry repeats the body, so its hash identifies the call.
    event_id = "workflow:" + hashlib.sha256(request.body).hexdigest()[:40]
    what = "HubSpot workflow webhook"
    sent_at = to_ms(request.header("X-HubSpot-Request-Timestamp"), field="X-HubSpot-Request-Timestamp")
    if body.get("isDeleted") is True:
        return _deleted(what, event_id, deal_id, sent_at or now)

    emails: list[object] = [properties.get(key) for key in ("email", "contact_email", "contact_emails")]
    if isinstance(properties.get("contact_emails"), list):
        emails.extend(properties["contact_emails"])
    if properties.get("dealstage") is None:
        if client is None:
            raise WebhookPayloadError(
                "the HubSpot workflow webhook has no dealstage: include the deal's properties, "
                "or set hubspot.private_app_token so the deal can be read"
            )
        deal = client.fetch_deals([deal_id], deadline=deadline).get(deal_id)  # the action sent only ids
        if deal is None:
            return None  # the deal was deleted since the workflow ran
        properties = {**deal.properties, **{k: v for k, v in properties.items() if v is not None}}
        emails.extend(deal.contact_emails)
    elif client is not None and not normalise_emails(emails):
        contact_ids = _contact_ids(body)
        if contact_ids:
            emails.extend(client.fetch_contact_emails(contact_ids, deadline=deadline))
        else:
            deal = client.fetch_deals([deal_id], deadline=deadline).get(deal_id)
            if deal is None:
                return None
            emails.extend(deal.contact_emails)
    modified = to_ms(properties.get("hs_lastmodifieddate"), field=f"{what} hs_lastmodifieddate")
    occurred_at = modified or sent_at or now
    return _deal_event(
        what,
        event_id=event_id,
        deal_id=deal_id,
        properties=properties,
        emails=emails,
        occurred_at=occurred_at,
        config=config,
    )


def parse_hubspot(
    request: WebhookRequest,
    config: HubSpotConfig,
    *,
    client: HubSpotDealReader | None = None,
    now_ms: int | None = None,
    budget_seconds: float = HUBSPOT_LOOKUP_BUDGET_SECONDS,
) -> list[DealEvent]:
    """Verify a HubSpot delivery and turn it into deal events.

    Parameters
    ----------
    request
        The delivery: a batch (JSON array) of webhook subscription events, or one workflow
        "Send a webhook" call (a JSON object with the deal's properties).
    config
        The ``hubspot`` section of the webhook secret.
    client
        Reads deals and contacts from HubSpot's API (:meth:`HubSpotClient.from_config`). Subscription
        events other than deletions need it; a workflow call only when it lacks the stage or e-mails.
    now_ms
        The clock, ms (tests).
    budget_seconds
        The time all the API lookups of this delivery may take together, from the call.

    Returns
    -------
    list of DealEvent
        One per deal event in the batch, in order; events of other objects (contacts...) and deals
        that no longer exist are left out. Dedupe on each event's ``dedupe_key``.

    Raises
    ------
    WebhookAuthError
        Bad, missing or stale signature (401); nothing else was read.
    WebhookPayloadError
        The body is not a HubSpot shape, or holds a value no deal event can hold (an id or stage
        over 256 characters, a time before 1970 or after 2100, an amount DynamoDB cannot keep) (400);
        raised before anything of the batch is stored.
    CrmApiRetryableError
        HubSpot's API is slow, down or rate-limited, or the lookups ran out of ``budget_seconds``
        (503, HubSpot retries); raised before any event is returned, so nothing is written.
    CrmApiError
        No private-app token, or the API refused it.
    """
    deadline = time.monotonic() + budget_seconds
    check_body(request)
    signed = request if config.webhook_url is None else request.model_copy(update={"url": config.webhook_url})
    verify_hubspot_signature(
        signed,
        config.client_secret.get_secret_value(),
        now_ms=now_ms,
        accept_legacy=config.accept_legacy_signatures,
    )
    body = load_json(request.body, "HubSpot")
    if isinstance(body, list):
        return _subscription_events(body, config, client, deadline)
    if isinstance(body, dict) and "subscriptionType" in body:
        return _subscription_events([body], config, client, deadline)
    if isinstance(body, dict):
        event = _workflow_event(request, body, config, client, current_ms(now_ms), deadline)
        return [] if event is None else [event]
    raise WebhookPayloadError("the HubSpot webhook body must be an array of events or a deal object")
