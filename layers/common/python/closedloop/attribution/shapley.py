"""Counterfactual Shapley attribution over the channels of each journey.

The worth of a channel set ``S`` is the conversion probability of journeys exposed to exactly
that set of channels (Shao & Li 2011; Dalessandro et al. 2012), learnt from converting and
non-converting journeys alike:

* observed sets: the weighted conversion rate of the journeys with that set, shrunk towards the
  logistic model below by ``shapley_prior_journeys`` pseudo-journeys (rare sets are noisy);
* sets never observed: a logistic regression of conversion on channel presence, fitted on all
  journeys (ridge-regularised so a channel seen only in converting journeys stays finite);
* the empty set: 0. No journey without a tracked touch is observed, so "no touch" is the
  baseline that a journey's channels share among them.

A converting journey with distinct channels ``S`` credits each channel its Shapley value in the
game restricted to the subsets of ``S`` (what would the conversion probability have been with
only some of these channels), clipped at 0 and normalised to sum to 1; a journey whose values
are all <= 0 splits evenly over its channels. The values are exact (all ``2^|S|`` coalitions)
up to ``shapley_max_exact`` distinct channels, and estimated beyond from ``shapley_samples``
antithetic random permutations seeded by ``seed`` and the set, so results stay deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.journeys import PreparedJourneys
from closedloop.attribution.options import AttributionOptions

__all__ = ["ChannelSets", "fit_channel_sets", "journey_set_shares", "shapley_values"]

FloatArray = NDArray[np.float64]
KeyArray = NDArray[np.uint64]

_BITMASK_LIMIT = 64
_HASH_SEED = 0x5EED_C10_5ED
_RIDGE = 1.0
_CHUNK_CELLS = 1 << 21


@cache
def _popcount(n_players: int) -> NDArray[np.int64]:
    masks = np.arange(1 << n_players, dtype=np.int64)
    counts = np.zeros(masks.size, dtype=np.int64)
    for bit in range(n_players):
        counts += (masks >> bit) & 1
    return counts


@cache
def _marginal_weights(n_players: int) -> FloatArray:
    """Shapley weight ``|T|! (k - |T| - 1)! / k!`` of a coalition of each size ``|T| < k``."""
    k = n_players
    sizes = np.arange(k)
    log_weight = np.array([math.lgamma(t + 1) + math.lgamma(k - t) - math.lgamma(k + 1) for t in sizes])
    return np.exp(log_weight)


def shapley_values(worth: ArrayLike) -> FloatArray:
    """Exact Shapley values of games given by the worth of every coalition.

    Parameters
    ----------
    worth : array_like of float, shape (2**k,) or (n_games, 2**k)
        ``worth[..., mask]`` is the worth of the coalition whose players are the set bits of
        ``mask`` (player ``i`` is bit ``i``).

    Returns
    -------
    ndarray of float64, shape (k,) or (n_games, k)
        Each player's Shapley value; they sum to ``worth[..., -1] - worth[..., 0]`` (efficiency).
    """
    values = np.asarray(worth, dtype=np.float64)
    games = values.reshape(-1, values.shape[-1])
    n_players = int(games.shape[1]).bit_length() - 1
    if games.shape[1] != 1 << n_players:
        raise ValueError("worth must have 2**k entries per game")
    size = _popcount(n_players)
    weight = _marginal_weights(n_players) if n_players else np.zeros(0)
    masks = np.arange(1 << n_players, dtype=np.int64)
    result = np.empty((games.shape[0], n_players))
    for player in range(n_players):
        bit = 1 << player
        without = masks[(masks & bit) == 0]
        result[:, player] = (games[:, without | bit] - games[:, without]) @ weight[size[without]]
    return result.reshape((*values.shape[:-1], n_players))


@dataclass(frozen=True, eq=False, slots=True)
class ChannelSets:
    """The distinct channel sets of a batch and what was learnt about their conversion rate.

    Attributes
    ----------
    key : ndarray of uint64
        Sorted key of each distinct set (sum of its channels' keys).
    member_offsets, members : ndarray of int64
        CSR: the channel codes of each set, ascending.
    journeys, conversions : ndarray of float64
        Weighted journeys and conversions per set.
    channel_key : ndarray of uint64
        Key of each channel: a bit when there are at most 64 channels (exact), else a random
        64-bit number (sums collide with probability about ``n_sets**2 / 2**65``).
    coefficients : ndarray of float64
        Logistic model: intercept, then one coefficient per channel code.
    prior_journeys : float
        Shrinkage strength, in journeys.
    """

    key: KeyArray
    member_offsets: NDArray[np.int64]
    members: NDArray[np.int64]
    journeys: FloatArray
    conversions: FloatArray
    channel_key: KeyArray
    coefficients: FloatArray
    prior_journeys: float

    def worth(self, subset_keys: KeyArray, subset_logit: FloatArray) -> FloatArray:
        """Conversion probability of the coalitions with these keys (0 for the empty set)."""
        with np.errstate(over="ignore"):
            model = 1.0 / (1.0 + np.exp(-subset_logit))
        if self.key.size == 0:
            return np.where(subset_keys == 0, 0.0, model)
        index = np.minimum(np.searchsorted(self.key, subset_keys), self.key.size - 1)
        found = self.key[index] == subset_keys
        journeys = np.where(found, self.journeys[index], 0.0)
        denominator = journeys + self.prior_journeys
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = (
                np.where(found, self.conversions[index], 0.0) + self.prior_journeys * model
            ) / denominator
        value = np.where(found & (denominator > 0), observed, model)
        return np.where(subset_keys == 0, 0.0, value)


def _channel_keys(n_channels: int) -> KeyArray:
    if n_channels <= _BITMASK_LIMIT:
        return np.left_shift(np.uint64(1), np.arange(n_channels, dtype=np.uint64))
    return np.random.default_rng(_HASH_SEED).integers(
        0, 2**64, size=n_channels, dtype=np.uint64, endpoint=False
    )


def _journey_keys(journeys: PreparedJourneys, channel_key: KeyArray) -> KeyArray:
    """Key of each journey's set of distinct channels (0 for a journey without touches)."""
    offsets = journeys.offsets
    touch_key = channel_key[journeys.channel]
    if journeys.n_channels <= _BITMASK_LIMIT:
        return seg.reduce(np.bitwise_or, touch_key, offsets, np.uint64(0))
    # Hashed keys add up, so a repeated channel must be counted once.
    owner = seg.owner(offsets)
    pair = owner * journeys.n_channels + journeys.channel
    _, first_index = np.unique(pair, return_index=True)
    first = np.zeros(pair.size, dtype=np.bool_)
    first[first_index] = True
    return seg.reduce(np.add, np.where(first, touch_key, np.uint64(0)), offsets, np.uint64(0))


def _fit_logistic(
    member_offsets: NDArray[np.int64],
    members: NDArray[np.int64],
    journeys: FloatArray,
    conversions: FloatArray,
    n_channels: int,
) -> FloatArray:
    """Binomial logistic regression of conversion on channel presence, by Newton's method."""
    n_sets = journeys.size
    set_of_member = seg.owner(member_offsets)
    size = seg.lengths(member_offsets)
    # Pairs of channels sharing a set, for the Hessian: sum over sets of k^2 entries.
    pair_set = np.repeat(set_of_member, size[set_of_member])
    pair_first = np.repeat(members, size[set_of_member])
    pair_second_index = seg.take(member_offsets, set_of_member)[1]
    pair_second = members[pair_second_index]
    pair_code = pair_first * n_channels + pair_second
    total_journeys, total_conversions = journeys.sum(), conversions.sum()
    rate = np.clip(total_conversions / total_journeys if total_journeys > 0 else 0.5, 1e-9, 1 - 1e-9)
    beta = np.zeros(n_channels + 1)
    beta[0] = np.log(rate / (1 - rate))
    ridge = np.full(n_channels + 1, _RIDGE)
    ridge[0] = 0.0
    for _ in range(100):
        logit = beta[0] + seg.total(beta[1:][members], member_offsets)
        with np.errstate(over="ignore"):
            probability = 1.0 / (1.0 + np.exp(-logit))
        residual = conversions - journeys * probability
        curvature = journeys * probability * (1.0 - probability)
        gradient = np.empty(n_channels + 1)
        gradient[0] = residual.sum()
        gradient[1:] = np.bincount(members, weights=residual[set_of_member], minlength=n_channels)
        gradient -= ridge * beta
        hessian = np.empty((n_channels + 1, n_channels + 1))
        hessian[0, 0] = curvature.sum()
        hessian[0, 1:] = hessian[1:, 0] = np.bincount(
            members, weights=curvature[set_of_member], minlength=n_channels
        )
        hessian[1:, 1:] = np.bincount(
            pair_code, weights=curvature[pair_set], minlength=n_channels * n_channels
        ).reshape(n_channels, n_channels)
        hessian += np.diag(ridge) + np.eye(n_channels + 1) * 1e-12 * max(hessian[0, 0], 1.0)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-10 or n_sets == 0:
            break
    return beta


def fit_channel_sets(journeys: PreparedJourneys, options: AttributionOptions) -> tuple[ChannelSets, KeyArray]:
    """Learn the conversion rate of every observed channel set, and the fallback model.

    Parameters
    ----------
    journeys : PreparedJourneys
        All journeys (converting and not), after the lookback window and exclusions.
    options : AttributionOptions
        ``shapley_prior_journeys`` is used.

    Returns
    -------
    ChannelSets
        The set table and the logistic model.
    ndarray of uint64
        The key of each journey's set (0 for a journey without touches).
    """
    channel_key = _channel_keys(journeys.n_channels)
    journey_key = _journey_keys(journeys, channel_key)
    has_touch = journeys.offsets[1:] > journeys.offsets[:-1]
    keys, first_journey, inverse = np.unique(journey_key[has_touch], return_index=True, return_inverse=True)
    weight = journeys.weight[has_touch].astype(np.float64)
    n_journeys = np.bincount(inverse, weights=weight, minlength=keys.size).astype(np.float64)
    n_conversions = np.bincount(
        inverse, weights=weight * journeys.converted[has_touch], minlength=keys.size
    ).astype(np.float64)
    # Members of each set: the distinct channels of one journey that has it.
    representative = np.flatnonzero(has_touch)[first_journey]
    rep_offsets, rep_touches = seg.take(journeys.offsets, representative)
    pair = seg.owner(rep_offsets) * journeys.n_channels + journeys.channel[rep_touches].astype(np.int64)
    pair = np.unique(pair)
    members = pair % journeys.n_channels
    member_offsets = np.zeros(keys.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair // journeys.n_channels, minlength=keys.size), out=member_offsets[1:])
    coefficients = _fit_logistic(member_offsets, members, n_journeys, n_conversions, journeys.n_channels)
    sets = ChannelSets(
        key=keys,
        member_offsets=member_offsets,
        members=members,
        journeys=n_journeys,
        conversions=n_conversions,
        channel_key=channel_key,
        coefficients=coefficients,
        prior_journeys=options.shapley_prior_journeys,
    )
    return sets, journey_key


def _exact_shares(sets: ChannelSets, members: NDArray[np.int64]) -> FloatArray:
    """Shapley values of sets of equal size ``k`` (rows of ``members``), all coalitions."""
    n_sets, k = members.shape
    masks = np.arange(1 << k, dtype=np.int64)
    bits = ((masks[:, None] >> np.arange(k)) & 1).astype(np.uint64)  # (2^k, k)
    result = np.empty((n_sets, k))
    chunk = max(1, _CHUNK_CELLS >> k)
    for start in range(0, n_sets, chunk):
        block = members[start : start + chunk]
        subset_keys = sets.channel_key[block] @ bits.T  # uint64 sums wrap, as the keys do
        subset_logit = sets.coefficients[0] + sets.coefficients[1:][block] @ bits.T.astype(np.float64)
        result[start : start + chunk] = shapley_values(sets.worth(subset_keys, subset_logit))
    return result


def _sampled_shares(sets: ChannelSets, members: NDArray[np.int64], samples: int, seed: int) -> FloatArray:
    """Shapley values estimated from antithetic random permutations, one seeded stream per set."""
    n_sets, k = members.shape
    result = np.empty((n_sets, k))
    half = max(1, samples // 2)
    for row, channels in enumerate(members):
        set_key = int(sets.channel_key[channels].sum())
        rng = np.random.default_rng([seed, set_key])
        order = rng.permuted(np.tile(np.arange(k), (half, 1)), axis=1)
        order = np.concatenate([order, order[:, ::-1]])
        prefix_keys = np.cumsum(sets.channel_key[channels][order], axis=1, dtype=np.uint64)
        prefix_logit = sets.coefficients[0] + np.cumsum(sets.coefficients[1:][channels][order], axis=1)
        worth = sets.worth(prefix_keys, prefix_logit)
        gain = np.diff(worth, axis=1, prepend=0.0)
        result[row] = np.bincount(order.ravel(), weights=gain.ravel(), minlength=k) / order.shape[0]
    return result


def journey_set_shares(
    sets: ChannelSets, needed: NDArray[np.int64], options: AttributionOptions
) -> tuple[NDArray[np.int64], FloatArray]:
    """Normalised, clipped Shapley shares of the members of the sets ``needed``.

    Parameters
    ----------
    sets : ChannelSets
        From :func:`fit_channel_sets`.
    needed : ndarray of int64
        Indices of the sets to value (those of converting journeys), ascending.
    options : AttributionOptions
        ``shapley_max_exact``, ``shapley_samples`` and ``seed``.

    Returns
    -------
    ndarray of int64
        For each member of each needed set (CSR order of ``sets``), ``set * n + channel``.
    ndarray of float64
        Its credit share in that set's journeys (non-negative, summing to 1 per set).
    """
    size = seg.lengths(sets.member_offsets)[needed]
    pieces_key: list[NDArray[np.int64]] = []
    pieces_share: list[FloatArray] = []
    n_channels = sets.channel_key.size
    for k in np.unique(size).tolist():
        group = needed[size == k]
        members = sets.members[sets.member_offsets[group][:, None] + np.arange(k)]
        if k <= options.shapley_max_exact:
            values = _exact_shares(sets, members)
        else:
            values = _sampled_shares(sets, members, options.shapley_samples, options.seed)
        clipped = np.clip(values, 0.0, None)
        total = clipped.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.where(total > 0, clipped / total, 1.0 / k)
        pieces_key.append((group[:, None] * n_channels + members).ravel())
        pieces_share.append(shares.ravel())
    if not pieces_key:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    keys = np.concatenate(pieces_key)
    order = np.argsort(keys, kind="stable")
    return keys[order], np.concatenate(pieces_share)[order]
