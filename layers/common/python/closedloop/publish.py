"""Relaying committed table changes: write-back messages first, then domain events, in stream order.

A batch of stream records (one shard, in order) is interpreted record by record. What the records
before the first failure mean is delivered: the "lead changed" messages (one per lead in the batch),
then the events, in order. The function then reports the first record that was not fully delivered,
and Lambda resumes the shard from it (``ReportBatchItemFailures``): nothing before it is repeated,
nothing after it is skipped.

Write-back messages go first because they are idempotent (the worker skips a lead whose fields did
not change); events go last, so a retry repeats as few of them as possible. A retry can still repeat
an event that went out in a ``PutEvents`` call another entry of which failed: consumers dedupe on
``event_id``.

Only what a retry can fix is retried: a failed read, queue or bus call. A record that can never be
delivered does not hold the records behind it (they are other visitors' touches, other leads'
write-backs): a change whose stored image cannot be read as its model is skipped, and an event
EventBridge can never accept (too large even once bounded, or refused as invalid) is refused; each is
logged with its key or event id (pseudonyms, never an e-mail) and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from closedloop.changes import ChangeOutcome, TableChange
from closedloop.errors import DependencyError
from closedloop.events import DomainEvent, EventPublisher
from closedloop.observability import logger
from closedloop.writeback.queue import WritebackQueue

__all__ = ["RelayResult", "relay_changes"]


@dataclass(frozen=True, slots=True)
class RelayResult:
    """What a batch did. ``failed_sequence`` is the sequence number to resume from (``None``: all done)."""

    changes: int
    events: int
    leads: int
    failed_sequence: str | None = None
    skipped: int = 0  # changes that cannot be interpreted, ever (malformed images)
    refused: int = 0  # events EventBridge can never accept


def relay_changes(
    changes: Sequence[TableChange],
    *,
    interpret: Callable[[TableChange], ChangeOutcome],
    publisher: EventPublisher | None,
    queue: WritebackQueue | None,
) -> RelayResult:
    """Interpret the changes and deliver what they mean; see the module docstring for the order.

    Parameters
    ----------
    changes
        One batch of stream records, in order.
    interpret
        :func:`closedloop.changes.interpret_change` with its collaborators bound.
    publisher
        The event bus; ``None`` when events are disabled (no ``EVENT_BUS_NAME``).
    queue
        The write-back queue; ``None`` when write-back is disabled (no ``WRITEBACK_QUEUE_URL``).

    Returns
    -------
    RelayResult
        Counts, and the sequence number of the first record to retry, if any.
    """
    outcomes: list[tuple[TableChange, ChangeOutcome]] = []
    failed: str | None = None
    skipped = 0
    for change in changes:
        try:
            outcomes.append((change, interpret(change)))
        except DependencyError as exc:
            logger.warning("change not interpreted: retried", error=type(exc).__name__, sk_type=change.sk[:2])
            failed = change.sequence_number
            break
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            logger.error(
                "change cannot be interpreted: skipped",
                error=type(exc).__name__,
                sk_type=change.sk[:2],
                sequence_number=change.sequence_number,
            )
            skipped += 1

    leads = [lead for _, outcome in outcomes for lead in outcome.changed_leads]
    if queue is not None and leads:
        try:
            queue.notify(leads)
        except DependencyError as exc:
            logger.warning("write-back messages not sent: batch retried", error=str(exc))
            first = changes[0].sequence_number if changes else None
            return RelayResult(changes=len(changes), events=0, leads=0, failed_sequence=first)

    events: list[tuple[str, DomainEvent]] = [
        (change.sequence_number, event) for change, outcome in outcomes for event in outcome.events
    ]
    published = len(events)
    refused = 0
    if publisher is not None and events:
        result = publisher.publish([event for _, event in events])
        published = result.published
        refused = len(result.refused)
        for index in result.refused:
            sequence, event = events[index]
            logger.error(
                "event refused: EventBridge can never accept it",
                detail_type=event.detail_type,
                event_id=event.event_id,
                sequence_number=sequence,
            )
        if result.first_failed is not None:
            logger.warning("events not published: retried from the first", failed=len(events) - published)
            failed = events[result.first_failed][0]
    return RelayResult(
        changes=len(changes),
        events=published if publisher is not None else 0,
        leads=len(set(leads)) if queue is not None else 0,
        failed_sequence=failed,
        skipped=skipped,
        refused=refused,
    )
