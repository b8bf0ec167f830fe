"""Markov chain attribution with exact removal effects (absorbing-chain linear algebra).

Conventions (those of Anderl et al. 2016 and of the ChannelAttribution package, so results can be
compared with it):

* A state is the window of the last ``order`` channels of a journey (the whole journey when it
  is shorter). Consecutive identical states are merged: at order 1, ``A > A > B`` is ``A > B``.
* Every journey enters from ``(start)`` and leaves its last state to ``(conversion)`` or
  ``(null)``; transitions are counted with the journey's weight.
* Removing a channel redirects every transition into a state that contains it to ``(null)``.
  Its removal effect is ``1 - P(conversion | removed) / P(conversion)``, which equals the share
  of conversion probability whose path visits the channel. ChannelAttribution estimates the
  same quantity by simulating paths; here it is solved exactly.
* Channel totals split the conversions in proportion to the removal effects; values are split
  in proportion to the value removal effects, where a conversion's value is the mean value of
  the conversions that leave the chain from the same state (ChannelAttribution's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.errors import AttributionError
from closedloop.attribution.journeys import JourneyBatch, PreparedJourneys, prepare
from closedloop.attribution.options import AttributionOptions

__all__ = ["MarkovChain", "RemovalEffects", "fit_markov_chain", "markov_removal_effects"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False, slots=True)
class MarkovChain:
    """The fitted chain: transient states ``0 = (start)``, ``1..n`` = channel windows.

    Attributes
    ----------
    states : tuple of tuple of int
        Channel codes of each transient state's window (``()`` for the start state).
    transition : ndarray of float64, shape (n_states, n_states)
        Transition probabilities between transient states.
    to_conversion : ndarray of float64, shape (n_states,)
        Probability of leaving each state to ``(conversion)``.
    conversion_value : ndarray of float64, shape (n_states,)
        Mean value of the conversions leaving each state (0 where none does).
    """

    states: tuple[tuple[int, ...], ...]
    transition: FloatArray
    to_conversion: FloatArray
    conversion_value: FloatArray


@dataclass(frozen=True, eq=False, slots=True)
class RemovalEffects:
    """Exact removal effect of each channel.

    Attributes
    ----------
    channel_names : tuple of str
        Names, indexed by channel code.
    removal_effect : ndarray of float64
        Per channel: ``1 - P(conversion | channel removed) / P(conversion)``, in [0, 1].
    value_removal_effect : ndarray of float64
        The same on the expected conversion value.
    conversion_probability : float
        ``P(conversion)`` of the fitted chain (equal to the weighted conversion rate of the
        journeys that have touches).
    expected_value : float
        Expected conversion value per journey under the chain.
    order : int
        Order of the chain.
    n_states : int
        Number of transient states (start included).
    """

    channel_names: tuple[str, ...]
    removal_effect: FloatArray
    value_removal_effect: FloatArray
    conversion_probability: float
    expected_value: float
    order: int
    n_states: int

    @property
    def conversion_share(self) -> FloatArray:
        """Removal effects normalised to sum to 1 (all zero if nothing converted)."""
        return _normalised(self.removal_effect)

    @property
    def value_share(self) -> FloatArray:
        """Value removal effects normalised to sum to 1 (all zero if there is no value)."""
        return _normalised(self.value_removal_effect)


def _normalised(values: FloatArray) -> FloatArray:
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def _state_sequences(journeys: PreparedJourneys, order: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Window key of each state visited (consecutive repeats merged), and state offsets per journey."""
    offsets = journeys.offsets
    base = journeys.n_channels + 1
    if order * np.log2(base) > 62:
        raise AttributionError(f"markov order {order} is too high for {journeys.n_channels} channels")
    is_first = np.zeros(journeys.channel.size, dtype=np.bool_)
    is_first[offsets[:-1][offsets[1:] > offsets[:-1]]] = True
    if order == 1:
        channel = journeys.channel
        repeated = np.zeros(channel.size, dtype=np.bool_)
        np.equal(channel[1:], channel[:-1], out=repeated[1:])
        repeated &= ~is_first
        kept_index = np.flatnonzero(~repeated)
        return np.add(channel[kept_index], 1, dtype=np.int64), np.searchsorted(kept_index, offsets)
    position = seg.positions(offsets)
    size = seg.lengths(offsets)[seg.owner(offsets)]
    code = journeys.channel.astype(np.int64) + 1
    key = code.copy()
    for lag in range(1, order):
        shifted = np.zeros_like(code)
        shifted[lag:] = code[:-lag]
        # Digits before the journey's first touch stay 0 (a short journey's partial window).
        key += np.where(position >= lag, shifted, 0) * base**lag
    # A window ends at every touch once ``order`` touches are seen (or at the last touch of a
    # journey shorter than that).
    is_window = (position >= order - 1) | ((size < order) & (position == size - 1))
    repeated = np.zeros(key.size, dtype=np.bool_)
    repeated[1:] = (key[1:] == key[:-1]) & is_window[:-1] & ~is_first[1:]
    kept_index = np.flatnonzero(is_window & ~repeated)
    return key[kept_index], np.searchsorted(kept_index, offsets)


