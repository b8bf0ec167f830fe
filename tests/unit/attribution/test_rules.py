"""Rule-based models against hand-computed credits, including every documented edge case."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from closedloop.attribution import (
    RULE_BASED_MODELS,
    AttributionModel,
    AttributionOptions,
    JourneyBatch,
    attribute,
)

M = AttributionModel
DAY = 86_400
T0 = 1_760_000_000  # any epoch second


def credits_of(
    batch: JourneyBatch, model: AttributionModel, options: AttributionOptions | None = None
) -> dict:
    """{(journey, touch): credit} of one model."""
    rows = attribute(batch, [model], options).for_model(model)
    return {(int(j), int(t)): float(c) for j, t, c in zip(rows.journey, rows.touch, rows.credit, strict=True)}


def one_journey(
    channels: list[str],
    *,
    lead: int = -1,
    opportunity: int = -1,
    days_before: list[float] | None = None,
    direct: list[bool] | None = None,
) -> JourneyBatch:
    times = None
    if days_before is not None:
        times = [T0 - round(d * DAY) for d in days_before]
    return JourneyBatch.from_paths(
        [channels],
        converted=[True],
        conversion_value=[1000.0],
        lead_touch=[lead],
        opportunity_touch=[opportunity],
        touch_time=times,
        conversion_time=[T0] if times is not None else None,
        is_direct=direct,
    )


class Case(NamedTuple):
    model: AttributionModel
    expected: list[float]


FIVE_TOUCHES = ["Paid Search", "Email", "Organic Search", "Email", "Direct"]  # lead at 1, opportunity at 3

FIVE_TOUCH_CASES: dict[str, Case] = {
    "first touch": Case(M.FIRST_TOUCH, [1, 0, 0, 0, 0]),
    "last touch": Case(M.LAST_TOUCH, [0, 0, 0, 0, 1]),
    "last non-direct skips the final Direct touch": Case(M.LAST_NON_DIRECT, [0, 0, 0, 1, 0]),
    "linear": Case(M.LINEAR, [0.2] * 5),
    "U-shaped 40/20/40": Case(M.POSITION_BASED, [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4]),
    "W-shaped: first, lead, opportunity 30 each, 10 over the two others": Case(
        M.W_SHAPED, [0.3, 0.3, 0.05, 0.3, 0.05]
    ),
    "full path: 22.5 x4, 10 on the one touch left": Case(M.FULL_PATH, [0.225, 0.225, 0.1, 0.225, 0.225]),
    "J-shaped: 20 first, 60 last, 20 over the middle": Case(
        M.J_SHAPED, [0.2, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.6]
    ),
    "inverse J: 60 first, 20 last, 20 over the middle": Case(
        M.INVERSE_J_SHAPED, [0.6, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.2]
    ),
}


@pytest.mark.parametrize("case", FIVE_TOUCH_CASES.values(), ids=FIVE_TOUCH_CASES.keys())
def test_five_touch_journey(case: Case) -> None:
    # Given a five-touch journey whose lead came from touch 1 and opportunity from touch 3
    batch = one_journey(FIVE_TOUCHES, lead=1, opportunity=3)

    # When
    credits = credits_of(batch, case.model)

    # Then only touches with credit have rows, and each matches the hand computation
    expected = {(0, t): share for t, share in enumerate(case.expected) if share > 0}
    assert credits.keys() == expected.keys()
    for key, share in expected.items():
        assert credits[key] == pytest.approx(share, abs=1e-12)


def test_time_decay_halves_per_half_life() -> None:
    # Given touches 14, 7, 7, 3.5 and 0 days before the conversion, half-life 7 days
    batch = one_journey(["A", "B", "C", "D", "E"], days_before=[14, 7, 7, 3.5, 0])

    # When
    credits = credits_of(batch, M.TIME_DECAY, AttributionOptions(half_life_days=7))

    # Then weights 1/4, 1/2, 1/2, 1/sqrt(2), 1 normalised
    weights = np.array([0.25, 0.5, 0.5, 2**-0.5, 1.0])
    for touch, weight in enumerate(weights / weights.sum()):
        assert credits[(0, touch)] == pytest.approx(weight, rel=1e-12)


def test_time_decay_counts_from_the_conversion_not_the_last_touch() -> None:
    # Two touches 8 and 1 days before conversion: the ratio is 2^(7/7) = 2 whatever the gap to the end.
    batch = one_journey(["A", "B"], days_before=[8, 1])
    credits = credits_of(batch, M.TIME_DECAY, AttributionOptions(half_life_days=7))
    assert credits[(0, 0)] == pytest.approx(1 / 3)
    assert credits[(0, 1)] == pytest.approx(2 / 3)


@pytest.mark.parametrize("model", RULE_BASED_MODELS, ids=str)
def test_one_touch_gets_everything(model: AttributionModel) -> None:
    assert credits_of(one_journey(["Email"], lead=0, opportunity=0, days_before=[3]), model) == {(0, 0): 1.0}


TWO_TOUCH_CASES: dict[str, Case] = {
    "first": Case(M.FIRST_TOUCH, [1, 0]),
    "last": Case(M.LAST_TOUCH, [0, 1]),
    "linear": Case(M.LINEAR, [0.5, 0.5]),
    "U-shaped: no middle, its 20 goes to the ends in proportion": Case(M.POSITION_BASED, [0.5, 0.5]),
    "J-shaped: 20/60 rescaled": Case(M.J_SHAPED, [0.25, 0.75]),
    "inverse J: 60/20 rescaled": Case(M.INVERSE_J_SHAPED, [0.75, 0.25]),
    # Lead and opportunity both on touch 1: 0.3 on touch 0, 0.6 on touch 1, no rest -> 1/3, 2/3.
    "W-shaped with both milestones on the last touch": Case(M.W_SHAPED, [1 / 3, 2 / 3]),
    # First 0.225; lead + opportunity + closing 0.675 on touch 1 -> 0.25, 0.75.
    "full path with both milestones on the last touch": Case(M.FULL_PATH, [0.25, 0.75]),
}


@pytest.mark.parametrize("case", TWO_TOUCH_CASES.values(), ids=TWO_TOUCH_CASES.keys())
def test_two_touch_journey(case: Case) -> None:
    batch = one_journey(["Paid Social", "Email"], lead=1, opportunity=1)
    credits = credits_of(batch, case.model)
    for touch, share in enumerate(case.expected):
        assert credits.get((0, touch), 0.0) == pytest.approx(share, abs=1e-12)


MILESTONE_CASES: dict[str, tuple[AttributionModel, int, int, list[float]]] = {
    # Lead and opportunity on the first touch: it holds 0.9, the 0.1 rest splits over two touches.
    "W: milestones on the first touch": (M.W_SHAPED, 0, 0, [0.9, 0.05, 0.05]),
    # Unknown milestones are dropped: first 0.3 + rest 0.1 over two touches, renormalised by 0.4.
    "W: unknown milestones": (M.W_SHAPED, -1, -1, [0.75, 0.125, 0.125]),
    # Only the opportunity is known (touch 1): 0.3, 0.3 and the rest 0.1 on touch 2, over 0.7.
    "W: unknown lead": (M.W_SHAPED, -1, 1, [3 / 7, 3 / 7, 1 / 7]),
    # Z with unknown milestones: first 0.225, closing 0.225, rest 0.1 on the middle, over 0.55.
    "Z: unknown milestones": (M.FULL_PATH, -1, -1, [0.225 / 0.55, 0.1 / 0.55, 0.225 / 0.55]),
    # Z with every milestone on the last touch: 0.225 first, 0.675 last, 0.1 middle.
    "Z: milestones on the closing touch": (M.FULL_PATH, 2, 2, [0.225, 0.1, 0.675]),
}


@pytest.mark.parametrize("case", MILESTONE_CASES.values(), ids=MILESTONE_CASES.keys())
def test_milestone_edge_cases(case: tuple[AttributionModel, int, int, list[float]]) -> None:
    model, lead, opportunity, expected = case
    credits = credits_of(one_journey(["A", "B", "C"], lead=lead, opportunity=opportunity), model)
    for touch, share in enumerate(expected):
        assert credits.get((0, touch), 0.0) == pytest.approx(share, abs=1e-12)


def test_last_non_direct_falls_back_to_direct_when_there_is_nothing_else() -> None:
    batch = JourneyBatch.from_paths(
        [["Direct", "Referral", "Direct"], ["Direct", "Direct"]], converted=[True, True]
    )
    assert credits_of(batch, M.LAST_NON_DIRECT) == {(0, 1): 1.0, (1, 1): 1.0}


def test_last_non_direct_reads_the_is_direct_flag_at_any_grouping_level() -> None:
    # Campaign-level names say nothing about Direct: the per-touch flag does.
    batch = JourneyBatch.from_paths(
        [["spring-sale", "(direct)", "(not set)"]], converted=[True], is_direct=[False, False, True]
    )
    assert credits_of(batch, M.LAST_NON_DIRECT) == {(0, 1): 1.0}


def test_converting_journey_without_touches_is_unattributed() -> None:
    batch = JourneyBatch.from_paths([[], ["A"]], converted=[True, True], conversion_value=[500.0, 100.0])
    credits = attribute(batch, RULE_BASED_MODELS)
    assert credits.unattributed.tolist() == [0]
    assert set(credits.journey.tolist()) == {1}


def test_custom_weights_are_honoured() -> None:
    options = AttributionOptions(position_based_weights=(0.5, 0.0, 0.5))
    credits = credits_of(one_journey(["A", "B", "C"]), M.POSITION_BASED, options)
    assert credits == {(0, 0): 0.5, (0, 2): 0.5}


@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.5), (0.5, -0.1, 0.6)])
def test_weights_must_be_a_distribution(weights: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="position_based_weights"):
        AttributionOptions(position_based_weights=weights)


def test_value_credit_is_the_share_of_the_deal_amount() -> None:
    batch = one_journey(["A", "B", "C"])
    credits = attribute(batch, [M.POSITION_BASED])
    assert credits.value_credit.tolist() == pytest.approx([400.0, 200.0, 400.0])
