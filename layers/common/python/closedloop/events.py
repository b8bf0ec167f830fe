"""Closedloop's domain events: versioned schemas, and the publisher that puts them on an EventBridge bus.

Every event is an EventBridge entry with ``source`` ``closedloop`` and a ``detail-type`` that names the
event and its schema version (``closedloop.lead.identified.v1``); ``detail`` is the event's model as
JSON. A schema only ever gains optional fields within a version; anything else is a new ``.v2``
published next to the old one for a transition. ``docs/events.md`` lists every event with an example.

Events carry pseudonymous ids (visitor, lead, touch) and marketing sources; the one personal datum is
the e-mail in ``lead.identified``, which the automation recipes need (adding the person to a list).

Events are decided from committed table changes (:mod:`closedloop.changes`), so a retried request,
which writes nothing, publishes nothing. ``event_id`` is derived from what changed: the same change
always has the same id, and a consumer that must not act twice dedupes on it (EventBridge itself
delivers at least once).

Every entry is sized before ``PutEvents`` as EventBridge documents it (:func:`entry_size`) and kept
within :data:`ENTRY_BUDGET`: a won deal's journey is the one part without a bound (130 sessions with
1,000-character UTM tags make 285 KB), so ``deal.won`` keeps the touches with the most credit and says
how many it left out (:meth:`DealWon.within`). An entry EventBridge can never accept (still too large,
or refused as invalid) is reported as refused, never retried: it would hold every record behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from closedloop import aws

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

__all__ = [
    "ENTRY_BUDGET",
    "EVENT_SOURCE",
    "EVENT_TYPES",
    "MAX_ENTRIES_PER_CALL",
    "MAX_ENTRY_BYTES",
    "ChannelCredit",
    "DealAttribution",
    "DealStageChanged",
    "DealWon",
    "DomainEvent",
    "EventPublisher",
    "LeadIdentified",
    "LeadMerged",
    "PublishResult",
    "TouchCredit",
    "TouchRecorded",
    "TouchSource",
    "bounded_event",
    "entry_size",
    "event_entry",
    "ms_to_datetime",
]

EVENT_SOURCE = "closedloop"
# PutEvents takes at most 10 entries per call, 256 KiB in total; EventBridge refuses a larger entry.
MAX_ENTRIES_PER_CALL = 10
MAX_CALL_BYTES = 256 * 1024
MAX_ENTRY_BYTES = MAX_CALL_BYTES
# What an entry is kept within: half EventBridge's limit, so the event as a target receives it (the
# envelope, a rule's input transformer) still fits a 256 KB target (SQS, Lambda's asynchronous
# invocation), and two won deals share a call.
ENTRY_BUDGET = 128 * 1024
# PutEvents' per-entry errors that retrying the same entry can never fix (EventBridge's API reference).
# Access and authorisation errors are left out on purpose: they fail every entry, so they are retried
# and alarm rather than being dropped one by one.
INVALID_ENTRY_ERRORS = frozenset({"InvalidArgument", "MalformedDetail"})


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime (events carry ISO 8601 times)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class TouchSource(BaseModel):
    """Where a touch came from, as the channel rules classified it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: Annotated[str, Field(description="GA4-style default channel group, e.g. `Paid Social`.")]
    source: Annotated[str, Field(description="utm_source or the referrer's name, e.g. `linkedin`.")]
    medium: Annotated[str, Field(description="utm_medium or the derived medium, e.g. `cpc`.")]
    campaign: Annotated[str | None, Field(description="utm_campaign, when the visit had one.")] = None


