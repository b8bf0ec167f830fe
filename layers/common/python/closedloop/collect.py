"""Recording tracker events: validate all, then store each with its session decision, idempotently.

The order matters for the "never a partial write" promise: every event of a request is checked
(shape, URL) before the first write, so a bad event in a batch rejects the batch whole. Each event is
then one DynamoDB transaction (event + visitor state + touch), keyed by its event id, so a retried
request stores nothing twice. A late landing page that becomes its session's start writes its touch
and retires the direct touch it supersedes in that same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from closedloop.bots import is_bot
from closedloop.errors import InvalidInputError, StoreUnavailableError
from closedloop.models.collect import CollectEvent, CollectResponse
from closedloop.models.visits import PageView, Touch, VisitorState
from closedloop.sessions import MAX_EVENT_AGE_MS, advance_session, derive_event_time, is_backdated
from closedloop.store.dynamodb import WriteOutcome
from closedloop.traffic import InvalidUrlError, TrafficSource, parse_traffic_source

__all__ = ["EventStore", "opts_out", "record_events"]

# Concurrent requests of one visitor (two tabs) can race on its state; a few re-reads settle it.
MAX_STATE_CONFLICTS = 5


class EventStore(Protocol):
    """The part of ``DynamoStore`` that collecting needs (tests may pass a fake)."""

    def get_visitor_state(self, visitor_id: str) -> VisitorState | None: ...

    def record_event(
        self,
        event: PageView,
        state: VisitorState,
        *,
        previous_version: int | None,
        touch: Touch | None,
        supersedes: tuple[str, int] | None = None,
    ) -> WriteOutcome: ...


@dataclass(frozen=True, slots=True)
class _Prepared:
    event: CollectEvent
    source: TrafficSource
    occurred_at: int


def _prepare(
    events: Sequence[CollectEvent],
    *,
    sent_at: int | None,
    received_at: int,
    site_domains: frozenset[str],
    max_event_age_ms: int,
) -> list[_Prepared]:
    prepared = []
    for index, event in enumerate(events):
        try:
            source = parse_traffic_source(event.url, event.referrer, site_domains)
        except InvalidUrlError as exc:
            raise InvalidInputError(
                "an event's URL cannot be parsed",
                details=[{"loc": ["events", index, "url"], "msg": str(exc), "type": "url_invalid"}],
            ) from exc
        occurred_at = derive_event_time(event.ts, event.sent_at or sent_at, received_at)
        if is_backdated(occurred_at, received_at, max_age_ms=max_event_age_ms):
            hours = max_event_age_ms // 3_600_000
            raise InvalidInputError(
                f"an event happened more than {hours} hours before it was sent",
                details=[
                    {
                        "loc": ["events", index, "ts"],
                        "msg": f"ts must be at most {hours} hours before sent_at (or the server's time)",
                        "type": "event_too_old",
                    }
                ],
            )
        prepared.append(_Prepared(event, source, occurred_at))
    return prepared


def _page_view(item: _Prepared, session_id: str, received_at: int, expires_at: int | None) -> PageView:
    parts = urlsplit(item.event.url)
    return PageView(
        visitor_id=item.event.visitor_id,
        event_id=item.event.event_id,
        type=item.event.type,
        occurred_at=item.occurred_at,
        received_at=received_at,
        session_id=session_id,
        client_session_id=item.event.session_id,
        page_host=(parts.hostname or "").lower(),
        page_path=parts.path or "/",
        title=item.event.title,
        referrer_host=item.source.referrer_host,
        name=item.event.name,
        props=item.event.props,
        expires_at=expires_at,
    )


def _touch(item: _Prepared, expires_at: int | None) -> Touch:
    source = item.source
    return Touch(
        visitor_id=item.event.visitor_id,
        touch_id=item.event.event_id,
        occurred_at=item.occurred_at,
        channel=str(source.channel),
        source=source.source,
        medium=source.medium,
        campaign=source.campaign,
        term=source.term,
        content=source.content,
        utm_id=source.utm_id,
        click_id_type=source.click_id_type,
        click_id=source.click_id,
        referrer_host=source.referrer_host,
        landing_host=(urlsplit(item.event.url).hostname or "").lower(),
        landing_path=source.landing_path,
        expires_at=expires_at,
    )


def opts_out(sec_gpc: str | None, *, honor_gpc: bool) -> bool:
    """Whether the request carries Global Privacy Control (``Sec-GPC: 1``) and the site honours it.

    The tracker stops itself under GPC, but the pixel and direct posts reach the server from the same
    browser; checking the header here honours the signal for them too.
    """
    return honor_gpc and (sec_gpc or "").strip() == "1"


def record_events(
    events: Sequence[CollectEvent],
    *,
    store: EventStore,
    received_at: int,
    user_agent: str | None,
    site_domains: frozenset[str] = frozenset(),
    sent_at: int | None = None,
    retention_days: int = 0,
    opted_out: bool = False,
    max_event_age_ms: int = MAX_EVENT_AGE_MS,
) -> CollectResponse:
    """Store tracker events; return how many were new, repeated, or dropped.

    Bot traffic, and every event of a visitor who ``opted_out`` (see :func:`opts_out`), is dropped
    unread: answered like a success, nothing stored. An event dated more than ``max_event_age_ms``
    before the server received it (after correcting the client's clock) refuses the request: a touch
    cannot be backdated to become a lead's original source.

    Raises
    ------
    InvalidInputError
        An event cannot be understood, or is older than ``max_event_age_ms``; nothing of the request
        was written.
    StoreUnavailableError
        DynamoDB failed; events before the failure are stored, and retrying the request stores the
        rest without repeating them.
    """
    if opted_out or is_bot(user_agent):
        return CollectResponse(accepted=0, duplicates=0, dropped=len(events))

    prepared = _prepare(
        events,
        sent_at=sent_at,
        received_at=received_at,
        site_domains=site_domains,
        max_event_age_ms=max_event_age_ms,
    )
    expires_at = received_at // 1000 + retention_days * 86_400 if retention_days else None

    by_visitor: dict[str, list[_Prepared]] = defaultdict(list)
    for item in prepared:
        by_visitor[item.event.visitor_id].append(item)

    accepted = duplicates = 0
    for visitor_id, items in by_visitor.items():
        items.sort(key=lambda item: (item.occurred_at, item.event.event_id))
        state = store.get_visitor_state(visitor_id)
        for item in items:
            for _attempt in range(MAX_STATE_CONFLICTS):
                step = advance_session(
                    state,
                    visitor_id=visitor_id,
                    event_id=item.event.event_id,
                    occurred_at=item.occurred_at,
                    source=item.source,
                    client_session_id=item.event.session_id,
                )
                outcome = store.record_event(
                    _page_view(item, step.session_id, received_at, expires_at),
                    step.state,
                    previous_version=None if state is None else state.version,
                    touch=_touch(item, expires_at) if step.starts_session else None,
                    supersedes=step.supersedes,
                )
                if outcome is WriteOutcome.CONFLICT:
                    state = store.get_visitor_state(visitor_id)
                    continue
                if outcome is WriteOutcome.STORED:
                    accepted += 1
                    state = step.state.model_copy(update={"version": (state.version if state else 0) + 1})
                else:
                    duplicates += 1
                break
            else:
                raise StoreUnavailableError("the visitor's state kept changing under concurrent requests")
    return CollectResponse(accepted=accepted, duplicates=duplicates, dropped=0)
