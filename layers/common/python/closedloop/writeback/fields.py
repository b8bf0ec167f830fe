"""The lead's source fields as Closedloop writes them onto CRM records (pure: no I/O, no clock).

One set of fields per lead, computed from its journey the way the lead profile and the attribution
job see it (:func:`closedloop.identity.lead_sources`): the original source (first touch), the source
at lead creation (last touch at or before the lead was created), and the latest source (last touch
so far), each as channel, utm source, medium and campaign plus a one-line summary
(``Paid Social / linkedin / cpc / spring-launch``); sessions and marketing touches; when the lead was
first seen and created; the landing page of the first touch; and the lead id to link back.

Each CRM gets the same values under its own names (:data:`FIELDS` gives each field's kind; HubSpot
properties are ``closedloop_<name>``; Salesforce and Pipedrive fields are mapped by the admin).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from closedloop.identity import lead_sources
from closedloop.models.leads import Lead, LeadSource
from closedloop.models.visits import Touch

__all__ = [
    "FIELDS",
    "FIELD_NAMES",
    "FieldKind",
    "FieldSpec",
    "SourceFields",
    "fields_hash",
    "source_fields",
    "source_summary",
]

FieldKind = Literal["string", "number", "datetime"]
FieldValue = str | int | None

# What is not a marketing touch when counting touches (a session that came by itself).
_NOT_MARKETING = frozenset({"Direct"})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One written field: its name (``closedloop_<name>`` in HubSpot), kind, label and help text."""

    name: str
    kind: FieldKind
    label: str
    description: str


def _touch_fields(prefix: str, what: str) -> tuple[FieldSpec, ...]:
    return (
        FieldSpec(
            f"{prefix}_source",
            "string",
            f"{what}: source",
            f"Channel / source / medium / campaign of the {what.lower()}, on one line (Closedloop).",
        ),
        FieldSpec(f"{prefix}_channel", "string", f"{what}: channel", f"Channel group of the {what.lower()}."),
        FieldSpec(f"{prefix}_utm_source", "string", f"{what}: utm_source", f"Source of the {what.lower()}."),
        FieldSpec(f"{prefix}_utm_medium", "string", f"{what}: utm_medium", f"Medium of the {what.lower()}."),
        FieldSpec(
            f"{prefix}_utm_campaign", "string", f"{what}: utm_campaign", f"Campaign of the {what.lower()}."
        ),
    )


FIELDS: tuple[FieldSpec, ...] = (
    *_touch_fields("original", "Original source"),
    *_touch_fields("lead_creation", "Lead creation source"),
    *_touch_fields("latest", "Latest source"),
    FieldSpec("sessions", "number", "Sessions", "Visits (sessions) of all the lead's devices (Closedloop)."),
    FieldSpec("touches", "number", "Marketing touches", "Sessions that came from a marketing source."),
    FieldSpec("first_seen_at", "datetime", "First seen", "The lead's first visit (Closedloop)."),
    FieldSpec("lead_created_at", "datetime", "Became a lead", "The lead's first form submission."),
    FieldSpec("landing_page", "string", "Landing page", "Host and path of the first visit."),
    FieldSpec("lead_id", "string", "Closedloop lead id", "Links this record to the lead in Closedloop."),
)
FIELD_NAMES: tuple[str, ...] = tuple(spec.name for spec in FIELDS)
FIELD_KINDS: Mapping[str, FieldKind] = {spec.name: spec.kind for spec in FIELDS}


def source_summary(source: LeadSource | None) -> str | None:
    """``channel / source / medium / campaign`` (the campaign only when there is one)."""
    if source is None:
        return None
    parts = [source.channel, source.source, source.medium]
    if source.campaign:
        parts.append(source.campaign)
    return " / ".join(parts)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class SourceFields:
    """The values of :data:`FIELDS` for one lead (``None``: nothing known, written as an empty value)."""

    values: Mapping[str, FieldValue]

    def get(self, name: str) -> FieldValue:
        return self.values.get(name)


def _touch_values(prefix: str, source: LeadSource | None) -> dict[str, FieldValue]:
    return {
        f"{prefix}_source": source_summary(source),
        f"{prefix}_channel": source.channel if source else None,
        f"{prefix}_utm_source": source.source if source else None,
        f"{prefix}_utm_medium": source.medium if source else None,
        f"{prefix}_utm_campaign": source.campaign if source else None,
    }


def source_fields(lead: Lead, journey: Sequence[Touch], *, now: int) -> SourceFields | None:
    """Compute the lead's source fields from its journey.

    Parameters
    ----------
    lead
        The lead (its id and creation time).
    journey
        Its touches in time order (:func:`closedloop.changes.lead_journey`).
    now
        The current time, ms: touches after it (a clock-skewed beacon) are not the latest yet.

    Returns
    -------
    SourceFields or None
        ``None`` for a lead with no touch (a CRM contact who never visited): there is nothing to
        write, and the CRM's own values stay.
    """
    touches = [t for t in journey if t.occurred_at <= now]
    if not touches:
        return None
    original, at_creation, latest = lead_sources(touches, lead_created_at=lead.created_at, now=now)
    first = touches[0]
    values: dict[str, FieldValue] = {
        **_touch_values("original", original),
        **_touch_values("lead_creation", at_creation),
        **_touch_values("latest", latest),
        "sessions": len(touches),
        "touches": sum(1 for t in touches if t.channel not in _NOT_MARKETING),
        "first_seen_at": _iso(first.occurred_at),
        "lead_created_at": _iso(lead.created_at),
        "landing_page": f"{first.landing_host}{first.landing_path}",
        "lead_id": lead.lead_id,
    }
    return SourceFields(values)


def fields_hash(payload: Mapping[str, object]) -> str:
    """A digest of what is written to one record: the same values give the same digest."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