class DomainEvent(BaseModel):
    """Fields every event has. ``detail_type`` names the event and its schema version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detail_type: ClassVar[str]

    event_id: Annotated[
        str, Field(description="Stable id of the change: the same change always has the same id.")
    ]
    occurred_at: Annotated[datetime, Field(description="When the change happened (UTC).")]


class TouchRecorded(DomainEvent):
    """A visitor started a session: a touch, with the source that brought them."""

    detail_type: ClassVar[str] = "closedloop.touch.recorded.v1"

    visitor_id: str
    touch_id: str
    lead_id: Annotated[
        str | None, Field(description="The lead the visitor belongs to at that time, if identified.")
    ] = None
    source: TouchSource
    term: str | None = None
    content: str | None = None
    click_id_type: Annotated[
        str | None, Field(description="Which ad click id the landing URL had (`gclid`...), not its value.")
    ] = None
    landing_host: str
    landing_path: str


class LeadIdentified(DomainEvent):
    """A form was submitted: a lead was created or identified again, with its sources at that time."""

    detail_type: ClassVar[str] = "closedloop.lead.identified.v1"

    lead_id: str
    email: Annotated[str, Field(description="The lead's normalised e-mail (automation needs it).")]
    new_lead: Annotated[bool, Field(description="True for the lead's first submission.")]
    submission_id: str
    form_id: str | None = None
    page_path: str | None = None
    visitor_id: str | None = None
    original_source: Annotated[
        TouchSource | None, Field(description="First touch of the lead's journey.")
    ] = None
    lead_creation_source: Annotated[
        TouchSource | None, Field(description="Last touch at or before the lead was created.")
    ] = None
    latest_source: Annotated[
        TouchSource | None, Field(description="Last touch at or before this submission.")
    ] = None
    touches: Annotated[int, Field(ge=0, description="Touches in the journey up to this submission.")] = 0


class LeadMerged(DomainEvent):
    """Another visitor (a second device, or a shared computer's new owner) joined a lead's journey."""

    detail_type: ClassVar[str] = "closedloop.lead.merged.v1"

    lead_id: str
    visitor_id: Annotated[str, Field(description="The visitor that joined.")]
    visitors: Annotated[int, Field(ge=2, description="The lead's visitors (devices) now.")]
    linked_from: Annotated[
        datetime | None, Field(description="Touches of the visitor from this time on are the lead's.")
    ] = None


class DealStageChanged(DomainEvent):
    """A CRM deal was created, or moved to another stage or lifecycle (won, lost, reopened...)."""

    detail_type: ClassVar[str] = "closedloop.deal.stage_changed.v1"

    crm: str
    deal_id: str
    pipeline: str | None = None
    stage: str | None = None
    previous_stage: str | None = None
    lifecycle: str
    previous_lifecycle: Annotated[str | None, Field(description="`null` for a deal seen the first time.")] = (
        None
    )
    amount: Annotated[str | None, Field(description="Exact decimal, as the CRM sent it.")] = None
    currency: str | None = None
    lead_ids: tuple[str, ...] = ()


class TouchCredit(BaseModel):
    """One credited touch of a won deal's journey."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    touch_id: str
    touched_at: datetime
    source: TouchSource
    credit: Annotated[float, Field(ge=0, le=1)]
    revenue_credit: Annotated[float, Field(description="Share of the amount, in the deal's currency.")]


class ChannelCredit(BaseModel):
    """A channel's total credit in one won deal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str
    credit: Annotated[float, Field(ge=0, le=1)]
    revenue_credit: float


class DealAttribution(BaseModel):
    """A won deal's credit under one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Annotated[str, Field(description="The attribution model, e.g. `w_shaped`.")]
    lookback_days: float
    touches: tuple[TouchCredit, ...] = ()
    channels: tuple[ChannelCredit, ...] = Field(default=(), description="By credit, largest first.")
    touches_omitted: Annotated[
        int,
        Field(
            ge=0,
            description="Credited touches left out of `touches` to keep the event within its size "
            "budget (those with the least credit); `channels` still counts them.",
        ),
    ] = 0


class DealWon(DomainEvent):
    """A CRM deal was won, with the credit its journey gets under the default model."""

    detail_type: ClassVar[str] = "closedloop.deal.won.v1"

    crm: str
    deal_id: str
    pipeline: str | None = None
    stage: str | None = None
    amount: str | None = None
    currency: str | None = None
    lead_ids: tuple[str, ...] = ()
    original_source: Annotated[
        TouchSource | None, Field(description="The first touch of the deal's journey.")
    ] = None
    credited_channels: Annotated[
        tuple[str, ...],
        Field(description="Channels with credit, largest first (flat, for EventBridge rule patterns)."),
    ] = ()
    attribution: DealAttribution

    def within(self, budget: int) -> DealWon:
        """This event with as many of its credited touches as fit ``budget`` bytes (entry size).

        The touches with the most credit stay (ties: the earlier), in their journey order; the others
        are counted in ``attribution.touches_omitted``. The channel totals are the whole journey's.
        """
        if entry_size(event_entry(self, "")) <= budget:
            return self
        touches = self.attribution.touches
        ranked = sorted(range(len(touches)), key=lambda i: (-touches[i].credit, touches[i].touched_at, i))

        def keeping(count: int) -> DealWon:
            kept = sorted(ranked[:count])
            attribution = self.attribution.model_copy(
                update={
                    "touches": tuple(touches[i] for i in kept),
                    "touches_omitted": self.attribution.touches_omitted + len(touches) - count,
                }
            )
            return self.model_copy(update={"attribution": attribution})

        low, high = 0, len(touches)  # the largest count that fits, by bisection (size grows with it)
        while low < high:
            middle = (low + high + 1) // 2
            if entry_size(event_entry(keeping(middle), "")) <= budget:
                low = middle
            else:
                high = middle - 1
        return keeping(low)


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    TouchRecorded,
    LeadIdentified,
    LeadMerged,
    DealStageChanged,
    DealWon,
)


