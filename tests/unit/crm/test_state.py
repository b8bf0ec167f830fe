"""``next_deal_state``: ordering, duplicates, reopening, and the moments attribution needs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closedloop.crm import CrmName, DealEvent, DealLifecycle, DealState, DealStateError, next_deal_state

OPEN, WON, LOST, REOPENED, DELETED = (
    DealLifecycle.OPEN,
    DealLifecycle.WON,
    DealLifecycle.LOST,
    DealLifecycle.REOPENED,
    DealLifecycle.DELETED,
)


def event(version: int, lifecycle: DealLifecycle = OPEN, **fields: Any) -> DealEvent:
    values: dict[str, Any] = {
        "crm": CrmName.HUBSPOT,
        "event_id": f"e{version}",
        "deal_id": "D1",
        "lifecycle": lifecycle,
        "occurred_at": version * 1000,
        "version": version,
        **fields,
    }
    return DealEvent(**values)


def replay(*events: DealEvent) -> DealState | None:
    state: DealState | None = None
    for item in events:
        state = next_deal_state(state, item) or state
    return state


def test_the_first_event_creates_the_state_with_the_opportunity_creation_moment() -> None:
    state = next_deal_state(
        None, event(5, stage="qualified", amount=Decimal("10"), currency="EUR", created_at=1)
    )
    assert state is not None
    assert (state.lifecycle, state.version, state.stage, state.amount) == (
        OPEN,
        5,
        "qualified",
        Decimal("10"),
    )
    assert state.opportunity_created_at == 1
    assert state.won_at is None


def test_an_older_event_arriving_late_is_ignored() -> None:
    # Given the deal was won at version 20
    state = replay(event(10, OPEN, stage="proposal"), event(20, WON, stage="closedwon"))
    # When the stage change of version 15 arrives late (at-least-once, out of order)
    late = next_deal_state(state, event(15, OPEN, stage="negotiation"))
    # Then nothing moves back
    assert late is None


def test_the_same_event_twice_is_ignored_but_a_sibling_of_the_same_version_merges() -> None:
    state = next_deal_state(None, event(10, OPEN, stage="proposal"))
    assert next_deal_state(state, event(10, OPEN, stage="proposal")) is None
    sibling = next_deal_state(state, event(10, OPEN, event_id="other", amount=Decimal("99"), currency="USD"))
    assert sibling is not None
    assert (sibling.stage, sibling.amount, sibling.currency) == ("proposal", Decimal("99"), "USD")


@pytest.mark.parametrize(
    ("lifecycles", "final", "stamps"),
    [
        ([OPEN, WON], WON, {"won_at": 2000}),
        ([OPEN, LOST], LOST, {"lost_at": 2000}),
        ([OPEN, WON, OPEN], REOPENED, {"won_at": 2000, "reopened_at": 3000}),
        ([OPEN, LOST, OPEN, OPEN], REOPENED, {"lost_at": 2000, "reopened_at": 3000}),
        ([OPEN, WON, OPEN, WON], WON, {"won_at": 4000, "reopened_at": 3000}),
        ([OPEN, WON, WON], WON, {"won_at": 2000}),
        ([OPEN, DELETED], DELETED, {"deleted_at": 2000}),
        ([OPEN, DELETED, OPEN], OPEN, {"deleted_at": None}),
        # the adapter already knew it was reopened (Pipedrive's previous status)
        ([REOPENED], REOPENED, {"reopened_at": 1000}),
    ],
)
def test_lifecycle_transitions_and_their_moments(
    lifecycles: list[DealLifecycle], final: DealLifecycle, stamps: dict[str, int | None]
) -> None:
    state = replay(*(event(i + 1, lifecycle) for i, lifecycle in enumerate(lifecycles)))
    assert state is not None
    assert state.lifecycle is final
    for name, value in stamps.items():
        assert getattr(state, name) == value, name
    assert state.opportunity_created_at == 1000


def test_missing_fields_keep_what_was_known_and_emails_accumulate() -> None:
    state = replay(
        event(1, OPEN, stage="s1", amount=Decimal("5"), currency="EUR", contact_emails=("a@x.io",)),
        event(2, OPEN, contact_emails=("b@x.io", "a@x.io")),
    )
    assert state is not None
    assert (state.stage, state.amount, state.currency) == ("s1", Decimal("5"), "EUR")
    assert state.contact_emails == ("a@x.io", "b@x.io")


def test_a_later_event_revealing_an_earlier_creation_moves_the_opportunity_back() -> None:
    state = replay(event(10), event(11, created_at=500))
    assert state is not None
    assert state.opportunity_created_at == 500


def test_an_event_of_another_deal_is_a_programming_error() -> None:
    state = next_deal_state(None, event(1))
    with pytest.raises(DealStateError):
        next_deal_state(state, event(2, deal_id="D2"))
    with pytest.raises(DealStateError):
        next_deal_state(state, event(2, crm=CrmName.PIPEDRIVE))


stages = st.sampled_from(["a", "b", "c", "d"])
lifecycles = st.sampled_from([OPEN, WON, LOST])


@given(
    st.lists(st.tuples(stages, lifecycles), min_size=1, max_size=8).flatmap(
        lambda changes: st.permutations(list(enumerate(changes, start=1))).map(lambda order: (changes, order))
    )
)
def test_any_delivery_order_ends_at_the_newest_stage_and_version(data: Any) -> None:
    changes, order = data
    state = replay(*(event(version, lifecycle, stage=stage) for version, (stage, lifecycle) in order))
    assert state is not None
    newest_stage, newest_lifecycle = changes[-1]
    assert state.version == len(changes)
    assert state.stage == newest_stage
    # the newest lifecycle wins, except that an open stage after a close reads as "reopened"
    if newest_lifecycle is OPEN:
        assert state.lifecycle in (OPEN, REOPENED)
    else:
        assert state.lifecycle is newest_lifecycle
