"""Domain events: their schemas, the publisher's batching and failure reporting, a won deal's credit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from closedloop.changes import ChangeOutcome, TableChange, interpret_change, is_relevant
from closedloop.crm.models import CrmName, DealLifecycle
from closedloop.deal_attribution import credit_deal
from closedloop.deals import StoredDeal
from closedloop.errors import StoreUnavailableError
from closedloop.events import (
    ENTRY_BUDGET,
    EVENT_SOURCE,
    EVENT_TYPES,
    MAX_ENTRY_BYTES,
    DealAttribution,
    DealWon,
    EventPublisher,
    LeadMerged,
    TouchRecorded,
    TouchSource,
    entry_size,
    event_entry,
    ms_to_datetime,
)
from closedloop.models.leads import Lead, VisitorLink
from closedloop.models.visits import Touch
from closedloop.publish import relay_changes

T0 = 1_795_000_000_000
HOUR = 3_600_000


def touch(touch_id: str, at: int, channel: str = "Paid Social", visitor: str = "v1") -> Touch:
    return Touch(
        visitor_id=visitor,
        touch_id=touch_id,
        occurred_at=at,
        channel=channel,
        source="linkedin" if channel == "Paid Social" else "google",
        medium="cpc" if channel == "Paid Social" else "organic",
        campaign="spring" if channel == "Paid Social" else None,
        landing_host="www.acme.test",
        landing_path="/",
    )


def recorded(n: int) -> TouchRecorded:
    return TouchRecorded(
        event_id=f"touch:v1:t{n}",
        occurred_at=ms_to_datetime(T0 + n),
        visitor_id="v1",
        touch_id=f"t{n}",
        source=TouchSource(channel="Direct", source="(direct)", medium="(none)"),
        landing_host="www.acme.test",
        landing_path="/",
    )


class RecordingClient:
    """A stand-in for boto3's events client: records each PutEvents call, fails the entries asked."""

    def __init__(self, fail_entries: set[int] | None = None, raise_on_call: int | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail_entries = fail_entries or set()
        self.raise_on_call = raise_on_call
        self.seen = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        from botocore.exceptions import EndpointConnectionError

        self.calls.append(Entries)
        if self.raise_on_call == len(self.calls):
            raise EndpointConnectionError(endpoint_url="https://events.test")
        results = []
        for entry in Entries:
            failed = self.seen in self.fail_entries
            self.seen += 1
            results.append({"ErrorCode": "InternalFailure"} if failed else {"EventId": entry["DetailType"]})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


# -- schemas -----------------------------------------------------------------------------------------


def test_every_event_type_is_versioned_and_unique():
    names = [t.detail_type for t in EVENT_TYPES]
    assert len(set(names)) == len(names)
    assert all(name.startswith("closedloop.") and name.rsplit(".", 1)[1] == "v1" for name in names)


def test_an_event_refuses_fields_its_schema_does_not_document():
    data = json.loads(recorded(1).model_dump_json())
    with pytest.raises(ValidationError):
        TouchRecorded.model_validate({**data, "email": "ada@example.com"})


def test_the_entry_is_what_eventbridge_expects():
    entry = event_entry(recorded(1), "bus")
    assert entry["Source"] == EVENT_SOURCE == "closedloop"
    assert entry["DetailType"] == "closedloop.touch.recorded.v1"
    assert entry["EventBusName"] == "bus"
    assert json.loads(entry["Detail"])["occurred_at"].endswith("Z")


# -- the publisher -------------------------------------------------------------------------------------


def test_events_go_out_ten_per_call_in_order():
    client = RecordingClient()
    result = EventPublisher("bus", client=client).publish([recorded(n) for n in range(23)])  # type: ignore[arg-type]

    assert result.published == 23 and result.first_failed is None
    assert [len(call) for call in client.calls] == [10, 10, 3]
    ids = [json.loads(e["Detail"])["event_id"] for call in client.calls for e in call]
    assert ids == [f"touch:v1:t{n}" for n in range(23)]


def test_a_failed_entry_stops_publishing_and_names_the_first_failure():
    client = RecordingClient(fail_entries={13})
    result = EventPublisher("bus", client=client).publish([recorded(n) for n in range(23)])  # type: ignore[arg-type]

    assert (result.published, result.first_failed) == (13, 13)
    assert len(client.calls) == 2  # nothing after the failing call


def test_an_unreachable_bus_fails_from_the_call_that_failed():
    client = RecordingClient(raise_on_call=2)
    result = EventPublisher("bus", client=client).publish([recorded(n) for n in range(15)])  # type: ignore[arg-type]
    assert (result.published, result.first_failed) == (10, 10)


def test_nothing_to_publish_makes_no_call():
    client = RecordingClient()
    assert EventPublisher("bus", client=client).publish([]).published == 0  # type: ignore[arg-type]
    assert client.calls == []


class EventBridgeLimits(RecordingClient):
    """Refuses what EventBridge refuses: a call over 256 KiB of entries (sized as documented) is a
    ValidationException for the whole call; ``invalid`` entries (by event id) get ``InvalidArgument``."""

    def __init__(self, invalid: set[str] | None = None) -> None:
        super().__init__()
        self.invalid = invalid or set()

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        from botocore.exceptions import ClientError

        self.calls.append(Entries)
        if sum(entry_size(e) for e in Entries) > 256 * 1024:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": "Total size of the entries in the request is over the limit.",
                    }
                },
                "PutEvents",
            )
        results = [
            {"ErrorCode": "InvalidArgument", "ErrorMessage": "bad"}
            if json.loads(e["Detail"])["event_id"] in self.invalid
            else {"EventId": "x"}
            for e in Entries
        ]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def long_journey_won(touches: int = 130, tag_length: int = 1000) -> DealWon:
    """A won deal whose journey is ``touches`` sessions, each with ``tag_length``-character UTM tags."""
    from closedloop.events import ChannelCredit, TouchCredit

    tag = "x" * tag_length
    credits = [0.3 if i in (0, 60, touches - 1) else 0.1 / (touches - 3) for i in range(touches)]
    return DealWon(
        event_id="won:generic:D-1:2",
        occurred_at=ms_to_datetime(T0 + 10 * HOUR),
        crm="generic",
        deal_id="D-1",
        amount="1000",
        currency="EUR",
        lead_ids=("ld_1",),
        credited_channels=("Paid Social",),
        attribution=DealAttribution(
            model="w_shaped",
            lookback_days=90,
            touches=tuple(
                TouchCredit(
                    touch_id=f"t{i:03d}",
                    touched_at=ms_to_datetime(T0 + i * 1000),
                    source=TouchSource(channel="Paid Social", source=tag, medium=tag, campaign=f"{i}{tag}"),
                    credit=credit,
                    revenue_credit=credit * 1000,
                )
                for i, credit in enumerate(credits)
            ),
            channels=(ChannelCredit(channel="Paid Social", credit=1.0, revenue_credit=1000.0),),
        ),
    )


