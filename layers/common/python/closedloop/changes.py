"""What a committed change of the table means: the domain events to publish and the leads to write back.

The table's stream (new and old images) carries every committed write, once, in order per item; a
retried request that finds its key stored writes nothing, so it produces no change and no event. The
publish function reads the stream and calls :func:`interpret_change` for each change of interest:

==================================  ================================  =================================
change                              events                            leads whose CRM fields to refresh
==================================  ================================  =================================
touch inserted (``V#`` / ``T#``)    ``touch.recorded``                the visitor's lead at that time
submission inserted (``L#``/``S#``)  ``lead.identified``               the lead
lead's visitor link inserted        ``lead.merged`` (2nd+ visitor)    the lead
lead linked to a deal (``DEAL#``)   none                              the lead (its deal now exists)
deal state inserted or modified     ``deal.stage_changed`` (stage or  none
                                    lifecycle moved), ``deal.won``
==================================  ================================  =================================

The Lambda event source mapping drops every other change before the function runs
(:data:`STREAM_FILTERS`); :func:`is_relevant` applies the same rules in code.

Events are enriched by reading the table (the touch's lead, the journey's sources, the deal's credit):
they describe the change with what is stored when the change is published, a few seconds later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from closedloop.events import (
    DealAttribution,
    DealStageChanged,
    DealWon,
    DomainEvent,
    LeadIdentified,
    LeadMerged,
    TouchRecorded,
    TouchSource,
    ms_to_datetime,
)
from closedloop.identity import journey_touches, lead_sources
from closedloop.models.leads import Lead, LeadSource, Submission, VisitorLink
from closedloop.models.visits import Touch

if TYPE_CHECKING:
    from closedloop.deals import StoredDeal

__all__ = [
    "STREAM_FILTERS",
    "ChangeOutcome",
    "ChangeReader",
    "DealCredit",
    "TableChange",
    "interpret_change",
    "is_relevant",
    "lead_journey",
]

# Lambda event source mapping filters (EventBridge pattern syntax on the stream record): only these
# changes invoke the publish function. Keep in step with is_relevant().
STREAM_FILTERS: tuple[dict[str, Any], ...] = (
    {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "T#"}, {"prefix": "S#"}]}}}},
    {
        "eventName": ["INSERT"],
        "dynamodb": {
            "Keys": {"pk": {"S": [{"prefix": "L#"}]}, "sk": {"S": [{"prefix": "V#"}, {"prefix": "DEAL#"}]}}
        },
    },
    {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "D#"}]}, "sk": {"S": ["STATE"]}}},
    },
)


@dataclass(frozen=True, slots=True)
class TableChange:
    """One stream record: the item's keys and its images, deserialised (numbers are ``Decimal``)."""

    event_name: str  # INSERT, MODIFY or REMOVE
    pk: str
    sk: str
    new: Mapping[str, Any] | None
    old: Mapping[str, Any] | None
    sequence_number: str


def is_relevant(change: TableChange) -> bool:
    """Whether the change is one :func:`interpret_change` acts on (the same rules as the filters)."""
    if change.event_name == "INSERT" and (change.sk.startswith(("T#", "S#"))):
        return change.pk.startswith("V#") if change.sk.startswith("T#") else change.pk.startswith("L#")
    if change.event_name == "INSERT" and change.pk.startswith("L#"):
        return change.sk.startswith(("V#", "DEAL#"))
    return change.event_name in {"INSERT", "MODIFY"} and change.pk.startswith("D#") and change.sk == "STATE"


class ChangeReader(Protocol):
    """What interpreting a change reads (:class:`~closedloop.store.DynamoStore`)."""

    def get_lead(self, lead_id: str) -> Lead | None: ...
    def links_of_lead(self, lead_id: str) -> list[VisitorLink]: ...
    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]: ...
    def touches_of_visitor(self, visitor_id: str) -> list[Touch]: ...


