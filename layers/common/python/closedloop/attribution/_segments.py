"""Segment (per-journey) operations over CSR-style offsets, safe for empty journeys."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def lengths(offsets: IntArray) -> IntArray:
    """Number of touches of each journey."""
    return np.diff(offsets)


def owner(offsets: IntArray) -> IntArray:
    """Index of the journey of each touch."""
    return np.repeat(np.arange(offsets.size - 1, dtype=np.int64), lengths(offsets))


def positions(offsets: IntArray) -> IntArray:
    """Position of each touch within its journey (0 = first touch)."""
    n_touches = int(offsets[-1])
    return np.arange(n_touches, dtype=np.int64) - np.repeat(offsets[:-1], lengths(offsets))


def reduce(ufunc: np.ufunc, values: NDArray[Any], offsets: IntArray, empty: Any) -> NDArray[Any]:
    """Reduce ``values`` per journey with ``ufunc``; an empty journey gets ``empty``.

    ``ufunc.reduceat`` alone returns an element (not the identity) for an empty segment, so only
    the starts of non-empty journeys are passed: the empty journeys between them add no element.
    """
    n_journeys = offsets.size - 1
    out = np.full(n_journeys, empty, dtype=values.dtype)
    non_empty = offsets[1:] > offsets[:-1]
    if values.size:
        out[non_empty] = ufunc.reduceat(values, offsets[:-1][non_empty])
    return out


def total(values: NDArray[Any], offsets: IntArray) -> NDArray[Any]:
    """Sum per journey (0 for an empty journey)."""
    return reduce(np.add, values, offsets, 0)


def take(offsets: IntArray, journeys: IntArray) -> tuple[IntArray, IntArray]:
    """Offsets of the selected journeys and the indices of their touches, in order."""
    sizes = lengths(offsets)[journeys]
    new_offsets = np.zeros(journeys.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_offsets[1:])
    touch_index = np.arange(int(new_offsets[-1]), dtype=np.int64) + np.repeat(
        offsets[:-1][journeys] - new_offsets[:-1], sizes
    )
    return new_offsets, touch_index


def group_counts(journey_of_touch: IntArray, channel: NDArray[np.int32], n_channels: int) -> IntArray:
    """For each touch, how many touches of its journey have the same channel."""
    key = journey_of_touch * n_channels + channel.astype(np.int64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.int64)


def spread(
    offsets: IntArray,
    journey_of_touch: IntArray,
    channel: NDArray[np.int32],
    n_channels: int,
    weight: FloatArray,
) -> FloatArray:
    """Turn each touch's channel weight in its journey into credit shares of the touches.

    ``weight[t]`` is the weight of touch ``t``'s channel in its journey (e.g. its removal
    effect). A channel's share of the journey is its weight over the journey's distinct
    channels' weights, split evenly over that channel's touches; a journey whose channels all
    weigh 0 splits evenly over its distinct channels.
    """
    same_channel = group_counts(journey_of_touch, channel, n_channels).astype(np.float64)
    raw = weight / same_channel
    journey_total = total(raw, offsets)[journey_of_touch]
    distinct = total(1.0 / same_channel, offsets)[journey_of_touch]
    even = 1.0 / (same_channel * distinct)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(journey_total > 0, raw / journey_total, even)
