"""The columnar journey batch every model reads, and its preparation (lookback, exclusions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.errors import JourneyBatchError
from closedloop.attribution.options import AttributionOptions

__all__ = ["UNKNOWN_TOUCH", "JourneyBatch"]

UNKNOWN_TOUCH = -1
"""Milestone index meaning "not known" (lead or opportunity created without a tracked touch)."""


def _column(values: ArrayLike, dtype: type, name: str, size: int) -> NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise JourneyBatchError(f"{name} must be one-dimensional")
    if array.size != size:
        raise JourneyBatchError(f"{name} has {array.size} values, expected {size}")
    integral = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)
    if np.issubdtype(dtype, np.integer) and array.size and not integral:
        raise JourneyBatchError(f"{name} must hold integers, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def _check_offsets(offsets: NDArray[np.int64]) -> None:
    if offsets.ndim != 1 or offsets.size == 0:
        raise JourneyBatchError("offsets must be a non-empty one-dimensional array")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise JourneyBatchError("offsets must start at 0 and never decrease")


@dataclass(frozen=True, eq=False, slots=True)
class JourneyBatch:
    """Journeys as columns: one array per touch attribute, one per journey attribute.

    Touches are stored journey after journey, in time order within each journey; journey ``j``
    owns touches ``offsets[j]:offsets[j + 1]`` (CSR layout). Build one with
    :meth:`from_arrays` (defaults filled in) or :meth:`from_paths` (channel names, for small data).

    Attributes
    ----------
    offsets : ndarray of int64, shape (n_journeys + 1,)
        Start of each journey's touches; ``offsets[0] == 0`` and ``offsets[-1] == n_touches``.
    channel : ndarray of int32, shape (n_touches,)
        Code of each touch's channel, an index into ``channel_names``. The caller chooses the
        grouping level: GA4 channel, ``"source / medium"`` or campaign.
    channel_names : tuple of str
        Distinct names, indexed by code.
    touch_time : ndarray of int64, shape (n_touches,)
        Epoch seconds, non-decreasing within a journey.
    is_direct : ndarray of bool, shape (n_touches,)
        The touch is Direct (used by ``last_non_direct``), whatever the grouping level.
    converted : ndarray of bool, shape (n_journeys,)
        The journey ended in a conversion (e.g. a won deal).
    conversion_time : ndarray of int64, shape (n_journeys,)
        Epoch seconds of the conversion; the lookback window and time decay count back from it.
        Ignored for journeys that did not convert (their window ends at their last touch).
    conversion_value : ndarray of float64, shape (n_journeys,)
        Value to distribute (e.g. the deal amount); for a journey of weight ``w`` it is the total
        of the ``w`` identical journeys it stands for.
    lead_touch, opportunity_touch : ndarray of int64, shape (n_journeys,)
        Index within the journey of the touch that created the lead / the opportunity, or
        ``UNKNOWN_TOUCH`` (-1).
    weight : ndarray of int64, shape (n_journeys,)
        How many identical journeys this row stands for (1 for raw data; aggregated paths use
        ``total_conversions`` / ``total_null``).
    """

    offsets: NDArray[np.int64]
    channel: NDArray[np.int32]
    channel_names: tuple[str, ...]
    touch_time: NDArray[np.int64]
    is_direct: NDArray[np.bool_]
    converted: NDArray[np.bool_]
    conversion_time: NDArray[np.int64]
    conversion_value: NDArray[np.float64]
    lead_touch: NDArray[np.int64]
    opportunity_touch: NDArray[np.int64]
    weight: NDArray[np.int64]

    def __post_init__(self) -> None:
        offsets = self.offsets
        if offsets.dtype != np.int64:
            raise JourneyBatchError("offsets must be int64")
        _check_offsets(offsets)
        n_touches, n_journeys = int(offsets[-1]), offsets.size - 1
        for name in ("channel", "touch_time", "is_direct"):
            if getattr(self, name).size != n_touches:
                raise JourneyBatchError(f"{name} has {getattr(self, name).size} values, expected {n_touches}")
        for name in ("converted", "conversion_time", "conversion_value", "lead_touch", "opportunity_touch"):
            if getattr(self, name).size != n_journeys:
                raise JourneyBatchError(
                    f"{name} has {getattr(self, name).size} values, expected {n_journeys}"
                )
        if self.weight.size != n_journeys:
            raise JourneyBatchError(f"weight has {self.weight.size} values, expected {n_journeys}")
        if len(set(self.channel_names)) != len(self.channel_names):
            raise JourneyBatchError("channel_names must be distinct")
        if n_touches and (self.channel.min() < 0 or self.channel.max() >= len(self.channel_names)):
            raise JourneyBatchError("channel codes must index channel_names")
        if np.any(self.weight < 0):
            raise JourneyBatchError("weight must be non-negative")
        if not np.all(np.isfinite(self.conversion_value)):
            raise JourneyBatchError("conversion_value must be finite")
        sizes = np.diff(offsets)
        for name in ("lead_touch", "opportunity_touch"):
            milestone = getattr(self, name)
            if np.any((milestone < UNKNOWN_TOUCH) | (milestone >= sizes)):
                raise JourneyBatchError(f"{name} must be -1 or the index of a touch of its journey")
        if n_touches > 1:
            backwards = np.diff(self.touch_time) < 0
            if backwards.any():
                # Going back in time is fine from one journey to the next, not within one.
                backwards[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < n_touches)] - 1] = False
                if backwards.any():
                    raise JourneyBatchError("touch_time must not decrease within a journey")

    @classmethod
    def from_arrays(
        cls,
        offsets: ArrayLike,
        channel: ArrayLike,
        channel_names: Sequence[str],
        *,
        converted: ArrayLike,
        touch_time: ArrayLike | None = None,
        conversion_time: ArrayLike | None = None,
        conversion_value: ArrayLike | None = None,
        lead_touch: ArrayLike | None = None,
        opportunity_touch: ArrayLike | None = None,
        weight: ArrayLike | None = None,
        is_direct: ArrayLike | None = None,
        direct_channel: str | None = "Direct",
    ) -> JourneyBatch:
        """Build a batch from arrays, filling in what is not given.

        Parameters
        ----------
        offsets : array_like of int, shape (n_journeys + 1,)
            CSR offsets of the journeys' touches.
        channel : array_like of int, shape (n_touches,)
            Channel code of each touch, an index into ``channel_names``.
        channel_names : sequence of str
            Distinct channel names (or ``"source / medium"``, or campaigns).
        converted : array_like of bool, shape (n_journeys,)
            Whether each journey converted.
        touch_time : array_like of int, optional
            Epoch seconds per touch; 0 for every touch when not given (no lookback, no decay).
        conversion_time : array_like of int, optional
            Epoch seconds per journey; the journey's last touch time when not given.
        conversion_value : array_like of float, optional
            Value per journey; 0 when not given.
        lead_touch, opportunity_touch : array_like of int, optional
            Milestone touch index within each journey, -1 if unknown (the default).
        weight : array_like of int, optional
            Journeys each row stands for; 1 when not given.
        is_direct : array_like of bool, optional
            Per touch; when not given, the touches whose channel is ``direct_channel``.
        direct_channel : str or None, default "Direct"
            Name of the Direct channel, used only when ``is_direct`` is not given.

        Returns
        -------
        JourneyBatch
            The validated batch.

        Raises
        ------
        JourneyBatchError
            If the arrays do not fit together.
        """
        offsets_array = np.asarray(offsets)
        if offsets_array.ndim != 1 or offsets_array.size == 0:
            raise JourneyBatchError("offsets must be a non-empty one-dimensional array")
        offsets_array = _column(offsets_array, np.int64, "offsets", offsets_array.size)
        _check_offsets(offsets_array)
        n_journeys, n_touches = offsets_array.size - 1, int(offsets_array[-1])
        channel_array = _column(channel, np.int32, "channel", n_touches)
        names = tuple(str(name) for name in channel_names)
        times = (
            np.zeros(n_touches, dtype=np.int64)
            if touch_time is None
            else _column(touch_time, np.int64, "touch_time", n_touches)
        )
        if is_direct is None:
            direct_code = names.index(direct_channel) if direct_channel in names else -1
            direct = channel_array == direct_code
        else:
            direct = _column(is_direct, np.bool_, "is_direct", n_touches)
        if conversion_time is None:
            # The journey's last touch time: a window then ends where the journey ends.
            last = np.maximum(offsets_array[1:] - 1, 0)
            conv_time = np.where(offsets_array[1:] > offsets_array[:-1], times[last] if n_touches else 0, 0)
            conv_time = conv_time.astype(np.int64)
        else:
            conv_time = _column(conversion_time, np.int64, "conversion_time", n_journeys)
        unknown = np.full(n_journeys, UNKNOWN_TOUCH, dtype=np.int64)
        return cls(
            offsets=offsets_array,
            channel=channel_array,
            channel_names=names,
            touch_time=times,
            is_direct=direct,
            converted=_column(converted, np.bool_, "converted", n_journeys),
            conversion_time=conv_time,
            conversion_value=(
                np.zeros(n_journeys)
                if conversion_value is None
                else _column(conversion_value, np.float64, "conversion_value", n_journeys)
            ),
            lead_touch=unknown
            if lead_touch is None
            else _column(lead_touch, np.int64, "lead_touch", n_journeys),
            opportunity_touch=(
                unknown.copy()
                if opportunity_touch is None
                else _column(opportunity_touch, np.int64, "opportunity_touch", n_journeys)
            ),
            weight=(
                np.ones(n_journeys, dtype=np.int64)
                if weight is None
                else _column(weight, np.int64, "weight", n_journeys)
            ),
        )

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[Sequence[str]],
        *,
        converted: ArrayLike,
        channel_names: Sequence[str] | None = None,
        **columns: Any,
    ) -> JourneyBatch:
        """Build a batch from journeys given as lists of channel names (tests, notebooks).

        Parameters
        ----------
        paths : sequence of sequence of str
            The channels of each journey's touches, in time order.
        converted : array_like of bool
            Whether each journey converted.
        channel_names : sequence of str, optional
            The code order; by default channels are coded in order of first appearance.
        **columns
            Any other keyword of :meth:`from_arrays` (``touch_time``, ``weight``, ...).

        Returns
        -------
        JourneyBatch
            The validated batch.
        """
        names: list[str] = list(channel_names) if channel_names is not None else []
        code: dict[str, int] = {name: i for i, name in enumerate(names)}
        flat: list[int] = []
        offsets = [0]
        for path in paths:
            for name in path:
                if name not in code:
                    if channel_names is not None:
                        raise JourneyBatchError(f"channel {name!r} is not in channel_names")
                    code[name] = len(names)
                    names.append(name)
                flat.append(code[name])
            offsets.append(len(flat))
        return cls.from_arrays(
            np.asarray(offsets, dtype=np.int64),
            np.asarray(flat, dtype=np.int32),
            names,
            converted=converted,
            **columns,
        )

    @property
    def n_journeys(self) -> int:
        """Number of journeys (rows)."""
        return int(self.offsets.size - 1)

    @property
    def n_touches(self) -> int:
        """Number of touches over all journeys."""
        return int(self.offsets[-1])

    def take(self, journeys: ArrayLike) -> JourneyBatch:
        """The batch of the selected journeys, in the order given.

        Parameters
        ----------
        journeys : array_like of int
            Journey indices.

        Returns
        -------
        JourneyBatch
            A new batch with the same channel names.
        """
        index = np.asarray(journeys, dtype=np.int64)
        offsets, touches = seg.take(self.offsets, index)
        return JourneyBatch(
            offsets=offsets,
            channel=self.channel[touches],
            channel_names=self.channel_names,
            touch_time=self.touch_time[touches],
            is_direct=self.is_direct[touches],
            converted=self.converted[index],
            conversion_time=self.conversion_time[index],
            conversion_value=self.conversion_value[index],
            lead_touch=self.lead_touch[index],
            opportunity_touch=self.opportunity_touch[index],
            weight=self.weight[index],
        )

    def regroup(self, group_of: Mapping[str, str] | Sequence[str]) -> JourneyBatch:
        """Re-code touches at a coarser grouping level (e.g. campaign -> channel).

        Parameters
        ----------
        group_of : mapping of str to str, or sequence of str
            The group of each channel name (a mapping; unmapped names keep their own name), or
            the group of each channel code (a sequence as long as ``channel_names``).

        Returns
        -------
        JourneyBatch
            The same journeys, coded by group; groups are coded in order of first appearance.
        """
        if isinstance(group_of, Mapping):
            groups = [group_of.get(name, name) for name in self.channel_names]
        else:
            groups = [str(group) for group in group_of]
            if len(groups) != len(self.channel_names):
                raise JourneyBatchError("group_of must give one group per channel code")
        group_names = list(dict.fromkeys(groups))
        recode = np.asarray([group_names.index(group) for group in groups], dtype=np.int32)
        return JourneyBatch(
            offsets=self.offsets,
            channel=recode[self.channel] if self.channel.size else self.channel,
            channel_names=tuple(group_names),
            touch_time=self.touch_time,
            is_direct=self.is_direct,
            converted=self.converted,
            conversion_time=self.conversion_time,
            conversion_value=self.conversion_value,
            lead_touch=self.lead_touch,
            opportunity_touch=self.opportunity_touch,
            weight=self.weight,
        )


@dataclass(frozen=True, eq=False)
class PreparedJourneys:
    """A batch after the lookback window and exclusions: what the models actually see."""

    offsets: NDArray[np.int64]
    channel: NDArray[np.int32]
    touch_time: NDArray[np.int64]
    is_direct: NDArray[np.bool_]
    journey_index: NDArray[np.int64]
    """Index of each journey in the original batch."""
    converted: NDArray[np.bool_]
    anchor_time: NDArray[np.int64]
    conversion_value: NDArray[np.float64]
    lead_touch: NDArray[np.int64]
    opportunity_touch: NDArray[np.int64]
    weight: NDArray[np.int64]
    n_channels: int
    source_offsets: NDArray[np.int64]
    """Offsets of the journeys before preparation."""
    kept: NDArray[np.bool_] | None
    """Which of the original touches were kept (``None``: all of them)."""

    @property
    def n_journeys(self) -> int:
        return int(self.offsets.size - 1)

    @cached_property
    def touch_index(self) -> NDArray[np.int32]:
        """Index of each kept touch within its journey in the original batch."""
        position = seg.positions(self.source_offsets)
        return (position if self.kept is None else position[self.kept]).astype(np.int32)

    def take(self, journeys: NDArray[np.int64]) -> PreparedJourneys:
        """The selected journeys (indices into this prepared batch)."""
        if journeys.size == self.n_journeys and np.array_equal(journeys, np.arange(self.n_journeys)):
            return self  # all of them, in order: nothing to copy
        offsets, touches = seg.take(self.offsets, journeys)
        touch_index = self.touch_index[touches]
        selected = PreparedJourneys(
            offsets=offsets,
            channel=self.channel[touches],
            touch_time=self.touch_time[touches],
            is_direct=self.is_direct[touches],
            journey_index=self.journey_index[journeys],
            converted=self.converted[journeys],
            anchor_time=self.anchor_time[journeys],
            conversion_value=self.conversion_value[journeys],
            lead_touch=self.lead_touch[journeys],
            opportunity_touch=self.opportunity_touch[journeys],
            weight=self.weight[journeys],
            n_channels=self.n_channels,
            source_offsets=offsets,
            kept=None,
        )
        # The selection's touch indices are its parent's, not positions in the selection.
        selected.__dict__["touch_index"] = touch_index
        return selected


def _remap_milestone(
    milestone: NDArray[np.int64], offsets: NDArray[np.int64], kept_before: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Move a milestone to the last kept touch at or before it (-1 if there is none)."""
    known = milestone >= 0
    out = np.full(milestone.size, UNKNOWN_TOUCH, dtype=np.int64)
    at = offsets[:-1][known] + milestone[known]
    # kept_before[i] = kept touches among 0..i-1 (global); the journey's own count starts at offsets[j].
    kept_up_to = kept_before[at + 1] - kept_before[offsets[:-1][known]]
    out[known] = np.where(kept_up_to > 0, kept_up_to - 1, UNKNOWN_TOUCH)
    return out