def _state_ids(
    key: NDArray[np.int64], n_channels: int, order: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Dense state ids (from 1; 0 is the start) and the window key of each id."""
    if order == 1:
        # Every channel gets its state, seen or not: the id is the code + 1, the key itself.
        return key, np.arange(1, n_channels + 1, dtype=np.int64)
    n_keys = (n_channels + 1) ** order
    if n_keys <= 1 << 22:
        # A small key space: a presence table is faster than sorting.
        present = np.zeros(n_keys, dtype=np.bool_)
        present[key] = True
        ids = np.cumsum(present)
        return ids[key], np.flatnonzero(present)
    unique_keys, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64) + 1, unique_keys


def fit_markov_chain(journeys: PreparedJourneys, order: int = 1, max_states: int = 3000) -> MarkovChain:
    """Count the transitions of all journeys (converting or not) and normalise them.

    Parameters
    ----------
    journeys : PreparedJourneys
        All journeys, after the lookback window and exclusions.
    order : int, default 1
        Number of channels per state.
    max_states : int, default 3000
        Refuse larger chains (the exact solve is dense).

    Returns
    -------
    MarkovChain
        The fitted chain.
    """
    key, state_offsets = _state_sequences(journeys, order)
    state, unique_keys = _state_ids(key, journeys.n_channels, order)
    n_states = unique_keys.size + 1
    if n_states > max_states:
        raise AttributionError(
            f"the order-{order} chain has {n_states} states, more than markov_max_states={max_states}: "
            "use a lower order or a coarser grouping"
        )
    conversion, null = n_states, n_states + 1
    width = n_states + 2
    weight = journeys.weight.astype(np.float64)
    has_states = state_offsets[1:] > state_offsets[:-1]
    first = state_offsets[:-1][has_states]
    last = state_offsets[1:][has_states] - 1
    journey_weight = weight[has_states]
    exit_state = np.where(journeys.converted[has_states], conversion, null)
    # Every state is entered from the one before it, or from (start) = 0 for a journey's first.
    previous = np.empty_like(state)
    previous[1:] = state[:-1]
    previous[first] = 0
    entries = previous * width + state
    exits = state[last] * width + exit_state
    pair = np.concatenate([entries, exits])
    pair_weight = np.concatenate([np.repeat(weight, np.diff(state_offsets)), journey_weight])
    counts = np.bincount(pair, weights=pair_weight, minlength=n_states * width).reshape(n_states, width)
    row_total = counts.sum(axis=1)
    safe_total = np.where(row_total > 0, row_total, 1.0)
    converting_exit = journeys.converted[has_states] & (journey_weight > 0)
    value_flow = np.bincount(
        state[last][converting_exit],
        weights=journeys.conversion_value[has_states][converting_exit],
        minlength=n_states,
    )
    conversions_out = counts[:, conversion]
    mean_value = np.where(
        conversions_out > 0, value_flow / np.where(conversions_out > 0, conversions_out, 1), 0.0
    )
    base = journeys.n_channels + 1
    windows: list[tuple[int, ...]] = [()]
    for window_key in unique_keys.tolist():
        digits = []
        while window_key:
            window_key, digit = divmod(window_key, base)
            digits.append(digit - 1)
        windows.append(tuple(reversed(digits)))
    return MarkovChain(
        states=tuple(windows),
        transition=counts[:, :n_states] / safe_total[:, None],
        to_conversion=conversions_out / safe_total,
        conversion_value=mean_value,
    )


def removal_effects_of(chain: MarkovChain, channel_names: tuple[str, ...], order: int) -> RemovalEffects:
    """Solve the absorbing chain once, then each channel's removal through the Schur complement.

    With ``N = (I - Q)^-1`` and ``x = N r`` the conversion probability from every state,
    removing the states ``R`` (a channel's windows) leaves ``x_start - N[start, R] N[R, R]^-1 x[R]``:
    one dense inverse for the chain, then a ``|R| x |R|`` solve per channel (1 x 1 at order 1).
    """
    n_states = len(chain.states)
    fundamental = np.linalg.inv(np.eye(n_states) - chain.transition)
    rewards = np.column_stack([chain.to_conversion, chain.to_conversion * chain.conversion_value])
    absorbed = fundamental @ rewards  # column 0: P(conversion), column 1: expected value
    n_channels = len(channel_names)
    states_of: list[list[int]] = [[] for _ in range(n_channels)]
    for state, window in enumerate(chain.states):
        for channel in set(window):
            states_of[channel].append(state)
    through = np.zeros((n_channels, 2))
    for channel, removed in enumerate(states_of):
        if removed:
            index = np.asarray(removed)
            block = fundamental[np.ix_(index, index)]
            through[channel] = fundamental[0, index] @ np.linalg.solve(block, absorbed[index])
    probability, value = absorbed[0]
    # Round-off can leave a hair below 0 or above the total.
    through = np.clip(through, 0.0, None)
    return RemovalEffects(
        channel_names=channel_names,
        removal_effect=np.minimum(through[:, 0] / probability, 1.0) if probability > 0 else through[:, 0] * 0,
        value_removal_effect=np.minimum(through[:, 1] / value, 1.0) if value > 0 else through[:, 1] * 0,
        conversion_probability=float(probability),
        expected_value=float(value),
        order=order,
        n_states=n_states,
    )


def markov_removal_effects(batch: JourneyBatch, options: AttributionOptions | None = None) -> RemovalEffects:
    """Exact removal effect of each channel, learnt from all journeys of ``batch``.

    Parameters
    ----------
    batch : JourneyBatch
        Converting and non-converting journeys.
    options : AttributionOptions, optional
        Lookback window, excluded channels, ``markov_order`` and ``markov_max_states``.

    Returns
    -------
    RemovalEffects
        Removal effects per channel code.

    Raises
    ------
    AttributionError
        If the chain has more states than ``options.markov_max_states``.
    """
    options = options or AttributionOptions()
    prepared = prepare(batch, options)
    chain = fit_markov_chain(prepared, options.markov_order, options.markov_max_states)
    return removal_effects_of(chain, batch.channel_names, options.markov_order)
