"""How a deal's state moves with each event: ordering, duplicates, reopening, and the moments attribution
needs (opportunity creation, won, lost).

CRMs deliver at least once and not always in order (Salesforce says so; HubSpot and Pipedrive retry),
so the state only moves forward: an event older than the state is ignored, and so is the same event
twice. The store calls :func:`next_deal_state` inside a conditional write.
"""

from __future__ import annotations

from closedloop.crm.errors import DealStateError
from closedloop.crm.models import DealEvent, DealLifecycle, DealState

__all__ = ["next_deal_state"]


def _lifecycle_after(current: DealLifecycle, incoming: DealLifecycle) -> DealLifecycle:
    # A closed deal that comes back to an open stage is "reopened", whether the adapter saw the
    # previous status (Pipedrive) or only the store knows it (everyone else); it stays "reopened"
    # through later open-stage moves until it closes again.
    if incoming is DealLifecycle.OPEN and current in (
        DealLifecycle.WON,
        DealLifecycle.LOST,
        DealLifecycle.REOPENED,
    ):
        return DealLifecycle.REOPENED
    return incoming


def next_deal_state(current: DealState | None, event: DealEvent) -> DealState | None:
    """Apply one deal event to the deal's state.

    Parameters
    ----------
    current
        The stored state of the deal, or ``None`` when the store has none yet.
    event
        The normalised event from a CRM adapter.

    Returns
    -------
    DealState or None
        The new state to write, or ``None`` to ignore the event: it is older than the state
        (``event.version < current.version``) or the very event applied last (a replay). An event with
        the same version but another id (two property changes HubSpot sent for one save) is applied:
        its known fields are merged.

    Raises
    ------
    DealStateError
        When the event belongs to another deal or CRM than ``current``.

    Notes
    -----
    - Fields the event does not carry (``None``, no e-mails) keep their stored value; contact e-mails
      accumulate, because every contact ever on the deal may have been touched by marketing.
    - ``opportunity_created_at`` is set once: the CRM's creation time when known, else the first
      event's time; an event that reveals an earlier creation time moves it back.
    - ``won_at`` / ``lost_at`` / ``reopened_at`` are set when the deal enters that lifecycle (a deal
      won twice keeps the later win); ``deleted_at`` is cleared when a deleted deal comes back.
    """
    if current is None:
        lifecycle = event.lifecycle
        return DealState(
            crm=event.crm,
            deal_id=event.deal_id,
            lifecycle=lifecycle,
            version=event.version,
            updated_at=event.occurred_at,
            last_event_id=event.event_id,
            contact_emails=event.contact_emails,
            pipeline=event.pipeline,
            stage=event.stage,
            amount=event.amount,
            currency=event.currency,
            close_date=event.close_date,
            opportunity_created_at=event.created_at if event.created_at is not None else event.occurred_at,
            won_at=event.occurred_at if lifecycle is DealLifecycle.WON else None,
            lost_at=event.occurred_at if lifecycle is DealLifecycle.LOST else None,
            reopened_at=event.occurred_at if lifecycle is DealLifecycle.REOPENED else None,
            deleted_at=event.occurred_at if lifecycle is DealLifecycle.DELETED else None,
        )

    if (current.crm, current.deal_id) != (event.crm, event.deal_id):
        raise DealStateError(
            f"event for {event.crm.value} deal {event.deal_id!r} applied to {current.crm.value} deal "
            f"{current.deal_id!r}"
        )
    if event.version < current.version or event.event_id == current.last_event_id:
        return None

    lifecycle = _lifecycle_after(current.lifecycle, event.lifecycle)
    entered = lifecycle is not current.lifecycle
    at = event.occurred_at

    created_candidates = [t for t in (current.opportunity_created_at, event.created_at) if t is not None]
    merged_emails = dict.fromkeys((*current.contact_emails, *event.contact_emails))

    return current.model_copy(
        update={
            "lifecycle": lifecycle,
            "version": max(event.version, current.version),
            "updated_at": max(at, current.updated_at),
            "last_event_id": event.event_id,
            "contact_emails": tuple(merged_emails),
            "pipeline": event.pipeline if event.pipeline is not None else current.pipeline,
            "stage": event.stage if event.stage is not None else current.stage,
            "amount": event.amount if event.amount is not None else current.amount,
            "currency": event.currency if event.currency is not None else current.currency,
            "close_date": event.close_date if event.close_date is not None else current.close_date,
            "opportunity_created_at": min(created_candidates) if created_candidates else at,
            "won_at": at if entered and lifecycle is DealLifecycle.WON else current.won_at,
            "lost_at": at if entered and lifecycle is DealLifecycle.LOST else current.lost_at,
            "reopened_at": at if entered and lifecycle is DealLifecycle.REOPENED else current.reopened_at,
            "deleted_at": (
                (at if entered else current.deleted_at) if lifecycle is DealLifecycle.DELETED else None
            ),
        }
    )
