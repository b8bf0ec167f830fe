"""Rule-based models: each converting journey's credit from the positions and times of its touches.

Every function takes prepared, converting journeys and returns one credit share per touch; the
shares of a journey are non-negative and sum to 1 (a journey without touches has no share).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.journeys import PreparedJourneys
from closedloop.attribution.options import AttributionModel, AttributionOptions

__all__ = ["RULE_SHARES", "TouchLayout", "rule_shares"]

FloatArray = NDArray[np.float64]


class TouchLayout:
    """Per-touch journey, position and journey length of prepared journeys, computed once."""

    def __init__(self, journeys: PreparedJourneys) -> None:
        self.journeys = journeys
        self.offsets = journeys.offsets
        self.owner = seg.owner(journeys.offsets)
        self.position = seg.positions(journeys.offsets)
        self.size = seg.lengths(journeys.offsets)
        self.touch_size = self.size[self.owner]

    def normalise(self, raw: FloatArray) -> FloatArray:
        """Scale raw weights to sum to 1 per journey; a journey whose weights are all 0 goes linear."""
        journey_total = seg.total(raw, self.offsets)[self.owner]
        linear = 1.0 / np.maximum(self.touch_size, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(journey_total > 0, raw / journey_total, linear)


def _first_touch(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return (layout.position == 0).astype(np.float64)


def _last_touch(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return (layout.position == layout.touch_size - 1).astype(np.float64)


def _last_non_direct(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    non_direct_position = np.where(layout.journeys.is_direct, -1, layout.position)
    target = seg.reduce(np.maximum, non_direct_position, layout.offsets, -1)
    # Only Direct touches: the last touch keeps the credit (as GA's last non-direct click).
    target = np.where(target >= 0, target, layout.size - 1)
    return (layout.position == target[layout.owner]).astype(np.float64)


def _linear(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return 1.0 / layout.touch_size.astype(np.float64)


def _time_decay(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    journeys = layout.journeys
    age = (journeys.anchor_time[layout.owner] - journeys.touch_time).astype(np.float64)
    # Relative to the journey's most recent touch, so a long window never underflows to 0.
    youngest = seg.reduce(np.minimum, age, layout.offsets, 0.0)[layout.owner]
    half_life = options.half_life_days * 86_400.0
    return layout.normalise(np.exp2(-(age - youngest) / half_life))


def _slots(
    layout: TouchLayout,
    slots: Sequence[tuple[NDArray[np.int64], float]],
    rest_weight: float,
) -> FloatArray:
    """Weights on milestone touches ("slots") plus ``rest_weight`` spread over the other touches.

    A touch holding several slots gets their sum; a slot whose touch is unknown (-1) is dropped;
    when no touch is left for the rest, its weight goes to the slots in proportion. The result
    is then normalised per journey.
    """
    raw = np.zeros(layout.position.size)
    is_slot = np.zeros(layout.position.size, dtype=np.bool_)
    for slot_position, weight in slots:
        hit = layout.position == slot_position[layout.owner]
        raw += weight * hit
        is_slot |= hit
    rest = ~is_slot
    rest_count = seg.total(rest.astype(np.int64), layout.offsets)[layout.owner]
    raw[rest] += rest_weight / rest_count[rest]
    return layout.normalise(raw)


def _first_middle_last(
    weights: tuple[float, float, float],
) -> Callable[[TouchLayout, AttributionOptions], FloatArray]:
    first, middle, last = weights

    def shares(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
        zero = np.zeros(layout.size.size, dtype=np.int64)
        return _slots(layout, [(zero, first), (layout.size - 1, last)], middle)

    return shares


def _position_based(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return _first_middle_last(options.position_based_weights)(layout, options)


def _j_shaped(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return _first_middle_last(options.j_shaped_weights)(layout, options)


def _inverse_j_shaped(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    return _first_middle_last(options.inverse_j_shaped_weights)(layout, options)


def _w_shaped(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    first, lead, opportunity, rest = options.w_shaped_weights
    journeys = layout.journeys
    zero = np.zeros(layout.size.size, dtype=np.int64)
    return _slots(
        layout,
        [(zero, first), (journeys.lead_touch, lead), (journeys.opportunity_touch, opportunity)],
        rest,
    )


def _full_path(layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    first, lead, opportunity, closing, rest = options.full_path_weights
    journeys = layout.journeys
    zero = np.zeros(layout.size.size, dtype=np.int64)
    return _slots(
        layout,
        [
            (zero, first),
            (journeys.lead_touch, lead),
            (journeys.opportunity_touch, opportunity),
            (layout.size - 1, closing),
        ],
        rest,
    )


RULE_SHARES: dict[AttributionModel, Callable[[TouchLayout, AttributionOptions], FloatArray]] = {
    AttributionModel.FIRST_TOUCH: _first_touch,
    AttributionModel.LAST_TOUCH: _last_touch,
    AttributionModel.LAST_NON_DIRECT: _last_non_direct,
    AttributionModel.LINEAR: _linear,
    AttributionModel.TIME_DECAY: _time_decay,
    AttributionModel.POSITION_BASED: _position_based,
    AttributionModel.W_SHAPED: _w_shaped,
    AttributionModel.FULL_PATH: _full_path,
    AttributionModel.J_SHAPED: _j_shaped,
    AttributionModel.INVERSE_J_SHAPED: _inverse_j_shaped,
}


def rule_shares(model: AttributionModel, layout: TouchLayout, options: AttributionOptions) -> FloatArray:
    """Credit share of each touch under a rule-based ``model``.

    Parameters
    ----------
    model : AttributionModel
        One of ``RULE_BASED_MODELS``.
    layout : TouchLayout
        The converting journeys (after the lookback window and exclusions), laid out once and
        reused across models.
    options : AttributionOptions
        Weights and half-life.

    Returns
    -------
    ndarray of float64
        One share per touch; each journey's shares sum to 1.
    """
    return RULE_SHARES[model](layout, options)
