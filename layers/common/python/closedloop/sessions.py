"""Sessionisation: which events start a new session, and so a new touch.

The rules (GA4's, plus the campaign rule of Universal Analytics that attribution needs):

- the visitor's first event starts a session;
- an event more than ``SESSION_TIMEOUT_MS`` after the visitor's previous one starts a session;
- an event that arrives with its own source (UTM tags, a click id, or an external referrer) different
  from the running session's starts a session, whatever the time since the last event;
- an event with a new tracker session id (the tracker's rolling 30-minute cookie expired or was
  cleared) starts a session: the browser saw the inactivity even when delivery delays hide it;
- an event older than the visitor's last one (a late delivery from a retried beacon) never starts a
  session and never moves the session's clock: it is stored as a page view of the running session.

Event time is the client's clock corrected by the server's (``derive_event_time``), so a visitor with a
wrong clock still gets the right gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from closedloop.models.visits import VisitorState

__all__ = ["SESSION_TIMEOUT_MS", "SessionStep", "advance_session", "derive_event_time"]

SESSION_TIMEOUT_MS = 30 * 60 * 1000


class SourceOfVisit(Protocol):
    @property
    def is_new_source(self) -> bool: ...

    def campaign_key(self) -> tuple[str | None, ...]: ...


@dataclass(frozen=True, slots=True)
class SessionStep:
    """The visitor's state after one event, and whether that event started a session."""

    state: VisitorState
    starts_session: bool


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
        )

    if occurred_at < state.last_seen_at:
        return SessionStep(state.model_copy(update={"events": state.events + 1}), starts_session=False)

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
    )
