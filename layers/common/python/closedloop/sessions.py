"""Sessionisation: which events start a new session, and so a new touch.

The rules (GA4's, plus the campaign rule of Universal Analytics that attribution needs):

- the visitor's first event starts a session;
- an event more than ``SESSION_TIMEOUT_MS`` after the visitor's previous one starts a session;
- an event that arrives with its own source (UTM tags, a click id, or an external referrer) different
  from the running session's starts a session, whatever the time since the last event;
- an event with a new tracker session id (the tracker's rolling 30-minute cookie expired or was
  cleared) starts a session: the browser saw the inactivity even when delivery delays hide it;
- an event older than the visitor's last one (a late delivery from a retried beacon) never moves the
  session's clock. It is a page view of the running session, except when it happened before the
  running session's start, within ``SESSION_TIMEOUT_MS`` of it, with a new source (a landing page whose
  beacon was overtaken by the next page's): had it arrived in order, it would have started a session.
  If the running session started without a source (direct), the late event becomes that session's
  start and its touch supersedes the direct one (one session, one touch); otherwise the running session
  started with its own source, as it would have in order, and the late event starts a session of its
  own before it.

Event time is the client's clock corrected by the server's (``derive_event_time``), so a visitor with a
wrong clock still gets the right gaps. It is never in the future, and never more than ``MAX_EVENT_AGE_MS``
(72 hours) in the past: an older event is refused (``is_backdated``), so nobody can date a touch years
back and make it a lead's original source. 72 hours is what Google Analytics 4 accepts for backdated
events (the Measurement Protocol's ``timestamp_micros``); the tracker resends unsent events for 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from closedloop.models.visits import VisitorState

__all__ = [
    "MAX_EVENT_AGE_MS",
    "SESSION_TIMEOUT_MS",
    "SessionStart",
    "SessionStep",
    "advance_session",
    "derive_event_time",
    "is_backdated",
]

SESSION_TIMEOUT_MS = 30 * 60 * 1000
# How far in the past (server time) an event may have happened: see the module's docstring.
MAX_EVENT_AGE_MS = 72 * 60 * 60 * 1000

# What ``closedloop.traffic`` names a visit without a source (direct, or a self-referral): the campaign
# key a session keeps when its touch is a direct one.
_SOURCELESS = ("(direct)", "(none)")


class SourceOfVisit(Protocol):
    @property
    def is_new_source(self) -> bool: ...

    def campaign_key(self) -> tuple[str | None, ...]: ...


class SessionStart(NamedTuple):
    """Which touch a session start is: its event id and when it happened (the touch's key)."""

    touch_id: str
    occurred_at: int


@dataclass(frozen=True, slots=True)
class SessionStep:
    """The visitor's state after one event, and whether that event started a session.

    ``session_id`` is the session the event belongs to: the running one's, or the event's own when it
    starts one (a late event can start a session that is not the running one). ``supersedes`` is the
    direct start whose touch the event's touch replaces (a late landing page), else ``None``.
    """

    state: VisitorState
    starts_session: bool
    session_id: str
    supersedes: SessionStart | None = None


def derive_event_time(client_ts: int | None, sent_at: int | None, received_at: int) -> int:
    """When the event happened, on the server's clock.

    The client says when the event happened (``client_ts``) and when it sent it (``sent_at``); their
    difference is immune to a wrong client clock, so it is subtracted from the server's receive time
    (Snowplow's "derived timestamp"). Never in the future.
    """
    if client_ts is None:
        return received_at
    if sent_at is not None and sent_at >= client_ts:
        return max(0, received_at - (sent_at - client_ts))
    return min(client_ts, received_at)


def is_backdated(occurred_at: int, received_at: int, *, max_age_ms: int = MAX_EVENT_AGE_MS) -> bool:
    """Whether an event (its time from :func:`derive_event_time`) happened too long before it arrived."""
    return received_at - occurred_at > max_age_ms


def advance_session(
    state: VisitorState | None,
    *,
    visitor_id: str,
    event_id: str,
    occurred_at: int,
    source: SourceOfVisit,
    client_session_id: str | None = None,
    timeout_ms: int = SESSION_TIMEOUT_MS,
) -> SessionStep:
    """Apply one event to the visitor's running session (pure: no I/O)."""
    if state is None:
        return SessionStep(
            VisitorState(
                visitor_id=visitor_id,
                first_seen_at=occurred_at,
                last_seen_at=occurred_at,
                session_id=event_id,
                session_started_at=occurred_at,
                campaign_key=source.campaign_key(),
                client_session_id=client_session_id,
            ),
            starts_session=True,
            session_id=event_id,
        )

    if occurred_at < state.last_seen_at:
        return _late_event(
            state, event_id=event_id, occurred_at=occurred_at, source=source, timeout_ms=timeout_ms
        )

    timed_out = occurred_at - state.last_seen_at > timeout_ms
    new_campaign = source.is_new_source and source.campaign_key() != state.campaign_key
    new_client_session = (
        client_session_id is not None
        and state.client_session_id is not None
        and client_session_id != state.client_session_id
    )
    if timed_out or new_campaign or new_client_session:
        return SessionStep(
            state.model_copy(
                update={
                    "last_seen_at": occurred_at,
                    "session_id": event_id,
                    "session_started_at": occurred_at,
                    "campaign_key": source.campaign_key(),
                    "client_session_id": client_session_id or state.client_session_id,
                    "sessions": state.sessions + 1,
                    "events": state.events + 1,
                }
            ),
            starts_session=True,
            session_id=event_id,
        )
    return SessionStep(
        state.model_copy(
            update={
                "last_seen_at": occurred_at,
                "events": state.events + 1,
                "client_session_id": client_session_id or state.client_session_id,
            }
        ),
        starts_session=False,
        session_id=state.session_id,
    )


def _late_event(
    state: VisitorState, *, event_id: str, occurred_at: int, source: SourceOfVisit, timeout_ms: int
) -> SessionStep:
    """An event older than the visitor's last one: the clock stays; see the module's rules."""
    events = state.events + 1
    lead_time = state.session_started_at - occurred_at
    new_source = source.is_new_source and source.campaign_key() != state.campaign_key
    if not (0 < lead_time <= timeout_ms and new_source):
        return SessionStep(
            state.model_copy(update={"events": events}), starts_session=False, session_id=state.session_id
        )
    first_seen_at = min(state.first_seen_at, occurred_at)
    if tuple(state.campaign_key[:2]) == _SOURCELESS:
        # In order, this event would have started the session and the direct page after it continued it.
        return SessionStep(
            state.model_copy(
                update={
                    "first_seen_at": first_seen_at,
                    "session_id": event_id,
                    "session_started_at": occurred_at,
                    "campaign_key": source.campaign_key(),
                    "events": events,
                }
            ),
            starts_session=True,
            session_id=event_id,
            supersedes=SessionStart(state.session_id, state.session_started_at),
        )
    # The running session's start has its own source: in order it would have started a session after
    # this one too. This event's session is an earlier one; the running session stays as it is.
    return SessionStep(
        state.model_copy(
            update={"first_seen_at": first_seen_at, "sessions": state.sessions + 1, "events": events}
        ),
        starts_session=True,
        session_id=event_id,
    )
