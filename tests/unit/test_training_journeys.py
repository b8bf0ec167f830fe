"""The attribute job's memory of the period's journeys: replaced by lead and by deal, pruned by age."""

from __future__ import annotations

from closedloop.analytics.training import TrainingJourney, TrainingJourneys, lead_journey_key


def journey(
    key: str, lead: str | None, channels: list[str], *, ended_at: int, converted: bool = True
) -> TrainingJourney:
    return TrainingJourney(
        journey_key=key,
        lead_id=lead,
        channels=channels,
        touch_times=[ended_at - 10 * (len(channels) - i) for i in range(len(channels))],
        converted=converted,
        value=100.0 if converted else 0.0,
        ended_at=ended_at,
        written_days=[],
    )


def keys(training: TrainingJourneys) -> list[str]:
    return training.table["journey_key"].to_pylist()


def seeded() -> TrainingJourneys:
    training = TrainingJourneys.empty()
    training.replace(
        leads=[],
        journey_keys=[],
        fresh=[
            journey("hubspot#2", "L1", ["Email", "Direct"], ended_at=2_000),
            journey("hubspot#1", "L1", ["Paid Search"], ended_at=1_000),
            journey(lead_journey_key("L2"), "L2", ["Referral"], ended_at=1_500, converted=False),
        ],
        since=0,
    )
    return training


def test_rows_are_kept_in_key_order_so_the_same_rows_write_the_same_bytes():
    assert keys(seeded()) == ["hubspot#1", "hubspot#2", "lead#L2"]


def test_a_refreshed_lead_loses_every_old_row_and_gets_its_new_ones():
    training = seeded()

    training.replace(
        leads=["L1"],
        journey_keys=[],
        fresh=[journey("hubspot#1", "L1", ["Display"], ended_at=1_000)],
        since=0,
    )

    assert keys(training) == ["hubspot#1", "lead#L2"]
    assert training.table["channels"].to_pylist()[0] == ["Display"]


def test_a_lead_that_gets_a_deal_stops_counting_as_a_journey_that_did_not_convert():
    training = seeded()

    training.replace(
        leads=[],
        journey_keys=["pipedrive#9", lead_journey_key("L2")],
        fresh=[journey("pipedrive#9", "L2", ["Referral"], ended_at=1_600)],
        since=0,
    )

    assert keys(training) == ["hubspot#1", "hubspot#2", "pipedrive#9"]
    assert training.table["converted"].to_pylist() == [True, True, True]


def test_journeys_that_ended_before_the_period_are_dropped():
    training = seeded()

    training.replace(
        leads=[], journey_keys=[], fresh=[journey("hubspot#3", "L3", ["Email"], ended_at=900)], since=1_400
    )

    assert keys(training) == ["hubspot#2", "lead#L2"]


def test_erasure_forgets_the_lead_and_its_deals_even_under_another_primary_lead():
    training = seeded()
    training.replace(
        leads=[], journey_keys=[], fresh=[journey("hubspot#7", "L9", ["Email"], ended_at=1_700)], since=0
    )

    removed = training.forget_lead("L1", ["hubspot#7"])

    assert removed == 3
    assert keys(training) == ["lead#L2"]


def test_the_training_set_without_the_runs_own_conversions():
    assert training_keys(seeded().without(["hubspot#2"])) == ["hubspot#1", "lead#L2"]


def training_keys(table) -> list[str]:
    return table["journey_key"].to_pylist()


def test_a_deal_remembers_the_partitions_its_rows_were_written_to():
    training = TrainingJourneys.empty()
    moved = TrainingJourney(
        "hubspot#1", "L1", ["Email"], [900], True, 100.0, 1_000, ["2026-11-01", "2026-11-20"]
    )
    training.replace(leads=[], journey_keys=[], fresh=[moved], since=0)

    assert training.written_days(["hubspot#1", "hubspot#2"]) == {"hubspot#1": ["2026-11-01", "2026-11-20"]}
