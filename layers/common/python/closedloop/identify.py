"""Turning a form submission into a lead: idempotent, merged across devices, never double counting."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from pydantic import TypeAdapter, ValidationError

from closedloop.errors import InvalidInputError, StoreUnavailableError
from closedloop.identity import (
    MAX_DEVICES_PER_LEAD,
    LinkChange,
    journey_touches,
    lead_id_for,
    lead_sources,
    normalise_email,
    plan_link,
)
from closedloop.models.collect import VisitorId
from closedloop.models.leads import MAX_CUSTOM_FIELDS, IdentifyRequest, Lead, Submission, VisitorLink
from closedloop.models.visits import Touch
from closedloop.store.dynamodb import WriteOutcome

__all__ = [
    "DUPLICATE_WINDOW_MS",
    "VISITOR_COOKIE",
    "IdentifyResult",
    "LeadStore",
    "identify_lead",
    "safe_redirect",
]

# The same visitor, email and form again within this window is the same submission (a double click,
# a browser resubmitting on back/forward).
DUPLICATE_WINDOW_MS = 10 * 60 * 1000
MAX_CONFLICTS = 5
PROFILE_FIELDS = ("name", "first_name", "last_name", "company", "phone", "job_title", "consent")
# The tracker's first-party cookie holding the visitor id (tracker/t.src.js).
VISITOR_COOKIE = "_cl_vid"
_VISITOR_ID: TypeAdapter[str] = TypeAdapter(VisitorId)


class LeadStore(Protocol):
    """What identifying needs of ``DynamoStore``: each read is one bounded request."""

    def get_lead(self, lead_id: str) -> Lead | None: ...
    def last_link_of_visitor(self, visitor_id: str) -> VisitorLink | None: ...
    def links_of_lead(self, lead_id: str, *, limit: int | None = None) -> list[VisitorLink]: ...
    def touches_of_visitor(self, visitor_id: str) -> list[Touch]: ...
    def get_submission(self, lead_id: str, submission_id: str) -> Submission | None: ...
    def record_identification(
        self, lead: Lead, *, previous_version: int | None, submission: Submission, links: LinkChange
    ) -> WriteOutcome: ...


@dataclass(frozen=True, slots=True)
class IdentifyResult:
    """What became of a submission. ``trapped``: the honeypot was filled; nothing was stored."""

    lead_id: str
    created: bool
    duplicate: bool = False
    trapped: bool = False
    device_refused: bool = False  # the lead has MAX_DEVICES_PER_LEAD devices: the visitor was not linked


def safe_redirect(target: str, allowed_origins: tuple[str, ...], *, referer: str | None = None) -> str:
    """``target`` if it is on an allowed origin, else a 400 (no open redirect).

    A site-relative path (``/thanks.html``, what a form without JavaScript holds) is resolved against
    the page that posted the form (``Referer``), which must itself be on an allowed origin. Whitespace
    and control characters are refused: the target becomes a ``Location`` header (a CR LF in it would
    split the response), and browsers strip tabs and newlines from URLs, so what is checked would not
    be what is followed.
    """
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        raise InvalidInputError(
            "the redirect target contains whitespace or control characters",
            details=[
                {"loc": ["body", "redirect"], "msg": "must be a URL without spaces or control characters"}
            ],
        )
    allowed = {o.lower() for o in allowed_origins}
    if target.startswith("/") and not target.startswith("//") and referer:
        page_origin = _origin(referer)
        if page_origin in allowed:
            target = page_origin + target
    origin = _origin(target)
    if not origin.startswith(("http://", "https://")) or origin not in allowed:
        raise InvalidInputError(
            "the redirect target is not on an allowed origin",
            details=[{"loc": ["body", "redirect"], "msg": "must start with one of the allowed origins"}],
        )
    return target


def _split_page(url: str) -> SplitResult:
    """The page a form was posted from; an unparseable one (``https://[``) is no page, not an error."""
    try:
        return urlsplit(url)
    except ValueError:
        return urlsplit("")


def _origin(url: str) -> str:
    """``scheme://netloc`` of a URL, lower case; ``""`` when it cannot be parsed (``https://[``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def _derived_submission_id(request: IdentifyRequest, email: str, visitor_id: str | None, bucket: int) -> str:
    """The id of a submission without its own: the same visitor, email and form in one 10-minute bucket."""
    key = f"{visitor_id or ''}|{email}|{request.form_id or ''}|{bucket}"
    return "sub_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _is_recent_repeat(earlier: Submission | None, at: int) -> bool:
    """Whether the previous bucket's submission (same visitor, email, form) is within the window."""
    return earlier is not None and abs(at - earlier.occurred_at) < DUPLICATE_WINDOW_MS


def _cookie_visitor(value: str) -> str:
    """The visitor id of the cookie, checked like the form's hidden field: it becomes a key."""
    try:
        return _VISITOR_ID.validate_python(value)
    except ValidationError as exc:
        raise InvalidInputError(
            f"the {VISITOR_COOKIE} cookie is not a visitor id",
            details=[{"loc": ["cookie", VISITOR_COOKIE], "msg": "must be 16 to 64 letters, digits, - or _"}],
        ) from exc


def _merged_custom_fields(
    earlier: dict[str, str | int | float | bool | None], latest: dict[str, str | int | float | bool | None]
) -> dict[str, str | int | float | bool | None]:
    """This submission's custom fields, then earlier ones, at most ``MAX_CUSTOM_FIELDS`` in all.

    A form may send up to that many, and the lead keeps no more: merging every form's fields without
    a bound grows the lead past DynamoDB's 400 KB item limit, and every later form of that address
    would fail. The latest submission's fields all stay (they are the newest values); the earlier
    fields that still fit are kept in name order, so the choice does not depend on the store's map
    order (DynamoDB keeps no order in a map).
    """
    room = MAX_CUSTOM_FIELDS - len(latest)
    kept = sorted(name for name in earlier if name not in latest)[: max(room, 0)]
    return {**{name: earlier[name] for name in kept}, **latest}


def _merged_profile(
    previous: Lead | None, request: IdentifyRequest, *, lead_id: str, email: str, at: int
) -> Lead:
    """The latest submission's non-empty fields win; custom fields accumulate up to a bound
    (:func:`_merged_custom_fields`)."""
    base = previous or Lead(lead_id=lead_id, email=email, created_at=at, updated_at=at)
    updates: dict[str, object] = {
        name: getattr(request, name) for name in PROFILE_FIELDS if getattr(request, name) is not None
    }
    updates["custom_fields"] = _merged_custom_fields(base.custom_fields, request.custom_fields)
    updates["updated_at"] = at
    updates["submissions"] = base.submissions + 1
    return base.model_copy(update=updates)


def identify_lead(
    request: IdentifyRequest,
    *,
    store: LeadStore,
    received_at: int,
    cookie_visitor_id: str | None = None,
    page_url: str | None = None,
    opted_out: bool = False,
) -> IdentifyResult:
    """Create or update the lead of ``request.email`` and link the submitting visitor to it.

    The visitor is the form's (``visitor_id`` or the hidden field), else the ``_cl_vid`` cookie's
    (``cookie_visitor_id``, as the browser sent it). A browser that ``opted_out`` (Global Privacy
    Control, see :func:`closedloop.collect.opts_out`) still gives its lead, but no visitor is linked:
    neither field nor cookie is read, so no browsing history joins the lead. The lead keeps at most
    ``MAX_CUSTOM_FIELDS`` custom fields: this submission's, then earlier ones in name order while they fit.

    A filled honeypot (``website``, which people never see) is a bot's submission: it is checked
    exactly like a person's (the same 400s), then answered as a person's would be (``created`` unless
    the lead exists) and nothing is stored, so the answer does not tell the bot it was caught.

    Raises
    ------
    InvalidInputError
        The email is not valid, or the cookie that would identify the visitor is not a visitor id
        (as a malformed hidden field is refused); nothing was written.
    StoreUnavailableError
        DynamoDB failed; nothing of this submission was written, and retrying is safe.
    """
    email = normalise_email(request.email)
    lead_id = lead_id_for(email)
    visitor_id = (
        None
        if opted_out
        else request.visitor or (_cookie_visitor(cookie_visitor_id) if cookie_visitor_id else None)
    )
    bucket = received_at // DUPLICATE_WINDOW_MS
    submission_id = request.submission_id or _derived_submission_id(request, email, visitor_id, bucket)
    page = _split_page(request.page_url or page_url or "")
    if request.website:
        return IdentifyResult(lead_id, created=store.get_lead(lead_id) is None, trapped=True)

    for _attempt in range(MAX_CONFLICTS):
        previous = store.get_lead(lead_id)
        if (
            previous is not None
            and not request.submission_id
            and _is_recent_repeat(
                store.get_submission(lead_id, _derived_submission_id(request, email, visitor_id, bucket - 1)),
                received_at,
            )
        ):
            # The same bucket's repeat needs no read: its id is this one, and the write finds it.
            return IdentifyResult(lead_id, created=False, duplicate=True)

        last_link = store.last_link_of_visitor(visitor_id) if visitor_id else None
        change = (
            plan_link(
                [last_link] if last_link else [], visitor_id=visitor_id, lead_id=lead_id, at=received_at
            )
            if visitor_id
            else LinkChange(None, None)
        )
        # One more than the cap tells a full lead; the journey is read from at most the cap's devices.
        links = store.links_of_lead(lead_id, limit=MAX_DEVICES_PER_LEAD + 1)
        device_refused = change.new_link is not None and len(links) >= MAX_DEVICES_PER_LEAD
        if device_refused:
            change = LinkChange(None, None)
        links = links[:MAX_DEVICES_PER_LEAD]
        if change.new_link is not None:
            links.append(change.new_link)
        visitors = dict.fromkeys(link.visitor_id for link in links)
        journey = journey_touches(links, {visitor: store.touches_of_visitor(visitor) for visitor in visitors})

        lead = _merged_profile(previous, request, lead_id=lead_id, email=email, at=received_at)
        original, at_creation, latest = lead_sources(
            journey, lead_created_at=lead.created_at, now=received_at
        )
        lead = lead.model_copy(
            update={
                "first_seen_at": journey[0].occurred_at if journey else None,
                "original_source": original,
                "lead_creation_source": at_creation,
                "latest_source": latest,
            }
        )
        submission = Submission(
            lead_id=lead_id,
            submission_id=submission_id,
            occurred_at=received_at,
            visitor_id=visitor_id,
            form_id=request.form_id,
            page_host=(page.hostname or None),
            page_path=(page.path or None) if page.hostname else None,
        )
        outcome = store.record_identification(
            lead,
            previous_version=None if previous is None else previous.version,
            submission=submission,
            links=change,
        )
        if outcome is WriteOutcome.STORED:
            return IdentifyResult(lead_id, created=previous is None, device_refused=device_refused)
        if outcome is WriteOutcome.DUPLICATE:
            return IdentifyResult(lead_id, created=False, duplicate=True)
    raise StoreUnavailableError("the lead kept changing under concurrent submissions")