def test_every_entry_is_sized_as_eventbridge_documents():
    # Time: 14 bytes; Source, DetailType, Detail and each Resource: their UTF-8 bytes; no bus name
    entry = {
        "Time": T0,
        "Source": "closedloop",
        "DetailType": "t.v1",
        "Detail": '{"a":"é"}',
        "EventBusName": "b",
    }
    assert entry_size(entry) == 14 + 10 + 4 + len('{"a":"é"}'.encode())
    assert entry_size({**entry, "Resources": ["arn:ü"]}) == entry_size(entry) + 6
    event = recorded(1)
    assert entry_size(event_entry(event, "bus")) == 14 + 10 + len(event.detail_type) + len(
        event.model_dump_json().encode()
    )


def test_a_won_deal_too_large_for_eventbridge_keeps_its_most_credited_touches_and_counts_the_rest():
    # Given a won deal whose journey is 130 sessions with 1,000-character UTM tags: over 256 KiB
    event = long_journey_won()
    assert entry_size(event_entry(event, "bus")) > MAX_ENTRY_BYTES
    client = EventBridgeLimits()

    # When it is published
    result = EventPublisher("bus", client=client).publish([event, recorded(1)])  # type: ignore[arg-type]

    # Then it went out, within the budget, with the three 30 % touches, and says what it left out
    assert (result.published, result.first_failed, result.refused) == (2, None, ())
    [sent] = [e for call in client.calls for e in call if e["DetailType"] == DealWon.detail_type]
    assert entry_size(sent) <= ENTRY_BUDGET
    detail = DealWon.model_validate_json(sent["Detail"])
    kept = [t.touch_id for t in detail.attribution.touches]
    assert {"t000", "t060", "t129"} <= set(kept) and kept == sorted(kept)  # journey order
    assert detail.attribution.touches_omitted == 130 - len(kept) > 0
    assert detail.attribution.channels == event.attribution.channels  # the totals are the whole journey's
    assert detail.credited_channels == ("Paid Social",)


