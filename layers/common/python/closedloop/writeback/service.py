"""Writing one lead's source fields to each configured CRM: compute, compare, write, remember.

For a "lead changed" message the worker calls :func:`write_back_lead`:

1. read the lead and its journey (an erased lead, or one with no touch, has nothing to write);
2. compute the fields once (:func:`closedloop.writeback.fields.source_fields`);
3. for each CRM: build what would be written to the contact (and to each deal whose first contact is
   the lead, in that deal's own CRM), skip it when its digest equals the one last written
   (idempotent: the same values are never written twice), else write it and remember the digest.

A failing CRM does not stop the others; once every CRM was tried, a real failure is raised (the
message is retried and counts an attempt), else, when only rate limits stopped it,
:class:`~closedloop.writeback.throttle.CrmRateLimitedError` (the lead is re-queued for after the wait,
without counting). A rate-limited CRM is held back (:class:`~closedloop.writeback.throttle.CrmThrottle`)
and not called for the following leads until its wait has passed (a lead with nothing new for it is not
re-queued for it). Either way the CRMs already written skip by their digest on the retry.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from closedloop.changes import lead_journey
from closedloop.clock import iso_ms
from closedloop.crm.errors import CrmApiError, CrmApiRetryableError
from closedloop.crm.models import CrmName
from closedloop.models.leads import Lead, VisitorLink
from closedloop.models.visits import Touch
from closedloop.store.writeback import SyncState, sync_key
from closedloop.writeback.fields import SourceFields, fields_hash, source_fields
from closedloop.writeback.throttle import CrmRateLimitedError, CrmThrottle, is_rate_limit

if TYPE_CHECKING:
    from closedloop.crm.config import CrmSecrets
    from closedloop.deals import DealLink, StoredDeal

__all__ = [
    "MAX_VISIBILITY_SECONDS",
    "CrmWriter",
    "WritebackReport",
    "WritebackStore",
    "configured_writers",
    "retry_delay",
    "write_back_lead",
]

# SQS's longest visibility timeout: 12 hours.
MAX_VISIBILITY_SECONDS = 43_200


class CrmWriter(Protocol):
    """What the service needs of one CRM (:class:`~closedloop.writeback.hubspot.HubSpotWriter`...)."""

    crm: CrmName
    writes_contacts: bool
    writes_deals: bool

    def contact_payload(self, fields: SourceFields) -> Mapping[str, object]: ...
    def deal_payload(self, fields: SourceFields) -> Mapping[str, object]: ...
    def write_contact(
        self, email: str, payload: Mapping[str, object], *, synced_at: str, record_id: str | None = None
    ) -> str | None: ...
    def write_deal(self, deal_id: str, payload: Mapping[str, object], *, synced_at: str) -> bool: ...


class WritebackStore(Protocol):
    """What the service reads and writes (:class:`~closedloop.store.DynamoStore`)."""

    def get_lead(self, lead_id: str) -> Lead | None: ...
    def links_of_lead(self, lead_id: str) -> list[VisitorLink]: ...
    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]: ...
    def touches_of_visitor(self, visitor_id: str) -> list[Touch]: ...
    def deals_of_lead(self, lead_id: str) -> list[DealLink]: ...
    def get_deal(self, crm: CrmName | str, deal_id: str) -> StoredDeal | None: ...
    def get_sync_state(self, lead_id: str, target: str) -> SyncState | None: ...
    def put_sync_state(self, state: SyncState) -> None: ...


@dataclass
class WritebackReport:
    """What one message did, by target (``hubspot#contact``, ``pipedrive#deal#42``...)."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # no such record in the CRM (yet)
    nothing_to_write: bool = False


def _write_target(
    writer: CrmWriter,
    store: WritebackStore,
    report: WritebackReport,
    *,
    lead_id: str,
    target: str,
    payload: Mapping[str, object],
    now: int,
    write: str,
    record: str,
    held: float | None,
) -> None:
    digest = fields_hash(payload)
    previous = store.get_sync_state(lead_id, target)
    if previous is not None and previous.digest == digest:
        report.unchanged.append(target)
        return
    if held is not None:  # the CRM told another lead to wait: do not ask again before then
        raise CrmRateLimitedError({str(writer.crm): held})
    synced_at = iso_ms(now)
    if write == "contact":
        kwargs = {"record_id": previous.record_id} if previous and previous.record_id else {}
        record_id = writer.write_contact(record, payload, synced_at=synced_at, **kwargs)
        found = record_id is not None
    else:
        found = writer.write_deal(record, payload, synced_at=synced_at)
        record_id = record
    if not found:
        report.missing.append(target)
        return
    store.put_sync_state(
        SyncState(lead_id=lead_id, target=target, digest=digest, record_id=record_id or None, synced_at=now)
    )
    report.written.append(target)


def _most_urgent(errors: Sequence[CrmApiError]) -> CrmApiError:
    """The error to retry by: one that says how long to wait (the longest) before any other."""
    timed = [e for e in errors if isinstance(e, CrmApiRetryableError) and e.retry_after is not None]
    if timed:
        return max(timed, key=lambda e: e.retry_after or 0.0)
    return errors[0]


def write_back_lead(
    lead_id: str,
    *,
    store: WritebackStore,
    writers: Sequence[CrmWriter],
    now: int,
    throttle: CrmThrottle | None = None,
) -> WritebackReport:
    """Write the lead's source fields to every writer's CRM (see the module docstring).

    Parameters
    ----------
    lead_id
        The lead of the "lead changed" message.
    store
        The table.
    writers
        One per CRM configured for write-back.
    now
        The current time, ms (the latest source is the last touch before it; the sync time).
    throttle
        The CRMs held back by earlier rate limits (skipped here), updated with this lead's.

    Returns
    -------
    WritebackReport
        What was written, unchanged, and not found in a CRM.

    Raises
    ------
    CrmApiError
        A CRM failed (``CrmApiRetryableError`` for a 5xx or timeout); the other CRMs were tried first.
    CrmRateLimitedError
        Nothing failed, but some CRMs were rate-limited or held back, and were not written.
    StoreUnavailableError
        DynamoDB failed.
    """
    report = WritebackReport()
    lead = store.get_lead(lead_id)
    fields = source_fields(lead, lead_journey(store, [lead_id]), now=now) if lead else None
    if lead is None or fields is None or not writers:
        report.nothing_to_write = True
        return report

    deals: list[StoredDeal] | None = None
    errors: list[CrmApiError] = []
    waits: dict[str, float] = {}
    for writer in writers:
        crm = str(writer.crm)
        held = throttle.wait(crm, now=now) if throttle is not None else None
        try:
            if writer.writes_contacts:
                _write_target(
                    writer,
                    store,
                    report,
                    lead_id=lead_id,
                    target=sync_key(crm),
                    payload=writer.contact_payload(fields),
                    now=now,
                    write="contact",
                    record=lead.email,
                    held=held,
                )
            if not writer.writes_deals:
                continue
            if deals is None:
                found = (store.get_deal(link.crm, link.deal_id) for link in store.deals_of_lead(lead_id))
                deals = [d for d in found if d is not None]
            for deal in deals:
                # A deal carries the source of its first contact, in its own CRM.
                if str(deal.crm) != crm or not deal.lead_ids or deal.lead_ids[0] != lead_id:
                    continue
                _write_target(
                    writer,
                    store,
                    report,
                    lead_id=lead_id,
                    target=sync_key(crm, deal.deal_id),
                    payload=writer.deal_payload(fields),
                    now=now,
                    write="deal",
                    record=deal.deal_id,
                    held=held,
                )
        except CrmApiError as exc:
            if not is_rate_limit(exc):
                errors.append(exc)
                continue
            retry_after = exc.retry_after if isinstance(exc, CrmApiRetryableError) else None
            waits[crm] = (throttle or CrmThrottle()).hold(crm, retry_after, now=now)
    if errors:
        raise _most_urgent(errors)
    if waits:
        raise CrmRateLimitedError(waits)
    return report


def retry_delay(
    error: Exception | None,
    receive_count: int,
    *,
    base_seconds: int,
    max_seconds: int,
    rng: random.Random | None = None,
) -> int:
    """Seconds until a failed message is tried again (its new visibility timeout).

    A rate limit's ``Retry-After`` (or Pipedrive's ``x-ratelimit-reset``) is obeyed, plus a second,
    up to SQS's 12 hours. Otherwise exponential back-off with jitter: between half and all of
    ``base * 2^(receives - 1)``, capped at ``max_seconds``.
    """
    if isinstance(error, CrmApiRetryableError) and error.retry_after is not None:
        return min(MAX_VISIBILITY_SECONDS, math.ceil(error.retry_after) + 1)
    ceiling = min(max_seconds, base_seconds * 2 ** max(0, receive_count - 1))
    jitter = (rng or random.Random()).uniform(0.5, 1.0)  # noqa: S311 - spreading retries, not security
    return max(1, min(MAX_VISIBILITY_SECONDS, round(ceiling * jitter)))


def configured_writers(secrets: CrmSecrets) -> list[CrmWriter]:
    """One writer per CRM section whose ``writeback`` is enabled (and has what it needs)."""
    from closedloop.writeback.hubspot import HubSpotWriter
    from closedloop.writeback.pipedrive import PipedriveWriter
    from closedloop.writeback.salesforce import SalesforceWriter

    writers: list[CrmWriter | None] = [
        HubSpotWriter.from_config(secrets.hubspot) if secrets.hubspot else None,
        SalesforceWriter.from_config(secrets.salesforce) if secrets.salesforce else None,
        PipedriveWriter.from_config(secrets.pipedrive) if secrets.pipedrive else None,
    ]
    return [writer for writer in writers if writer is not None]