def event_entry(event: DomainEvent, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of an event: ``source`` closedloop, its versioned ``detail-type``, its JSON."""
    return {
        "Source": EVENT_SOURCE,
        "DetailType": event.detail_type,
        "Detail": event.model_dump_json(),
        "EventBusName": bus_name,
        "Time": event.occurred_at,
    }


def entry_size(entry: dict[str, Any]) -> int:
    """A ``PutEvents`` entry's size as EventBridge calculates it ("Calculating PutEvents event entry
    size"): 14 bytes for ``Time`` if set, the UTF-8 bytes of ``Source``, ``DetailType``, ``Detail``
    and of each of ``Resources``. The bus name does not count."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        if entry.get(name) is not None:
            size += len(str(entry[name]).encode("utf-8"))
    return size + sum(len(str(resource).encode("utf-8")) for resource in entry.get("Resources") or ())


def bounded_event(event: DomainEvent, budget: int = ENTRY_BUDGET) -> DomainEvent:
    """The event as it is published: a won deal's journey capped to ``budget`` (:meth:`DealWon.within`);
    every other event's fields are bounded at ingest, so it is returned as is."""
    return event.within(budget) if isinstance(event, DealWon) else event


@dataclass(frozen=True, slots=True)
class PublishResult:
    """``published`` events went out, in order; ``first_failed`` is the index of the first that did
    not and must be retried (``None`` when none); events after it may have gone out too (same call).
    ``refused`` are the indexes, before ``first_failed``, of events EventBridge can never accept
    (too large, or refused as invalid): they are not retried."""

    published: int
    first_failed: int | None = None
    refused: tuple[int, ...] = ()


class EventPublisher:
    """Puts domain events on one EventBridge bus, 10 entries per ``PutEvents`` call, in order.

    Parameters
    ----------
    bus_name
        The bus (``EVENT_BUS_NAME``).
    client
        A boto3 ``events`` client (tests pass moto's); made on first use otherwise.
    """

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self.bus_name = bus_name
        self._client = client

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = aws.client("events")
        return self._client

    def publish(self, events: Sequence[DomainEvent]) -> PublishResult:
        """Publish ``events`` in order, each sized and bounded first, stopping at the first call with
        an entry to retry.

        Returns
        -------
        PublishResult
            How many went out before the first failure to retry, its index, and the events refused.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        refused: list[int] = []
        entries: list[tuple[int, dict[str, Any], int]] = []  # (index of the event, entry, size)
        for index, event in enumerate(events):
            entry = event_entry(bounded_event(event), self.bus_name)
            size = entry_size(entry)
            if size > MAX_ENTRY_BYTES:
                refused.append(index)
            else:
                entries.append((index, entry, size))
        published = 0
        start = 0
        while start < len(entries):
            end, size = start + 1, entries[start][2]
            while (
                end < len(entries)
                and end - start < MAX_ENTRIES_PER_CALL
                and size + entries[end][2] <= MAX_CALL_BYTES
            ):
                size += entries[end][2]
                end += 1
            chunk = entries[start:end]
            first = chunk[0][0]
            try:
                reply = self.client.put_events(Entries=[entry for _, entry, _ in chunk])
            except (ClientError, BotoCoreError):
                return PublishResult(published, first, tuple(i for i in refused if i < first))
            results = list(reply.get("Entries", []))
            if reply.get("FailedEntryCount", 0) and len(results) != len(chunk):
                return PublishResult(published, first, tuple(i for i in refused if i < first))
            for (index, _, _), result in zip(chunk, results, strict=False):
                code = result.get("ErrorCode")
                if not code:
                    published += 1
                elif code in INVALID_ENTRY_ERRORS:
                    refused.append(index)
                else:
                    return PublishResult(published, index, tuple(sorted(i for i in refused if i < index)))
            start = end
        return PublishResult(published, None, tuple(sorted(refused)))