def test_an_event_within_the_budget_is_published_whole():
    event = long_journey_won(touches=5)
    assert event.within(ENTRY_BUDGET) is event
    client = EventBridgeLimits()
    EventPublisher("bus", client=client).publish([event])  # type: ignore[arg-type]
    assert DealWon.model_validate_json(client.calls[0][0]["Detail"]) == event


def test_an_entry_eventbridge_refuses_as_invalid_is_reported_and_does_not_hold_the_others():
    client = EventBridgeLimits(invalid={"touch:v1:t3"})
    result = EventPublisher("bus", client=client).publish([recorded(n) for n in range(12)])  # type: ignore[arg-type]

    assert (result.published, result.first_failed, result.refused) == (11, None, (3,))
    assert len(client.calls) == 2  # not retried


def test_an_entry_over_the_limit_even_when_bounded_is_refused_without_a_call():
    huge = recorded(2).model_copy(update={"landing_path": "/" + "p" * MAX_ENTRY_BYTES})
    client = EventBridgeLimits()
    result = EventPublisher("bus", client=client).publish([recorded(1), huge, recorded(3)])  # type: ignore[arg-type]

    assert (result.published, result.first_failed, result.refused) == (2, None, (1,))
    assert [json.loads(e["Detail"])["touch_id"] for call in client.calls for e in call] == ["t1", "t3"]


# -- a won deal's credit -------------------------------------------------------------------------------


def won_deal(amount: str = "1000", **fields: Any) -> StoredDeal:
    return StoredDeal(
        crm=CrmName.GENERIC,
        deal_id="D-1",
        lifecycle=DealLifecycle.WON,
        version=2,
        updated_at=T0 + 10 * HOUR,
        last_event_id="e2",
        amount=Decimal(amount),
        currency="EUR",
        won_at=T0 + 10 * HOUR,
        opportunity_created_at=T0 + 5 * HOUR,
        lead_ids=("ld_1",),
        revision=2,
        **fields,
    )


def test_w_shaped_credits_first_lead_creation_and_opportunity_touches():
    journey = [
        touch("a", T0, "Paid Social"),
        touch("b", T0 + HOUR, "Organic Search"),
        touch("c", T0 + 4 * HOUR, "Organic Search"),
        touch("d", T0 + 6 * HOUR, "Paid Social"),
        touch("e", T0 + 11 * HOUR, "Paid Social"),  # after the win: ignored
    ]
    attribution = credit_deal(won_deal(), journey, lead_created_at=T0 + 2 * HOUR)

    # first touch, the last before the lead was created, the last before the opportunity: 30 % each
    credits = {t.touch_id: t.credit for t in attribution.touches}
    assert credits == pytest.approx({"a": 0.3, "b": 0.3, "c": 0.3, "d": 0.1})
    assert sum(t.revenue_credit for t in attribution.touches) == pytest.approx(1000.0)
    assert [(c.channel, c.credit) for c in attribution.channels] == [
        ("Organic Search", pytest.approx(0.6)),
        ("Paid Social", pytest.approx(0.4)),
    ]


def test_a_deal_without_touches_in_the_window_has_no_credit():
    attribution = credit_deal(won_deal(), [touch("a", T0 - 200 * 24 * HOUR)], lead_created_at=None)
    assert attribution == DealAttribution(model="w_shaped", lookback_days=90.0)


