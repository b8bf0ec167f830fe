"""Recording CRM deal events: the deal's state, its history, and the leads of its contacts.

The webhook function verifies and parses a delivery (:func:`closedloop.crm.parse_crm_webhook`), then
calls :func:`record_delivery`. Every write is idempotent, so a CRM may redeliver any number of times:

1. Each contact e-mail becomes a lead id (:func:`closedloop.identity.lead_id_for`, the same id the
   identify function gives a form submission of that address). A contact with no lead yet gets an
   *offline lead*: a profile with no visitors. When that person later fills a form, identify completes
   that profile and links their visitor, and the deal reaches their journey through the lead.
2. One transaction per event stores the event in the deal's history (once per event id), the deal's
   new state (only over the revision it was computed from), the links of new leads to the deal and
   the offline leads (each only if no profile exists). So a failed write leaves no e-mail behind, and
   a retry finds the event and changes nothing. An event older than the state is kept in the history
   but does not move the state and creates no lead; its contacts that are not on the state are still
   linked to the deal (a ``DEAL#`` link, no profile), so erasing one of them finds the event that
   names them.

A transaction holds at most 100 items: the history, the state, and per contact new to the deal a link
and maybe a lead. So an event keeps at most :data:`MAX_EVENT_CONTACTS` contacts, its first ones (the
CRM's primary contact first), and the others are counted as dropped: refusing the delivery would lose
the deal for good (HubSpot never retries a 4xx), and splitting it over several transactions would
bring back the partial write. A stored deal keeps at most
:data:`MAX_DEAL_CONTACTS` contacts (its first, this event's, then the most recent), so its item stays
far below DynamoDB's 400 KB; the links of the contacts it drops stay, so erasure still finds the deal.

The whole delivery is parsed, and each of its events validated, before the first write: a bad event
refuses the delivery (400) with nothing stored. The answer to the CRM goes out only after
:func:`record_delivery` returns: every event is stored. A failure in between (503) may leave the
earlier events stored, each whole with its leads; the CRM's retry finds them and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from closedloop.crm import (
    CrmName,
    CrmNotConfiguredError,
    CrmSecrets,
    DealEvent,
    DealState,
    WebhookAuthError,
    WebhookRequest,
    next_deal_state,
    parse_crm_webhook,
)
from closedloop.errors import DependencyError, InvalidInputError, StoreUnavailableError
from closedloop.identity import lead_id_for, normalise_email
from closedloop.models.leads import Lead
from closedloop.observability import logger
from closedloop.store.deals import DealWrite
from closedloop.store.dynamodb import WriteOutcome

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import BaseProvider

__all__ = [
    "MAX_CONFLICTS",
    "MAX_DEAL_CONTACTS",
    "MAX_EVENT_CONTACTS",
    "DealLink",
    "DealStore",
    "DeliveryResult",
    "RecordedEvent",
    "StoredDeal",
    "WebhookSecret",
    "WebhookSecretError",
    "contact_leads",
    "parse_delivery",
    "parse_webhook_secret",
    "record_deal_event",
    "record_delivery",
]

# Re-reads of a deal whose state another delivery changed between our read and our write.
MAX_CONFLICTS = 5
# Contacts one event may name: its transaction (at most 100 items) holds the history and the state,
# and for each contact new to the deal a link and possibly an offline lead: (100 - 2) // 2.
MAX_EVENT_CONTACTS = 49
# Contacts (e-mails, and leads) a stored deal keeps: 100 addresses of 320 characters are 32 KB of
# DynamoDB's 400 KB per item. At least MAX_EVENT_CONTACTS + 1, so an event's contacts always fit.
MAX_DEAL_CONTACTS = 100


class StoredDeal(DealState):
    """A deal's state as the store keeps it: the :class:`~closedloop.crm.DealState`, the leads of its
    contacts, and the bookkeeping of the optimistic lock."""

    lead_ids: Annotated[
        tuple[str, ...], Field(description="Leads of the deal's contacts (lead_id_for of each e-mail).")
    ] = ()
    revision: Annotated[
        int, Field(ge=0, description="Optimistic lock: +1 at every write of the state (0 = never written).")
    ] = 0
    changed_at: Annotated[int, Field(ge=0, description="Server time of the last write of the state, ms.")] = 0


class DealLink(BaseModel):
    """Lead ``lead_id`` is a contact of CRM deal ``deal_id`` (since ``linked_at``, server time, ms)."""

    model_config = ConfigDict(frozen=True)

    lead_id: str
    crm: CrmName
    deal_id: str
    linked_at: int


class DealStore(Protocol):
    """What recording a deal event needs from the store (:class:`~closedloop.store.DynamoStore`)."""

    def get_deal(self, crm: CrmName | str, deal_id: str) -> StoredDeal | None: ...
    def record_deal_event(
        self,
        event: DealEvent,
        *,
        state: StoredDeal | None,
        previous: StoredDeal | None,
        received_at: int,
        leads: Sequence[Lead] = (),
        late_contacts: Sequence[str] = (),
    ) -> DealWrite: ...


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What storing one event did."""

    duplicate: bool  # stored before (a CRM retry): nothing changed
    applied: bool  # moved the deal's state; False for a duplicate or an event older than the state
    offline_leads: int  # leads created for contacts who never filled a form


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What storing one delivery did: ``received`` events, of which ``duplicates`` were stored before."""

    received: int = 0
    duplicates: int = 0
    applied: int = 0
    offline_leads: int = 0
    contacts_dropped: int = 0


def contact_leads(emails: Iterable[str]) -> dict[str, str]:
    """Return the lead id of each contact e-mail, normalised as the identify function does.

    Parameters
    ----------
    emails
        The deal's contact e-mails.

    Returns
    -------
    dict of str to str
        Lead id to normalised e-mail, first occurrence first. Addresses the identify function would
        refuse are left out (and counted in the log, never shown).
    """
    leads: dict[str, str] = {}
    skipped = 0
    for email in emails:
        try:
            normalised = normalise_email(email)
        except InvalidInputError:
            skipped += 1
            continue
        leads.setdefault(lead_id_for(normalised), normalised)
    if skipped:
        logger.info("contact e-mails skipped: not valid addresses", skipped=skipped)
    return leads


def _within_transaction(event: DealEvent) -> tuple[DealEvent, int]:
    """The event with at most :data:`MAX_EVENT_CONTACTS` contacts (its first), and how many it dropped."""
    dropped = len(event.contact_emails) - MAX_EVENT_CONTACTS
    if dropped <= 0:
        return event, 0
    return event.model_copy(update={"contact_emails": event.contact_emails[:MAX_EVENT_CONTACTS]}), dropped


def _latest(values: Sequence[str], current: Collection[str]) -> tuple[str, ...]:
    """At most MAX_DEAL_CONTACTS of ``values``, in their order: the first (the deal's primary contact:
    the deals dataset and the CRM write-back read it), all of ``current`` (this event's), then the
    most recently added others."""
    excess = len(values) - MAX_DEAL_CONTACTS
    kept = list(values[:1])
    for value in values[1:]:
        if excess > 0 and value not in current:
            excess -= 1
            continue
        kept.append(value)
    return tuple(kept)


def _stored_state(
    state: DealState, previous: StoredDeal | None, event: DealEvent, leads: Sequence[str], received_at: int
) -> StoredDeal:
    lead_ids = tuple(dict.fromkeys((*(previous.lead_ids if previous else ()), *leads)))
    fields = {name: getattr(state, name) for name in DealState.model_fields}
    fields["contact_emails"] = _latest(state.contact_emails, set(event.contact_emails))
    return StoredDeal(
        **fields,
        lead_ids=_latest(lead_ids, set(leads)),
        revision=previous.revision if previous else 0,
        changed_at=received_at,
    )


def record_deal_event(event: DealEvent, *, store: DealStore, received_at: int) -> RecordedEvent:
    """Store one deal event in one transaction: its history, the state, the links and offline leads.

    Parameters
    ----------
    event
        A verified, normalised event.
    store
        The store.
    received_at
        Server time of the delivery, ms: the offline leads' creation time and the day the deal is
        indexed under as changed.

    Returns
    -------
    RecordedEvent
        Whether it was a duplicate, whether it moved the state, and how many leads it created.

    Raises
    ------
    StoreUnavailableError
        DynamoDB failed, or the deal kept changing under concurrent deliveries; nothing of this event
        was written, so the CRM's retry is safe.
    """
    event, _ = _within_transaction(event)
    leads = contact_leads(event.contact_emails)
    previous = store.get_deal(event.crm, event.deal_id)
    for attempt in range(MAX_CONFLICTS):
        if attempt:
            previous = store.get_deal(event.crm, event.deal_id)
        state = next_deal_state(previous, event)
        offline: list[Lead] = []
        stored = None
        if state is not None:
            # Contacts accumulate on the state (next_deal_state merges them), and so do their leads.
            stored = _stored_state(state, previous, event, list(leads), received_at)
            # A lead already on the stored deal had its profile written with that state. The others
            # are offered to the store, which creates only those without a profile.
            known = set(previous.lead_ids) if previous is not None else set()
            offline = [
                Lead(lead_id=lead_id, email=email, created_at=received_at, updated_at=received_at, version=1)
                for lead_id, email in leads.items()
                if lead_id not in known
            ]
        # An older event moves nothing, but names its contacts: link those the deal does not list, so
        # erasing one of them finds this event in the history.
        late = (
            [] if state is not None or previous is None else [i for i in leads if i not in previous.lead_ids]
        )
        written = store.record_deal_event(
            event, state=stored, previous=previous, received_at=received_at, leads=offline, late_contacts=late
        )
        if written.outcome is WriteOutcome.STORED:
            return RecordedEvent(
                duplicate=False, applied=stored is not None, offline_leads=written.leads_created
            )
        if written.outcome is WriteOutcome.DUPLICATE:
            return RecordedEvent(duplicate=True, applied=False, offline_leads=0)
    raise StoreUnavailableError("the deal kept changing under concurrent deliveries")


def record_delivery(events: Sequence[DealEvent], *, store: DealStore, received_at: int) -> DeliveryResult:
    """Store every event of one delivery, in order (the answer to the CRM waits for this).

    Parameters
    ----------
    events
        The delivery's events, as :func:`closedloop.crm.parse_crm_webhook` returned them: all of
        them validated (a :class:`~closedloop.crm.DealEvent` holds only values the store can keep),
        so no event of the batch can fail on its content after an earlier one was written.
    store
        The store.
    received_at
        Server time of the delivery, ms.

    Returns
    -------
    DeliveryResult
        Counts of the events received, duplicates, applied to a state, and offline leads created.

    Raises
    ------
    StoreUnavailableError
        As :func:`record_deal_event`; the events before the failing one are stored, and the CRM's
        retry finds them as duplicates.
    """
    duplicates = applied = offline = dropped = 0
    for original in events:
        event, over = _within_transaction(original)
        dropped += over
        recorded = record_deal_event(event, store=store, received_at=received_at)
        duplicates += recorded.duplicate
        applied += recorded.applied
        offline += recorded.offline_leads
    return DeliveryResult(
        received=len(events),
        duplicates=duplicates,
        applied=applied,
        offline_leads=offline,
        contacts_dropped=dropped,
    )


# -- the webhook secret ----------------------------------------------------------------------------------


class WebhookSecretError(DependencyError):
    """The webhook secret cannot be read or is not valid: the CRM should retry once it is fixed (503)."""

    code = "webhook_secret_unavailable"


def parse_webhook_secret(raw: str | bytes) -> CrmSecrets:
    """Validate the webhook secret's JSON, never echoing a value of it.

    Parameters
    ----------
    raw
        The secret string (see :mod:`closedloop.crm.config` and ``docs/crm-setup.md``).

    Returns
    -------
    CrmSecrets
        The validated sections.

    Raises
    ------
    CrmNotConfiguredError
        The secret is the empty object the stack creates: no CRM is set up yet (404).
    WebhookSecretError
        Not JSON, or a section is invalid; the log names the fields and problems, not the values (503).
    """
    try:
        document = json.loads(raw)
    except ValueError:
        logger.error("the webhook secret is not JSON")
        raise WebhookSecretError("the webhook secret is not valid") from None
    if document == {}:
        raise CrmNotConfiguredError("no CRM is configured in the webhook secret yet")
    try:
        return CrmSecrets.model_validate(document)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(map(str, error["loc"])), "problem": error["type"]}
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        logger.error("the webhook secret is not valid", problems=problems)
        raise WebhookSecretError("the webhook secret is not valid") from None


class WebhookSecret:
    """The webhook secret in Secrets Manager, read through Powertools' parameters utility and kept
    ``max_age`` seconds by a warm function.

    Parameters
    ----------
    secret_id
        The secret's ARN (``WEBHOOK_SECRET_ARN``).
    max_age
        Seconds a read value is reused.
    provider
        A Powertools ``SecretsProvider`` (tests pass one with their own client); by default one whose
        client gives up within a few seconds, as a CRM waits for the answer.
    """

    def __init__(self, secret_id: str, *, max_age: int = 300, provider: BaseProvider | None = None) -> None:
        self.secret_id = secret_id
        self.max_age = max_age
        self._provider = provider
        self._parsed: tuple[str | bytes, CrmSecrets] | None = None

    @property
    def provider(self) -> BaseProvider:
        """The provider; made on first use (boto3 loads only when a delivery needs it)."""
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider
            from botocore.config import Config

            config = Config(
                connect_timeout=2, read_timeout=2, retries={"mode": "standard", "max_attempts": 2}
            )
            self._provider = SecretsProvider(boto_config=config)
        return self._provider

    def load(self, *, force_fetch: bool = False) -> CrmSecrets:
        """Return the validated secret (cached; validated again only when its text changed).

        Parameters
        ----------
        force_fetch
            Read Secrets Manager even if the cached value is younger than ``max_age``.

        Raises
        ------
        WebhookSecretError
            Secrets Manager failed or refused, or the secret is not valid (503).
        CrmNotConfiguredError
            No CRM is configured yet (404).
        """
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            raw = self.provider.get(self.secret_id, max_age=self.max_age, force_fetch=force_fetch)
        except GetParameterError as exc:
            logger.error("the webhook secret cannot be read", error=str(exc))
            raise WebhookSecretError("the webhook secret cannot be read") from exc
        if not isinstance(raw, str | bytes):
            raise WebhookSecretError("the webhook secret is not a string")
        if self._parsed is None or self._parsed[0] != raw:
            self._parsed = (raw, parse_webhook_secret(raw))
        return self._parsed[1]


def parse_delivery(crm: CrmName | str, request: WebhookRequest, secret: WebhookSecret) -> list[DealEvent]:
    """Verify and parse a delivery (:func:`closedloop.crm.parse_crm_webhook`) with the webhook secret.

    The secret is cached for minutes, and HubSpot never retries a 401 or a 404: a delivery signed with
    a just-rotated secret, or sent just after the CRM was set up, would be lost. So before refusing one
    for its signature or for a CRM that is not configured, the secret is read again, once, bypassing
    the cache.

    Raises
    ------
    WebhookAuthError, CrmNotConfiguredError
        Refused with the fresh secret too (401, 404).
    ClosedloopError
        As :func:`closedloop.crm.parse_crm_webhook` and :meth:`WebhookSecret.load`.
    """
    try:
        return parse_crm_webhook(crm, request, secret.load())
    except (WebhookAuthError, CrmNotConfiguredError):
        fresh = secret.load(force_fetch=True)
    return parse_crm_webhook(crm, request, fresh)
