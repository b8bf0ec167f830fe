"""Sessionisation: which events start a session (a touch), including events that arrive late."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import permutations
from typing import NamedTuple

import pytest

from closedloop.models.visits import VisitorState
from closedloop.sessions import SESSION_TIMEOUT_MS, SessionStart, advance_session
from closedloop.traffic import TrafficSource, parse_traffic_source

SITE = frozenset({"example.com"})
VISITOR = "v1"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SECOND = 1000
MINUTE = 60 * SECOND

NEWSLETTER = "https://example.com/?utm_source=newsletter&utm_medium=email"
PAID_SEARCH = "https://example.com/?gclid=abc"


class Event(NamedTuple):
    event_id: str
    occurred_at: int
    url: str
    referrer: str | None = None

    @property
    def source(self) -> TrafficSource:
        return parse_traffic_source(self.url, self.referrer, SITE)


def replay(events: Iterable[Event]) -> tuple[VisitorState | None, dict[str, tuple[int, str]]]:
    """Apply events in arrival order as the store does: each session start a touch, a superseded one gone."""
    state: VisitorState | None = None
    touches: dict[str, tuple[int, str]] = {}
    for event in events:
        step = advance_session(
            state,
            visitor_id=VISITOR,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            source=event.source,
        )
        if step.starts_session:
            touches[event.event_id] = (event.occurred_at, str(event.source.channel))
        if step.supersedes is not None:
            del touches[step.supersedes.touch_id]
        state = step.state
    return state, touches


LANDING = Event("landing", T0, NEWSLETTER)
PAGE_2 = Event("page-2", T0 + 10 * SECOND, "https://example.com/pricing", "https://example.com/")
PAGE_3 = Event("page-3", T0 + 5 * MINUTE, "https://example.com/contact", "https://example.com/pricing")


def test_a_landing_then_its_next_pages_are_one_session_with_the_landings_touch() -> None:
    state, touches = replay([LANDING, PAGE_2, PAGE_3])

    assert touches == {"landing": (T0, "Email")}
    assert state is not None
    assert (state.session_id, state.sessions, state.events) == ("landing", 1, 3)


@pytest.mark.parametrize("arrival", list(permutations([LANDING, PAGE_2, PAGE_3])), ids=str)
def test_arrival_order_does_not_change_the_touch_of_a_tagged_landing(arrival: tuple[Event, ...]) -> None:
    state, touches = replay(arrival)

    assert touches == {"landing": (T0, "Email")}
    assert state is not None
    assert (state.session_id, state.session_started_at, state.sessions, state.events) == ("landing", T0, 1, 3)
    assert (state.first_seen_at, state.last_seen_at) == (T0, PAGE_3.occurred_at)


def test_a_late_tagged_landing_supersedes_the_direct_start_it_preceded() -> None:
    # Given page 2 (no tags, a self-referral) arrived first and started a direct session
    first = advance_session(
        None, visitor_id=VISITOR, event_id="page-2", occurred_at=PAGE_2.occurred_at, source=PAGE_2.source
    )

    # When the landing's beacon arrives, 10 seconds older, with newsletter tags
    step = advance_session(
        first.state, visitor_id=VISITOR, event_id="landing", occurred_at=T0, source=LANDING.source
    )

    # Then the landing starts the session, and the direct start is superseded, not a second session
    assert step.starts_session
    assert step.session_id == "landing"
    assert step.supersedes == SessionStart("page-2", PAGE_2.occurred_at)
    assert (step.state.session_id, step.state.session_started_at) == ("landing", T0)
    assert step.state.campaign_key == LANDING.source.campaign_key()
    assert (step.state.sessions, step.state.events, step.state.first_seen_at) == (1, 2, T0)
    assert step.state.last_seen_at == PAGE_2.occurred_at  # the clock never moves back


@pytest.mark.parametrize(
    ("url", "referrer"),
    [
        pytest.param(PAID_SEARCH, None, id="click-id"),
        pytest.param("https://example.com/blog", "https://www.google.com/", id="external-referrer"),
    ],
)
def test_any_new_source_of_a_late_landing_supersedes_a_direct_start(url: str, referrer: str) -> None:
    _, touches = replay([PAGE_2, Event("landing", T0, url, referrer)])

    assert list(touches) == ["landing"]


def test_a_late_landing_before_a_session_with_its_own_source_is_a_session_of_its_own() -> None:
    # Given a paid-search landing arrived first; in order, it would start a session after the email one
    paid = Event("paid", T0 + 5 * MINUTE, PAID_SEARCH)

    state, touches = replay([paid, LANDING])

    assert touches == {"paid": (paid.occurred_at, "Paid Search"), "landing": (T0, "Email")}
    assert state is not None
    assert (state.session_id, state.sessions, state.first_seen_at) == ("paid", 2, T0)
    _, in_order = replay([LANDING, paid])
    assert in_order == touches


@pytest.mark.parametrize(
    "late",
    [
        pytest.param(
            Event("late", T0 - SESSION_TIMEOUT_MS - 1, NEWSLETTER), id="beyond-the-inactivity-window"
        ),
        pytest.param(Event("late", T0 - MINUTE, "https://example.com/", None), id="no-source"),
        pytest.param(Event("late", T0 - MINUTE, NEWSLETTER), id="same-campaign-as-the-session"),
        pytest.param(Event("late", T0 + 30 * SECOND, PAID_SEARCH), id="inside-the-session"),
    ],
)
def test_other_late_events_are_page_views_of_the_running_session(late: Event) -> None:
    # Given a newsletter session running from T0 to T0 + 5 min
    state, _ = replay([LANDING, PAGE_3])
    assert state is not None

    step = advance_session(
        state, visitor_id=VISITOR, event_id=late.event_id, occurred_at=late.occurred_at, source=late.source
    )

    assert not step.starts_session
    assert step.supersedes is None
    assert step.session_id == "landing"
    assert step.state == state.model_copy(update={"events": 3})


def test_a_late_untagged_page_before_a_direct_start_does_not_move_it() -> None:
    state, touches = replay([PAGE_3, Event("late", T0, "https://example.com/")])

    assert touches == {"page-3": (PAGE_3.occurred_at, "Direct")}
    assert state is not None
    assert state.session_id == "page-3"


def test_an_event_may_be_at_most_72_hours_old_on_the_servers_clock() -> None:
    from closedloop.sessions import MAX_EVENT_AGE_MS, derive_event_time, is_backdated

    received = 1_800_000_000_000
    # The client's clock may be years off: the gap between ts and sent_at is what counts
    in_time = derive_event_time(946_684_800_000, 946_684_800_000 + MAX_EVENT_AGE_MS, received)
    assert not is_backdated(in_time, received)
    too_old = derive_event_time(946_684_800_000, 946_684_800_000 + MAX_EVENT_AGE_MS + 1, received)
    assert is_backdated(too_old, received)
    # Without sent_at the client's ts is all there is
    assert is_backdated(derive_event_time(946_684_800_000, None, received), received)
    assert MAX_EVENT_AGE_MS == 72 * 3_600_000