# (deal, its journey, when its primary contact became a lead) -> its credit under the default model.
DealCredit = Callable[["StoredDeal", Sequence[Touch], int | None], DealAttribution]


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What one change means: events to publish, in order, and leads whose CRM fields may have changed."""

    events: tuple[DomainEvent, ...] = ()
    changed_leads: tuple[str, ...] = ()


def _plain(value: Any) -> Any:
    """Stream images as the models read them: integral Decimals become ints, other numbers floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value


def _fields(model: type[Any], image: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in image.items() if k in model.model_fields}


def _source(source: LeadSource | None) -> TouchSource | None:
    if source is None:
        return None
    return TouchSource(
        channel=source.channel, source=source.source, medium=source.medium, campaign=source.campaign
    )


def lead_journey(reader: ChangeReader, lead_ids: Sequence[str]) -> list[Touch]:
    """The leads' journey: their visitors' touches within each link's interval, in time order, once."""
    links = [link for lead_id in lead_ids for link in reader.links_of_lead(lead_id)]
    touches: dict[str, list[Touch]] = {}
    for link in links:
        if link.visitor_id not in touches:
            touches[link.visitor_id] = reader.touches_of_visitor(link.visitor_id)
    return journey_touches(links, touches)


def _touch_recorded(change: TableChange, reader: ChangeReader) -> ChangeOutcome:
    touch = Touch.model_validate(_fields(Touch, _plain(change.new)))
    owner = next(
        (
            link.lead_id
            for link in reader.links_of_visitor(touch.visitor_id)
            if link.covers(touch.occurred_at)
        ),
        None,
    )
    event = TouchRecorded(
        event_id=f"touch:{touch.visitor_id}:{touch.touch_id}",
        occurred_at=ms_to_datetime(touch.occurred_at),
        visitor_id=touch.visitor_id,
        touch_id=touch.touch_id,
        lead_id=owner,
        source=TouchSource(
            channel=touch.channel, source=touch.source, medium=touch.medium, campaign=touch.campaign
        ),
        term=touch.term,
        content=touch.content,
        click_id_type=touch.click_id_type,
        landing_host=touch.landing_host,
        landing_path=touch.landing_path,
    )
    return ChangeOutcome(events=(event,), changed_leads=(owner,) if owner else ())


def _lead_identified(change: TableChange, reader: ChangeReader) -> ChangeOutcome:
    submission = Submission.model_validate(_fields(Submission, _plain(change.new)))
    lead = reader.get_lead(submission.lead_id)
    if lead is None:  # erased since
        return ChangeOutcome()
    journey = [t for t in lead_journey(reader, [lead.lead_id]) if t.occurred_at <= submission.occurred_at]
    original, at_creation, latest = lead_sources(
        journey, lead_created_at=lead.created_at, now=submission.occurred_at
    )
    event = LeadIdentified(
        event_id=f"submission:{lead.lead_id}:{submission.submission_id}",
        occurred_at=ms_to_datetime(submission.occurred_at),
        lead_id=lead.lead_id,
        email=lead.email,
        new_lead=lead.created_at == submission.occurred_at,
        submission_id=submission.submission_id,
        form_id=submission.form_id,
        page_path=submission.page_path,
        visitor_id=submission.visitor_id,
        original_source=_source(original),
        lead_creation_source=_source(at_creation),
        latest_source=_source(latest),
        touches=len(journey),
    )
    return ChangeOutcome(events=(event,), changed_leads=(lead.lead_id,))


def _visitor_linked(change: TableChange, reader: ChangeReader) -> ChangeOutcome:
    link = VisitorLink.model_validate(_fields(VisitorLink, _plain(change.new)))
    # The lead's visitors when this link was made (the relay may read after later links were added).
    visitors = {
        other.visitor_id for other in reader.links_of_lead(link.lead_id) if other.linked_at <= link.linked_at
    } | {link.visitor_id}
    if len(visitors) < 2:
        return ChangeOutcome(changed_leads=(link.lead_id,))
    event = LeadMerged(
        event_id=f"merge:{link.lead_id}:{link.visitor_id}:{link.linked_from}",
        occurred_at=ms_to_datetime(link.linked_at),
        lead_id=link.lead_id,
        visitor_id=link.visitor_id,
        visitors=len(visitors),
        linked_from=ms_to_datetime(link.linked_from) if link.linked_from else None,
    )
    return ChangeOutcome(events=(event,), changed_leads=(link.lead_id,))