def test_a_sales_cycle_longer_than_the_window_keeps_the_touch_that_made_the_lead():
    day = 24 * HOUR
    # The lead came from a LinkedIn ad 120 days before the win, and became a lead that day
    attribution = credit_deal(
        won_deal(), [touch("a", T0 - 120 * day)], lead_created_at=T0 - 120 * day + HOUR, model="first_touch"
    )  # type: ignore[arg-type]

    assert [(t.touch_id, t.credit) for t in attribution.touches] == [("a", 1.0)]


def test_data_driven_models_are_refused_for_one_deal():
    with pytest.raises(ValueError, match="rule-based"):
        credit_deal(won_deal(), [touch("a", T0)], lead_created_at=None, model="markov")  # type: ignore[arg-type]


# -- interpreting changes ----------------------------------------------------------------------------


class FakeReader:
    def __init__(
        self, links: list[VisitorLink], touches: dict[str, list[Touch]], leads: dict[str, Lead]
    ) -> None:
        self.links = links
        self.touches = touches
        self.leads = leads

    def get_lead(self, lead_id: str) -> Lead | None:
        return self.leads.get(lead_id)

    def links_of_lead(self, lead_id: str) -> list[VisitorLink]:
        return [link for link in self.links if link.lead_id == lead_id]

    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]:
        return [link for link in self.links if link.visitor_id == visitor_id]

    def touches_of_visitor(self, visitor_id: str) -> list[Touch]:
        return self.touches.get(visitor_id, [])


def never_credit(*_args: Any) -> DealAttribution:
    raise AssertionError("no deal here")


def change(
    pk: str, sk: str, new: dict[str, Any] | None, *, event: str = "INSERT", old: dict[str, Any] | None = None
) -> TableChange:
    return TableChange(event_name=event, pk=pk, sk=sk, new=new, old=old, sequence_number="1")


def test_a_touch_of_a_shared_computer_belongs_to_the_lead_of_its_time():
    links = [
        VisitorLink(visitor_id="v1", lead_id="ld_a", linked_from=0, linked_until=T0 + HOUR, linked_at=T0),
        VisitorLink(visitor_id="v1", lead_id="ld_b", linked_from=T0 + HOUR, linked_at=T0 + HOUR),
    ]
    reader = FakeReader(links, {}, {})
    before = touch("t1", T0 + HOUR - 1)
    after = touch("t2", T0 + HOUR)

    for item, lead in ((before, "ld_a"), (after, "ld_b")):
        image = {
            k: Decimal(v) if isinstance(v, int) else v for k, v in item.model_dump().items() if v is not None
        }
        outcome = interpret_change(
            change("V#v1", f"T#{item.touch_id}", image), reader=reader, credit=never_credit
        )
        [event] = outcome.events
        assert isinstance(event, TouchRecorded) and event.lead_id == lead
        assert outcome.changed_leads == (lead,)


def test_the_first_device_of_a_lead_is_not_a_merge_and_the_second_is():
    first = VisitorLink(visitor_id="v1", lead_id="ld_a", linked_from=0, linked_at=T0)
    second = VisitorLink(visitor_id="v2", lead_id="ld_a", linked_from=0, linked_at=T0 + HOUR)
    reader = FakeReader([first, second], {}, {})

    outcome_first = interpret_change(
        change("L#ld_a", "V#v1#0", first.model_dump()), reader=reader, credit=never_credit
    )
    outcome_second = interpret_change(
        change("L#ld_a", "V#v2#0", second.model_dump()), reader=reader, credit=never_credit
    )

    assert outcome_first == ChangeOutcome(changed_leads=("ld_a",))
    [merged] = outcome_second.events
    assert isinstance(merged, LeadMerged) and (merged.visitor_id, merged.visitors) == ("v2", 2)


def test_a_deal_state_rewritten_without_a_stage_change_publishes_nothing():
    deal = won_deal().model_dump(mode="json")
    outcome = interpret_change(
        change("D#generic#D-1", "STATE", {**deal, "revision": 3}, event="MODIFY", old=deal),
        reader=FakeReader([], {}, {}),
        credit=never_credit,
    )
    assert outcome == ChangeOutcome()


