"""Markov removal effects: by hand, and against an independent brute-force solution of small chains."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closedloop.attribution import (
    AttributionError,
    AttributionModel,
    AttributionOptions,
    JourneyBatch,
    attribute,
    channel_totals,
    markov_removal_effects,
)

Row = tuple[list[str], int, int, float]  # path, conversions, nulls, total conversion value


def batch_of(rows: list[Row]) -> JourneyBatch:
    """Aggregated rows as ChannelAttribution reads them: one converting and one null journey each."""
    paths, converted, weight, value = [], [], [], []
    for path, conversions, nulls, total_value in rows:
        if conversions:
            paths.append(path)
            converted.append(True)
            weight.append(conversions)
            value.append(total_value)
        if nulls:
            paths.append(path)
            converted.append(False)
            weight.append(nulls)
            value.append(0.0)
    return JourneyBatch.from_paths(paths, converted=converted, weight=weight, conversion_value=value)


def brute_force(rows: list[Row], order: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """P(conversion) and each channel's removal effects, by plain Python value iteration.

    Written from the documented conventions only: windows of ``order`` channels, consecutive
    repeats merged, a removed channel's states lead nowhere, a conversion's value is the mean
    value of the conversions leaving the same state.
    """
    counts: dict[tuple[str, ...], dict[object, float]] = defaultdict(lambda: defaultdict(float))
    value_out: dict[tuple[str, ...], float] = defaultdict(float)
    for path, conversions, nulls, total_value in rows:
        windows = (
            [tuple(path)]
            if len(path) < order
            else [tuple(path[i - order + 1 : i + 1]) for i in range(order - 1, len(path))]
        )
        merged = [w for i, w in enumerate(windows) if i == 0 or w != windows[i - 1]]
        sequence: list[tuple[str, ...]] = [(), *merged]
        for a, b in itertools.pairwise(sequence):
            counts[a][b] += conversions + nulls
        counts[sequence[-1]]["conversion"] += conversions
        counts[sequence[-1]]["null"] += nulls
        value_out[sequence[-1]] += total_value
    states = list(counts)

    def solve(removed: str | None, with_value: bool) -> float:
        result = dict.fromkeys(states, 0.0)
        for _ in range(100_000):
            change = 0.0
            for state in states:
                if removed is not None and removed in state:
                    continue
                out = counts[state]
                total = sum(out.values())
                if total == 0:
                    continue
                worth = 0.0
                for target, count in out.items():
                    if isinstance(target, tuple):
                        if removed is None or removed not in target:
                            worth += count / total * result[target]
                    elif target == "conversion" and count > 0:
                        worth += count / total * (value_out[state] / count if with_value else 1.0)
                change = max(change, abs(worth - result[state]))
                result[state] = worth
            if change < 1e-15:
                break
        return result[()]

    channels = sorted({c for path, *_ in rows for c in path})
    probability, value = solve(None, False), solve(None, True)
    effect = {c: 1 - solve(c, False) / probability for c in channels}
    value_effect = {c: (1 - solve(c, True) / value) if value > 0 else 0.0 for c in channels}
    return probability, effect, value_effect


def test_removal_effects_by_hand() -> None:
    # Given A > B (converts, 30), A (null), B (null):
    #   start -> A 2/3, -> B 1/3; A -> B 1/2, -> null 1/2; B -> conversion 1/2, -> null 1/2
    #   P(conversion) = 2/3 * 1/2 * 1/2 + 1/3 * 1/2 = 1/3
    #   without A: 1/3 * 1/2 = 1/6, effect 1/2; without B: 0, effect 1
    batch = batch_of([(["A", "B"], 1, 0, 30.0), (["A"], 0, 1, 0.0), (["B"], 0, 1, 0.0)])

    effects = markov_removal_effects(batch)

    assert effects.channel_names == ("A", "B")
    assert effects.conversion_probability == pytest.approx(1 / 3)
    assert effects.removal_effect == pytest.approx([0.5, 1.0])
    assert effects.conversion_share == pytest.approx([1 / 3, 2 / 3])
    totals = channel_totals(batch, [AttributionModel.MARKOV])
    assert totals.conversions[0] == pytest.approx([1 / 3, 2 / 3])
    assert totals.value[0] == pytest.approx([10.0, 20.0])


def test_repeated_touches_are_merged() -> None:
    plain = markov_removal_effects(batch_of([(["A", "B"], 1, 1, 0.0), (["B"], 0, 2, 0.0)]))
    repeated = markov_removal_effects(batch_of([(["A", "A", "B", "B"], 1, 1, 0.0), (["B", "B"], 0, 2, 0.0)]))
    assert repeated.removal_effect == pytest.approx(plain.removal_effect)


def test_value_follows_the_state_the_conversions_leave_from() -> None:
    # Conversions leaving from A are worth 100 each, from B 10 each.
    batch = batch_of([(["A"], 1, 1, 100.0), (["B"], 1, 1, 10.0), (["A", "B"], 1, 0, 10.0)])
    _, effect, value_effect = brute_force(
        [(["A"], 1, 1, 100.0), (["B"], 1, 1, 10.0), (["A", "B"], 1, 0, 10.0)], order=1
    )
    effects = markov_removal_effects(batch)
    assert effects.value_removal_effect == pytest.approx([value_effect["A"], value_effect["B"]], rel=1e-9)
    assert effects.removal_effect == pytest.approx([effect["A"], effect["B"]], rel=1e-9)
    # A carries most of the value although both carry similar conversion effects
    assert effects.value_share[0] > effects.conversion_share[0]


paths = st.lists(st.sampled_from("ABCD"), min_size=1, max_size=5)
rows_strategy = st.lists(
    st.tuples(paths, st.integers(0, 3), st.integers(0, 3), st.just(0.0) | st.floats(1, 500)),
    min_size=1,
    max_size=8,
).filter(lambda rows: any(conv for _, conv, _, _ in rows))


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, order=st.integers(1, 3))
def test_exact_removal_effects_match_brute_force(rows: list[Row], order: int) -> None:
    rows = [(path, conv, null, value if conv else 0.0) for path, conv, null, value in rows]
    batch = batch_of(rows)

    effects = markov_removal_effects(batch, AttributionOptions(markov_order=order))

    probability, effect, value_effect = brute_force(rows, order)
    assert effects.conversion_probability == pytest.approx(probability, rel=1e-9)
    for code, name in enumerate(effects.channel_names):
        assert effects.removal_effect[code] == pytest.approx(effect[name], rel=1e-7, abs=1e-10)
        assert effects.value_removal_effect[code] == pytest.approx(value_effect[name], rel=1e-7, abs=1e-10)


@settings(max_examples=40, deadline=None)
@given(rows=rows_strategy)
def test_chain_conversion_probability_is_the_observed_rate(rows: list[Row]) -> None:
    batch = batch_of(rows)
    observed = sum(conv for _, conv, _, _ in rows) / sum(conv + null for _, conv, null, _ in rows)
    assert markov_removal_effects(batch).conversion_probability == pytest.approx(observed, rel=1e-9)


def test_credit_is_distributed_by_removal_effect_then_evenly_over_a_channel_s_touches() -> None:
    batch = batch_of([(["A", "B", "A"], 1, 0, 90.0), (["A"], 0, 1, 0.0), (["B"], 1, 2, 10.0)])
    effects = markov_removal_effects(batch)
    credits = attribute(batch, [AttributionModel.MARKOV]).for_model("markov")
    a, b = effects.removal_effect
    first = credits.journey == 0
    assert credits.touch[first].tolist() == [0, 1, 2]
    assert credits.credit[first] == pytest.approx([a / (a + b) / 2, b / (a + b), a / (a + b) / 2])
    assert credits.value_credit[first].sum() == pytest.approx(90.0)


def test_removed_channel_never_seen_gets_nothing() -> None:
    batch = JourneyBatch.from_paths([["A"], ["A"]], converted=[True, False], channel_names=["A", "Unused"])
    effects = markov_removal_effects(batch)
    assert effects.removal_effect.tolist() == [1.0, 0.0]


def test_no_conversion_no_effect() -> None:
    effects = markov_removal_effects(batch_of([(["A", "B"], 0, 3, 0.0)]))
    assert effects.removal_effect.tolist() == [0.0, 0.0]
    assert effects.conversion_share.tolist() == [0.0, 0.0]


def test_too_many_states_is_refused_with_advice() -> None:
    rows: list[Row] = [([a, b, c], 1, 1, 0.0) for a in "ABCD" for b in "ABCD" for c in "ABCD"]
    with pytest.raises(AttributionError, match="lower order"):
        markov_removal_effects(batch_of(rows), AttributionOptions(markov_order=3, markov_max_states=20))


def test_aggregated_and_expanded_journeys_agree() -> None:
    rows: list[Row] = [(["A", "B"], 2, 1, 50.0), (["B", "C", "B"], 1, 3, 20.0), (["C"], 0, 2, 0.0)]
    expanded_paths, converted, values = [], [], []
    for path, conv, null, value in rows:
        expanded_paths += [path] * (conv + null)
        converted += [True] * conv + [False] * null
        values += [value / conv] * conv + [0.0] * null if conv else [0.0] * null
    expanded = JourneyBatch.from_paths(expanded_paths, converted=converted, conversion_value=values)
    aggregated = channel_totals(batch_of(rows), [AttributionModel.MARKOV])
    one_by_one = channel_totals(expanded, [AttributionModel.MARKOV])
    assert np.allclose(aggregated.conversions, one_by_one.conversions)
    assert np.allclose(aggregated.value, one_by_one.value)
