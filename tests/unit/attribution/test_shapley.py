"""Shapley values: the axioms, hand-computed games, and the counterfactual journey model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from closedloop.attribution import (
    AttributionModel,
    AttributionOptions,
    Credits,
    JourneyBatch,
    attribute,
    channel_totals,
    shapley_values,
)
from closedloop.attribution.journeys import prepare
from closedloop.attribution.shapley import fit_channel_sets


def by_permutations(worth: np.ndarray) -> np.ndarray:
    """Shapley values from their definition: average marginal gain over all player orders."""
    k = worth.size.bit_length() - 1
    total = np.zeros(k)
    for order in itertools.permutations(range(k)):
        mask = 0
        for player in order:
            total[player] += worth[mask | 1 << player] - worth[mask]
            mask |= 1 << player
    return total / math.factorial(k)


def test_two_player_game_by_hand() -> None:
    # v({}) = 0, v({0}) = 1, v({1}) = 2, v({0, 1}) = 4
    # phi_0 = (1 - 0)/2 + (4 - 2)/2 = 1.5; phi_1 = (2 - 0)/2 + (4 - 1)/2 = 2.5
    assert shapley_values([0.0, 1.0, 2.0, 4.0]) == pytest.approx([1.5, 2.5])


def test_glove_game_by_hand() -> None:
    # Player 0 holds a left glove, players 1 and 2 right gloves; a pair is worth 1.
    worth = np.array([0, 0, 0, 1, 0, 1, 0, 1], dtype=float)  # masks 3 = {0,1}, 5 = {0,2}, 7 = all
    assert shapley_values(worth) == pytest.approx([2 / 3, 1 / 6, 1 / 6])


games = st.integers(1, 6).flatmap(
    lambda k: arrays(np.float64, 1 << k, elements=st.floats(-10, 10, allow_nan=False, allow_infinity=False))
)


@settings(max_examples=80, deadline=None)
@given(worth=games)
def test_matches_the_permutation_definition_and_is_efficient(worth: np.ndarray) -> None:
    values = shapley_values(worth)
    assert values == pytest.approx(by_permutations(worth), abs=1e-9)
    assert values.sum() == pytest.approx(worth[-1] - worth[0], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    worth=st.integers(2, 6).flatmap(lambda k: arrays(np.float64, 1 << k, elements=st.floats(-5, 5))),
    data=st.data(),
)
def test_symmetric_players_get_equal_values(worth: np.ndarray, data: st.DataObject) -> None:
    k = worth.size.bit_length() - 1
    i, j = data.draw(st.lists(st.integers(0, k - 1), min_size=2, max_size=2, unique=True))

    def swap(mask: int) -> int:
        bit_i, bit_j = (mask >> i) & 1, (mask >> j) & 1
        return (mask & ~(1 << i) & ~(1 << j)) | (bit_i << j) | (bit_j << i)

    symmetric = np.array([max(worth[m], worth[swap(m)]) for m in range(worth.size)])
    values = shapley_values(symmetric)
    assert values[i] == pytest.approx(values[j], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    worth=st.integers(2, 6).flatmap(lambda k: arrays(np.float64, 1 << k, elements=st.floats(-5, 5))),
    data=st.data(),
)
def test_null_player_gets_nothing(worth: np.ndarray, data: st.DataObject) -> None:
    k = worth.size.bit_length() - 1
    null = data.draw(st.integers(0, k - 1))
    # Make the player add nothing to any coalition: worth(T + null) = worth(T).
    game = np.array([worth[m & ~(1 << null)] for m in range(worth.size)])
    assert shapley_values(game)[null] == pytest.approx(0.0, abs=1e-9)


def test_several_games_at_once() -> None:
    both = shapley_values([[0.0, 1.0, 2.0, 4.0], [0.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(both, [[1.5, 2.5], [0.5, 0.5]])


def test_worth_must_cover_every_coalition() -> None:
    with pytest.raises(ValueError, match="2\\*\\*k"):
        shapley_values([0.0, 1.0, 2.0])


def journeys_with_rates(groups: list[tuple[list[str], int, int]]) -> JourneyBatch:
    """Journeys per channel set: (channels, how many journeys, how many of them converted)."""
    paths, converted = [], []
    for channels, n, conversions in groups:
        paths += [channels] * n
        converted += [True] * conversions + [False] * (n - conversions)
    return JourneyBatch.from_paths(paths, converted=converted, conversion_value=[100.0] * len(paths))


def test_counterfactual_credit_by_hand() -> None:
    # Given v(A) = 0.2, v(B) = 0.1, v(AB) = 0.5, every subset observed and no shrinkage:
    #   phi_A = (0.2 - 0)/2 + (0.5 - 0.1)/2 = 0.3; phi_B = (0.1 - 0)/2 + (0.5 - 0.2)/2 = 0.2
    batch = journeys_with_rates([(["A"], 10, 2), (["B"], 10, 1), (["A", "B"], 10, 5)])
    options = AttributionOptions(shapley_prior_journeys=0)

    credits = attribute(batch, [AttributionModel.SHAPLEY], options)

    both = credits.journey >= 20
    shares = {
        (int(j), int(t)): c
        for j, t, c in zip(credits.journey[both], credits.touch[both], credits.credit[both], strict=True)
    }
    assert shares[(20, 0)] == pytest.approx(0.6)
    assert shares[(20, 1)] == pytest.approx(0.4)
    # Single-channel journeys credit their one channel
    assert credits.credit[credits.journey < 20] == pytest.approx(1.0)
    totals = channel_totals(batch, [AttributionModel.SHAPLEY], options)
    assert totals.conversions[0] == pytest.approx([2 + 5 * 0.6, 1 + 5 * 0.4])


def test_repeated_touches_of_a_channel_share_its_credit() -> None:
    batch = journeys_with_rates([(["A"], 10, 2), (["B"], 10, 1), (["A", "B", "A"], 10, 5)])
    credits = attribute(batch, [AttributionModel.SHAPLEY], AttributionOptions(shapley_prior_journeys=0))
    first = credits.journey == 20
    assert credits.credit[first] == pytest.approx([0.3, 0.4, 0.3])


def test_a_channel_that_changes_nothing_gets_no_credit() -> None:
    # N-only journeys never convert and N beside A changes nothing: a null player.
    batch = journeys_with_rates([(["A"], 10, 3), (["N"], 10, 0), (["A", "N"], 10, 3)])
    credits = attribute(batch, [AttributionModel.SHAPLEY], AttributionOptions(shapley_prior_journeys=0))
    mixed = credits.journey >= 20
    assert set(credits.touch[mixed].tolist()) == {0}  # only A's touch has a row
    assert credits.credit[mixed] == pytest.approx(1.0)


def test_a_harmful_channel_is_clipped_at_zero() -> None:
    # With H, A converts less: H's Shapley value is negative, it gets no credit.
    batch = journeys_with_rates([(["A"], 10, 5), (["H"], 10, 0), (["A", "H"], 10, 1)])
    credits = attribute(batch, [AttributionModel.SHAPLEY], AttributionOptions(shapley_prior_journeys=0))
    assert credits.touch[credits.journey >= 20].tolist() == [0]


def test_synergy_of_symmetric_channels_is_split_evenly() -> None:
    # C alone and D alone never convert, together half the time: v(C) = v(D) = 0, v(CD) = 0.5
    batch = journeys_with_rates([(["C"], 10, 0), (["D"], 10, 0), (["C", "D"], 2, 1)])
    credits = attribute(batch, [AttributionModel.SHAPLEY], AttributionOptions(shapley_prior_journeys=0))
    assert credits.journey.tolist() == [20, 20]
    assert credits.credit == pytest.approx([0.5, 0.5])


def test_unobserved_coalitions_use_the_logistic_model() -> None:
    # B alone never observed: its worth comes from the model fitted on all journeys.
    batch = journeys_with_rates([(["A"], 200, 20), (["A", "B"], 200, 60), (["C"], 200, 10)])
    prepared = prepare(batch, AttributionOptions())
    sets, _ = fit_channel_sets(prepared, AttributionOptions())
    # The fitted coefficients are the ridge-penalised maximum-likelihood estimate: zero gradient.
    beta = sets.coefficients
    members = [[0], [0, 1], [2]]
    n = np.array([200.0, 200.0, 200.0])
    y = np.array([20.0, 60.0, 10.0])
    logit = np.array([beta[0] + sum(beta[1 + c] for c in m) for m in members])
    residual = y - n / (1 + np.exp(-logit))
    gradient = [residual.sum()] + [
        sum(r for r, m in zip(residual, members, strict=True) if c in m) - beta[1 + c] for c in range(3)
    ]
    assert gradient == pytest.approx([0.0] * 4, abs=1e-6)
    # And the worth of {B} is that model's prediction
    key_b = sets.channel_key[1:2]
    assert sets.worth(key_b, np.array([beta[0] + beta[2]]))[0] == pytest.approx(
        1 / (1 + np.exp(-(beta[0] + beta[2])))
    )


def test_sampled_values_approach_the_exact_ones() -> None:
    rng = np.random.default_rng(7)
    channels = list("ABCDEF")
    paths = [list(rng.choice(channels, rng.integers(1, 7))) for _ in range(4000)]
    converted = [rng.random() < 0.05 + 0.04 * len(set(p)) + 0.1 * ("E" in p) for p in paths]
    paths.append(channels)
    converted.append(True)
    batch = JourneyBatch.from_paths(paths, converted=converted)
    exact = attribute(batch, ["shapley"], AttributionOptions(shapley_max_exact=12))
    sampled = attribute(batch, ["shapley"], AttributionOptions(shapley_max_exact=5, shapley_samples=4000))
    # The journey with all six channels is estimated within a point of its exact shares
    last = exact.journey == len(paths) - 1
    assert last.sum() == 6
    assert sampled.credit[sampled.journey == len(paths) - 1] == pytest.approx(exact.credit[last], abs=0.01)

    # Journeys with at most 5 distinct channels are exact in both runs
    def small(credits: Credits) -> dict[tuple[int, int], float]:
        return {
            (j, t): c
            for j, t, c in zip(
                credits.journey.tolist(), credits.touch.tolist(), credits.credit.tolist(), strict=True
            )
            if len(set(paths[j])) <= 5
        }

    assert small(sampled) == small(exact)


def test_more_than_64_channels_use_hashed_keys_that_agree_with_bitmask_keys() -> None:
    # Journeys over 20 campaigns (repeats included: a hashed key must count a channel once)
    rng = np.random.default_rng(11)
    used = [f"campaign-{i}" for i in range(20)]
    paths = [list(rng.choice(used, rng.integers(1, 5))) for _ in range(600)]
    converted = [rng.random() < 0.1 + 0.05 * len(set(p)) + 0.2 * ("campaign-3" in p) for p in paths]
    # Given the same journeys coded with their 20 names (bitmask keys), and among 80 names (hashed keys)
    bitmask = attribute(JourneyBatch.from_paths(paths, converted=converted, channel_names=used), ["shapley"])
    unused = [f"campaign-{i}" for i in range(20, 80)]
    hashed = attribute(
        JourneyBatch.from_paths(paths, converted=converted, channel_names=used + unused), ["shapley"]
    )
    # Then every converting journey is fully credited, and both codings credit the same touches alike
    sums = np.bincount(hashed.journey, weights=hashed.credit, minlength=len(paths))
    assert sums[np.asarray(converted)] == pytest.approx(1.0)
    assert len(set(map(tuple, paths))) > 100 and any(len(set(p)) < len(p) for p in paths)
    assert hashed.journey.tolist() == bitmask.journey.tolist()
    assert hashed.touch.tolist() == bitmask.touch.tolist()
    assert hashed.credit == pytest.approx(bitmask.credit, rel=1e-9, abs=1e-12)
