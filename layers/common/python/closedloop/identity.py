"""Identity: who a lead is, which visitors (devices) are theirs, and so which touches form their journey.

Rules (also in docs/architecture.md):

- A lead is its normalised email; its id is derived from it (``lead_id_for``), so a lookup by email is a
  key lookup and the id does not show the email.
- A visitor's first lead gets the visitor's whole history, anonymous touches included
  (``linked_from = 0``). Nothing is copied: a journey is the union of the linked visitors' touches.
- The same email from a new visitor (a second device) links that visitor too: the lead merges devices.
- A shared computer (one visitor, a second email): from the moment of the second submission the visitor
  belongs to the new lead; the earlier touches stay with the earlier lead. Links are half-open time
  intervals that never overlap, so no touch is ever counted for two leads.
- A lead keeps at most ``MAX_DEVICES_PER_LEAD`` visitor links. Anyone who knows an address can post it
  from fresh visitor ids; without a cap every later submission of that lead would read the touches of
  every such device (one Query each). A lead that is full still takes submissions; the submitting
  visitor is then not linked (as under Global Privacy Control), and the refusal is counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from closedloop.errors import InvalidInputError
from closedloop.models.leads import LeadSource, VisitorLink
from closedloop.models.visits import Touch

__all__ = [
    "MAX_DEVICES_PER_LEAD",
    "LinkChange",
    "journey_touches",
    "lead_id_for",
    "lead_sources",
    "normalise_email",
    "plan_link",
]

# Visitor links (browsers, devices, cleared cookies) one lead keeps; see the module's docstring.
MAX_DEVICES_PER_LEAD = 20


def normalise_email(raw: str) -> str:
    """A syntactically valid address, lower-cased (no DNS lookup: the API must not wait on DNS).

    Provider-specific rewriting (Gmail dots, ``+tags``) is not applied: ``jane+events@`` may be a
    deliberately separate identity, and CRMs keep such addresses apart too.
    """
    try:
        checked = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInputError(
            "the email address is not valid",
            details=[{"loc": ["body", "email"], "msg": str(exc), "type": "email_invalid"}],
        ) from exc
    return checked.normalized.lower()


def lead_id_for(email: str) -> str:
    """The lead's stable id: a SHA-256 of the normalised email (a pseudonym, not anonymisation)."""
    return "ld_" + hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class LinkChange:
    """What identifying ``visitor`` as ``lead`` changes: a new link, and an earlier one to close."""

    new_link: VisitorLink | None
    closed_link: VisitorLink | None


def plan_link(visitor_links: Sequence[VisitorLink], *, visitor_id: str, lead_id: str, at: int) -> LinkChange:
    """Decide how a submission at ``at`` links ``visitor_id`` to ``lead_id`` (pure)."""
    current = next((link for link in visitor_links if link.linked_until is None), None)
    if current is None:
        # First identification of this visitor: its whole history comes along, unless earlier links
        # were closed (then only what came after the last one).
        start = max((link.linked_until or 0 for link in visitor_links), default=0)
        return LinkChange(
            VisitorLink(visitor_id=visitor_id, lead_id=lead_id, linked_from=start, linked_at=at), None
        )
    if current.lead_id == lead_id:
        return LinkChange(None, None)
    switch_at = max(at, current.linked_from + 1)
    closed = current.model_copy(update={"linked_until": switch_at})
    new = VisitorLink(visitor_id=visitor_id, lead_id=lead_id, linked_from=switch_at, linked_at=at)
    return LinkChange(new, closed)


def journey_touches(links: Iterable[VisitorLink], touches_of: dict[str, list[Touch]]) -> list[Touch]:
    """The lead's journey: each linked visitor's touches inside its link interval, in time order, once."""
    seen: set[tuple[str, str]] = set()
    journey = []
    for link in links:
        for touch in touches_of.get(link.visitor_id, []):
            key = (touch.visitor_id, touch.touch_id)
            if link.covers(touch.occurred_at) and key not in seen:
                seen.add(key)
                journey.append(touch)
    return sorted(journey, key=lambda t: (t.occurred_at, t.touch_id))


def _source(touch: Touch) -> LeadSource:
    return LeadSource(
        channel=touch.channel,
        source=touch.source,
        medium=touch.medium,
        campaign=touch.campaign,
        touch_id=touch.touch_id,
        occurred_at=touch.occurred_at,
        landing_path=touch.landing_path,
    )


def lead_sources(
    journey: Sequence[Touch], *, lead_created_at: int, now: int
) -> tuple[LeadSource | None, LeadSource | None, LeadSource | None]:
    """Original (first touch), lead-creation (last touch at or before creation) and latest source."""
    before_now = [t for t in journey if t.occurred_at <= now]
    if not before_now:
        return None, None, None
    at_creation = [t for t in before_now if t.occurred_at <= lead_created_at]
    return (
        _source(before_now[0]),
        _source(at_creation[-1]) if at_creation else None,
        _source(before_now[-1]),
    )