def prepare(batch: JourneyBatch, options: AttributionOptions) -> PreparedJourneys:
    """Apply the lookback window and the channel exclusions.

    Parameters
    ----------
    batch : JourneyBatch
        The journeys as given.
    options : AttributionOptions
        ``lookback_days`` and ``excluded_channels`` are used.

    Returns
    -------
    PreparedJourneys
        The kept touches (with their original index), milestones moved to the last kept touch
        at or before them, and the time each journey's window ends (its anchor).
    """
    offsets = batch.offsets
    last_time = seg.reduce(np.maximum, batch.touch_time, offsets, 0)
    anchor = np.where(batch.converted, batch.conversion_time, last_time).astype(np.int64)
    lookback = options.lookback_seconds
    times = batch.touch_time
    if (
        times.size
        and times.max() <= anchor.min()
        and (lookback is None or times.min() >= anchor.max() - lookback)
    ):
        keep = np.ones(times.size, dtype=np.bool_)  # every touch is in every window: no per-touch test
    else:
        age = np.repeat(anchor, seg.lengths(offsets)) - times
        # A touch after the conversion cannot have caused it.
        keep = age >= 0
        if lookback is not None:
            keep &= age <= lookback
    if options.excluded_channels or options.exclude_direct:
        excluded_codes = [
            i for i, name in enumerate(batch.channel_names) if name in options.excluded_channels
        ]
        excluded = np.isin(batch.channel, np.asarray(excluded_codes, dtype=np.int32))
        if options.exclude_direct:
            excluded |= batch.is_direct
        # Excluded channels keep their credit only when the journey has nothing else.
        has_other = seg.total((keep & ~excluded).astype(np.int64), offsets) > 0
        keep &= ~(excluded & np.repeat(has_other, seg.lengths(offsets)))
    if keep.all():
        # Nothing dropped (the usual case for aggregated paths): share the arrays, copy nothing.
        return PreparedJourneys(
            offsets=offsets,
            channel=batch.channel,
            touch_time=batch.touch_time,
            is_direct=batch.is_direct,
            journey_index=np.arange(batch.n_journeys, dtype=np.int64),
            converted=batch.converted,
            anchor_time=anchor,
            conversion_value=batch.conversion_value,
            lead_touch=batch.lead_touch,
            opportunity_touch=batch.opportunity_touch,
            weight=batch.weight,
            n_channels=len(batch.channel_names),
            source_offsets=offsets,
            kept=None,
        )
    kept_before = np.zeros(keep.size + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return PreparedJourneys(
        offsets=kept_before[offsets],
        channel=batch.channel[keep],
        touch_time=batch.touch_time[keep],
        is_direct=batch.is_direct[keep],
        journey_index=np.arange(batch.n_journeys, dtype=np.int64),
        converted=batch.converted,
        anchor_time=anchor,
        conversion_value=batch.conversion_value,
        lead_touch=_remap_milestone(batch.lead_touch, offsets, kept_before),
        opportunity_touch=_remap_milestone(batch.opportunity_touch, offsets, kept_before),
        weight=batch.weight,
        n_channels=len(batch.channel_names),
        source_offsets=offsets,
        kept=keep,
    )