@pytest.mark.parametrize(
    ("event", "pk", "sk", "relevant"),
    [
        ("INSERT", "V#v", "T#2026-01-01T00:00:00.000Z#e", True),
        ("INSERT", "V#v", "E#e", False),
        ("MODIFY", "V#v", "STATE", False),
        ("INSERT", "L#l", "S#s", True),
        ("INSERT", "L#l", "V#v#0", True),
        ("MODIFY", "L#l", "V#v#0", False),  # a link closed: the new link is the change
        ("INSERT", "L#l", "DEAL#generic#D", True),
        ("MODIFY", "L#l", "PROFILE", False),
        ("INSERT", "D#generic#D", "STATE", True),
        ("MODIFY", "D#generic#D", "STATE", True),
        ("REMOVE", "D#generic#D", "STATE", False),
        ("INSERT", "D#generic#D", "EV#e", False),
        ("INSERT", "L#l", "SYNC#hubspot", False),
    ],
)
def test_which_changes_are_acted_on(event, pk, sk, relevant):
    assert is_relevant(change(pk, sk, {}, event=event)) is relevant


# -- relaying ------------------------------------------------------------------------------------------


class FakeQueue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[str] = []
        self.fail = fail

    def notify(self, lead_ids: Any) -> int:
        if self.fail:
            from closedloop.writeback.queue import WritebackQueueError

            raise WritebackQueueError("down")
        self.sent.extend(dict.fromkeys(lead_ids))
        return len(self.sent)


def numbered(n: int) -> TableChange:
    return TableChange(
        event_name="INSERT", pk="V#v1", sk=f"T#{n}", new={}, old=None, sequence_number=str(100 + n)
    )


def test_a_failed_read_resumes_from_its_change_after_delivering_those_before():
    def interpret(item: TableChange) -> ChangeOutcome:
        if item.sequence_number == "102":
            raise StoreUnavailableError("throttled")
        n = int(item.sequence_number) - 100
        return ChangeOutcome(events=(recorded(n),), changed_leads=("ld_a",))

    client = RecordingClient()
    queue = FakeQueue()
    result = relay_changes(
        [numbered(n) for n in range(4)],
        interpret=interpret,
        publisher=EventPublisher("bus", client=client),  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
    )

    assert result.failed_sequence == "102"
    assert [json.loads(e["Detail"])["touch_id"] for call in client.calls for e in call] == ["t0", "t1"]
    assert queue.sent == ["ld_a"]


def test_a_queue_failure_retries_the_whole_batch_before_any_event():
    client = RecordingClient()
    result = relay_changes(
        [numbered(n) for n in range(2)],
        interpret=lambda item: ChangeOutcome(events=(recorded(1),), changed_leads=("ld_a",)),
        publisher=EventPublisher("bus", client=client),  # type: ignore[arg-type]
        queue=FakeQueue(fail=True),  # type: ignore[arg-type]
    )
    assert result.failed_sequence == "100"
    assert client.calls == []


def test_an_undeliverable_event_or_unreadable_change_never_holds_the_records_behind_it():
    # Given four changes: the second's image is malformed, the third's event EventBridge refuses
    def interpret(item: TableChange) -> ChangeOutcome:
        n = int(item.sequence_number) - 100
        if n == 1:
            Touch.model_validate({})  # what a malformed stored image does
        return ChangeOutcome(events=(recorded(n),), changed_leads=(f"ld_{n}",))

    client = EventBridgeLimits(invalid={"touch:v1:t2"})
    queue = FakeQueue()
    result = relay_changes(
        [numbered(n) for n in range(4)],
        interpret=interpret,
        publisher=EventPublisher("bus", client=client),  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
    )

    # Then nothing is retried, everything else is delivered, and both are counted
    assert result.failed_sequence is None
    assert (result.skipped, result.refused, result.events) == (1, 1, 2)
    assert queue.sent == ["ld_0", "ld_2", "ld_3"]
    sent = [json.loads(e["Detail"])["touch_id"] for call in client.calls for e in call]
    assert sent == ["t0", "t2", "t3"]
