"""The journey batch: validation, construction helpers, lookback window, exclusions, grouping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from closedloop.attribution import (
    ALL_MODELS,
    AttributionModel,
    AttributionOptions,
    JourneyBatch,
    JourneyBatchError,
    attribute,
    channel_totals,
)

DAY = 86_400
T0 = 1_760_000_000

VALID: dict[str, Any] = {
    "offsets": [0, 2, 3],
    "channel": [0, 1, 1],
    "channel_names": ["A", "B"],
    "converted": [True, False],
}

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "offsets not starting at 0": ({"offsets": [1, 2, 3]}, "start at 0"),
    "decreasing offsets": ({"offsets": [0, 3, 2], "channel": [0, 1]}, "never decrease"),
    "channel code out of range": ({"channel": [0, 2, 1]}, "index channel_names"),
    "negative channel code": ({"channel": [0, -1, 1]}, "index channel_names"),
    "too few channels": ({"channel": [0, 1]}, "channel has 2 values"),
    "too few journey flags": ({"converted": [True]}, "converted has 1 values"),
    "duplicate channel names": ({"channel_names": ["A", "A"]}, "distinct"),
    "negative weight": ({"weight": [1, -1]}, "non-negative"),
    "milestone beyond the journey": ({"lead_touch": [2, -1]}, "lead_touch"),
    "milestone below -1": ({"opportunity_touch": [-2, -1]}, "opportunity_touch"),
    "touch times going back within a journey": ({"touch_time": [10, 5, 1]}, "must not decrease"),
    "non-finite value": ({"conversion_value": [np.nan, 0.0]}, "finite"),
    "fractional channel codes": ({"channel": [0.5, 1, 1]}, "integers"),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_inconsistent_arrays_are_refused(case: tuple[dict[str, Any], str]) -> None:
    changes, message = case
    arguments = {**VALID, **changes}
    with pytest.raises(JourneyBatchError, match=message):
        JourneyBatch.from_arrays(
            arguments.pop("offsets"), arguments.pop("channel"), arguments.pop("channel_names"), **arguments
        )


def test_touch_times_may_go_back_between_journeys() -> None:
    batch = JourneyBatch.from_arrays(**{**VALID, "touch_time": [10, 20, 5]})
    assert batch.n_journeys == 2
    assert batch.n_touches == 3


def test_defaults_are_filled_in() -> None:
    batch = JourneyBatch.from_arrays(
        [0, 2, 2], [1, 0], ["Direct", "Email"], converted=[True, True], touch_time=[T0, T0 + 60]
    )
    assert batch.weight.tolist() == [1, 1]
    assert batch.lead_touch.tolist() == [-1, -1]
    assert batch.conversion_value.tolist() == [0.0, 0.0]
    assert batch.is_direct.tolist() == [False, True]  # from the channel named "Direct"
    assert batch.conversion_time.tolist() == [T0 + 60, 0]  # the last touch; 0 without touches


def test_from_paths_codes_channels_in_order_of_first_appearance() -> None:
    batch = JourneyBatch.from_paths([["B", "A"], ["C", "B"]], converted=[False, True])
    assert batch.channel_names == ("B", "A", "C")
    assert batch.channel.tolist() == [0, 1, 2, 0]
    assert batch.offsets.tolist() == [0, 2, 4]


def test_take_keeps_the_selected_journeys_in_order() -> None:
    batch = JourneyBatch.from_paths(
        [["A"], ["B", "C"], ["C"]], converted=[True, False, True], conversion_value=[1.0, 2.0, 3.0]
    )
    picked = batch.take([2, 1])
    assert [
        [picked.channel_names[c] for c in picked.channel[s:e]]
        for s, e in zip(picked.offsets[:-1], picked.offsets[1:], strict=True)
    ] == [["C"], ["B", "C"]]
    assert picked.conversion_value.tolist() == [3.0, 2.0]


def test_regroup_to_a_coarser_level_merges_codes() -> None:
    # Given campaign-level touches
    batch = JourneyBatch.from_paths(
        [["spring / cpc", "newsletter", "summer / cpc"]], converted=[True], conversion_value=[90.0]
    )
    # When grouped by channel
    grouped = batch.regroup(
        {"spring / cpc": "Paid Search", "summer / cpc": "Paid Search", "newsletter": "Email"}
    )
    # Then two channels share the credit of three touches
    assert grouped.channel_names == ("Paid Search", "Email")
    totals = channel_totals(grouped, [AttributionModel.LINEAR])
    assert totals.conversions[0].tolist() == pytest.approx([2 / 3, 1 / 3])


def test_regroup_by_code_needs_one_group_per_code() -> None:
    batch = JourneyBatch.from_paths([["A", "B"]], converted=[True])
    with pytest.raises(JourneyBatchError, match="one group per channel code"):
        batch.regroup(["X"])


def test_lookback_window_drops_old_touches_for_every_model() -> None:
    # Given touches 120, 60 and 1 days before the conversion, and a 90-day window
    batch = JourneyBatch.from_paths(
        [["Display", "Email", "Paid Search"]],
        converted=[True],
        touch_time=[T0 - 120 * DAY, T0 - 60 * DAY, T0 - DAY],
        conversion_time=[T0],
        conversion_value=[100.0],
    )
    credits = attribute(batch, ALL_MODELS, AttributionOptions(lookback_days=90))
    # Then the Display touch (index 0) never gets credit, and indices still refer to the input
    assert 0 not in credits.touch.tolist()
    assert set(credits.touch.tolist()) == {1, 2}
    first = credits.for_model(AttributionModel.FIRST_TOUCH)
    assert first.touch.tolist() == [1]


def test_no_touch_left_in_the_window_means_unattributed() -> None:
    batch = JourneyBatch.from_paths(
        [["Display"], ["Email"]],
        converted=[True, True],
        touch_time=[T0 - 100 * DAY, T0 - DAY],
        conversion_time=[T0, T0],
        conversion_value=[700.0, 300.0],
    )
    credits = attribute(batch, ALL_MODELS, AttributionOptions(lookback_days=90))
    totals = channel_totals(batch, ALL_MODELS, AttributionOptions(lookback_days=90))
    assert credits.unattributed.tolist() == [0]
    assert set(credits.journey.tolist()) == {1}
    assert totals.unattributed_conversions == 1.0
    assert totals.unattributed_value == 700.0
    assert totals.conversions.sum(axis=1) == pytest.approx([1.0] * len(ALL_MODELS))


def test_touches_after_the_conversion_are_ignored() -> None:
    batch = JourneyBatch.from_paths(
        [["Email", "Direct"]], converted=[True], touch_time=[T0 - DAY, T0 + DAY], conversion_time=[T0]
    )
    credits = attribute(batch, [AttributionModel.LAST_TOUCH])
    assert credits.touch.tolist() == [0]


def test_excluded_channel_gets_no_credit_when_the_journey_has_another_touch() -> None:
    batch = JourneyBatch.from_paths(
        [["Direct", "Email", "Direct"], ["Direct", "Direct"]], converted=[True, True]
    )
    options = AttributionOptions(excluded_channels={"Direct"})
    for model in ALL_MODELS:
        credits = attribute(batch, [model], options)
        first_journey = credits.touch[credits.journey == 0].tolist()
        assert first_journey == [1], model  # only the Email touch
        # A journey of Direct touches only keeps its credit (it sums to 1 over them)
        assert credits.credit[credits.journey == 1].sum() == pytest.approx(1.0), model


def test_direct_can_be_excluded_by_its_flag_at_campaign_level() -> None:
    batch = JourneyBatch.from_paths(
        [["spring-sale", "(direct)", "newsletter-12"]], converted=[True], is_direct=[False, True, False]
    )
    credits = attribute(batch, [AttributionModel.LINEAR], AttributionOptions(exclude_direct=True))
    assert credits.touch.tolist() == [0, 2]
    assert credits.credit.tolist() == [0.5, 0.5]


def test_a_single_excluded_name_is_not_split_into_letters() -> None:
    assert AttributionOptions(excluded_channels="Direct").excluded_channels == frozenset({"Direct"})


def test_milestone_outside_the_window_moves_to_the_last_kept_touch_before_it() -> None:
    # Given a lead created by an excluded Direct touch (index 2) after an Email touch (index 1)
    batch = JourneyBatch.from_paths(
        [["Paid Search", "Email", "Direct", "Referral"]],
        converted=[True],
        lead_touch=[2],
        opportunity_touch=[3],
    )
    credits = attribute(batch, [AttributionModel.W_SHAPED], AttributionOptions(excluded_channels={"Direct"}))
    shares = dict(zip(credits.touch.tolist(), credits.credit.tolist(), strict=True))
    # Then the lead slot goes to the Email touch: first, lead and opportunity each 1/3 (no rest)
    assert shares == pytest.approx({0: 1 / 3, 1: 1 / 3, 3: 1 / 3})


def test_milestone_before_every_kept_touch_becomes_unknown() -> None:
    batch = JourneyBatch.from_paths(
        [["Display", "Email", "Paid Search"]],
        converted=[True],
        touch_time=[T0 - 100 * DAY, T0 - 2 * DAY, T0 - DAY],
        conversion_time=[T0],
        lead_touch=[0],
        opportunity_touch=[2],
    )
    credits = attribute(batch, [AttributionModel.W_SHAPED], AttributionOptions(lookback_days=90))
    shares = dict(zip(credits.touch.tolist(), credits.credit.tolist(), strict=True))
    # First (Email) 0.3 and opportunity (Paid Search) 0.3, nothing else: half each
    assert shares == pytest.approx({1: 0.5, 2: 0.5})