def _deal(image: Mapping[str, Any] | None) -> StoredDeal | None:
    from closedloop.deals import StoredDeal

    if not image:
        return None
    return StoredDeal.model_validate(_fields(StoredDeal, image))


def _deal_changed(change: TableChange, reader: ChangeReader, credit: DealCredit) -> ChangeOutcome:
    from closedloop.crm.models import DealLifecycle

    deal = _deal(change.new)
    if deal is None:
        return ChangeOutcome()
    previous = _deal(change.old)
    events: list[DomainEvent] = []
    crm = str(deal.crm)
    amount = None if deal.amount is None else str(deal.amount)
    if previous is None or (previous.stage, previous.lifecycle) != (deal.stage, deal.lifecycle):
        events.append(
            DealStageChanged(
                event_id=f"deal:{crm}:{deal.deal_id}:{deal.revision}",
                occurred_at=ms_to_datetime(deal.updated_at),
                crm=crm,
                deal_id=deal.deal_id,
                pipeline=deal.pipeline,
                stage=deal.stage,
                previous_stage=previous.stage if previous else None,
                lifecycle=str(deal.lifecycle),
                previous_lifecycle=str(previous.lifecycle) if previous else None,
                amount=amount,
                currency=deal.currency,
                lead_ids=deal.lead_ids,
            )
        )
    won_now = deal.lifecycle is DealLifecycle.WON
    if won_now and (previous is None or previous.lifecycle is not DealLifecycle.WON):
        won_at = deal.won_at or deal.updated_at
        journey = [t for t in lead_journey(reader, deal.lead_ids) if t.occurred_at <= won_at]
        primary = reader.get_lead(deal.lead_ids[0]) if deal.lead_ids else None
        attribution = credit(deal, journey, primary.created_at if primary else None)
        first = journey[0] if journey else None
        events.append(
            DealWon(
                event_id=f"won:{crm}:{deal.deal_id}:{deal.revision}",
                occurred_at=ms_to_datetime(won_at),
                crm=crm,
                deal_id=deal.deal_id,
                pipeline=deal.pipeline,
                stage=deal.stage,
                amount=amount,
                currency=deal.currency,
                lead_ids=deal.lead_ids,
                original_source=TouchSource(
                    channel=first.channel, source=first.source, medium=first.medium, campaign=first.campaign
                )
                if first
                else None,
                credited_channels=tuple(c.channel for c in attribution.channels),
                attribution=attribution,
            )
        )
    return ChangeOutcome(events=tuple(events))


def interpret_change(change: TableChange, *, reader: ChangeReader, credit: DealCredit) -> ChangeOutcome:
    """Decide the events and lead refreshes of one committed change (see the module's table).

    Parameters
    ----------
    change
        One stream record.
    reader
        Reads what the events are enriched with (a consistent read of the table).
    credit
        Credits a won deal's journey (:func:`closedloop.deal_attribution.credit_deal` with the
        configured model).

    Returns
    -------
    ChangeOutcome
        Nothing for a change that is not of interest (a page view, a state update...).

    Raises
    ------
    StoreUnavailableError
        A read failed; the change must be retried.
    """
    if not is_relevant(change) or change.new is None:
        return ChangeOutcome()
    if change.sk.startswith("T#"):
        return _touch_recorded(change, reader)
    if change.sk.startswith("S#"):
        return _lead_identified(change, reader)
    if change.sk.startswith("V#"):
        return _visitor_linked(change, reader)
    if change.sk.startswith("DEAL#"):
        return ChangeOutcome(changed_leads=(change.pk.removeprefix("L#"),))
    return _deal_changed(change, reader, credit)
