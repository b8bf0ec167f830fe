"""The entry points: per-touch credits (:func:`attribute`) and per-channel totals (:func:`channel_totals`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from closedloop.attribution import _segments as seg
from closedloop.attribution.errors import AttributionError
from closedloop.attribution.journeys import JourneyBatch, PreparedJourneys, prepare
from closedloop.attribution.markov import RemovalEffects, fit_markov_chain, removal_effects_of
from closedloop.attribution.options import ALL_MODELS, AttributionModel, AttributionOptions
from closedloop.attribution.rules import RULE_SHARES, TouchLayout, rule_shares
from closedloop.attribution.shapley import fit_channel_sets, journey_set_shares

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ChannelTotals", "Credits", "attribute", "channel_totals", "resolve_models"]

FloatArray = NDArray[np.float64]


def resolve_models(models: Iterable[AttributionModel | str]) -> tuple[AttributionModel, ...]:
    """Model names as :class:`AttributionModel`, duplicates dropped, order kept.

    Parameters
    ----------
    models : iterable of AttributionModel or str
        Model names, e.g. ``["markov", "linear"]``.

    Returns
    -------
    tuple of AttributionModel
        The models.

    Raises
    ------
    AttributionError
        If a name is not a model.
    """
    if isinstance(models, str):
        models = [models]
    resolved: list[AttributionModel] = []
    for name in models:
        try:
            model = AttributionModel(name)
        except ValueError:
            known = ", ".join(m.value for m in AttributionModel)
            raise AttributionError(f"unknown model {name!r} (known: {known})") from None
        if model not in resolved:
            resolved.append(model)
    return tuple(resolved)


@dataclass(frozen=True, eq=False, slots=True)
class Credits:
    """Per-touch credits: one row per (converting journey, touch with non-zero credit, model).

    Rows are ordered by model (in the order asked), then journey, then touch.

    Attributes
    ----------
    models : tuple of AttributionModel
        The models, indexed by ``model``.
    channel_names : tuple of str
        Channel names, indexed by ``channel``.
    journey : ndarray of int64
        Journey index in the batch.
    touch : ndarray of int32
        Touch index within the journey, as given in the batch (before the lookback window).
    channel : ndarray of int32
        Channel code of the touch.
    model : ndarray of int8
        Index into ``models``.
    credit : ndarray of float64
        Share of the journey's conversion: positive, summing to 1 per journey and model.
    value_credit : ndarray of float64
        ``credit * conversion_value``: sums to the journey's value per model.
    unattributed : ndarray of int64
        Converting journeys with no touch left in the lookback window (after exclusions): they
        have no rows (the attribute job reports them as "no web touch").
    """

    models: tuple[AttributionModel, ...]
    channel_names: tuple[str, ...]
    journey: NDArray[np.int64]
    touch: NDArray[np.int32]
    channel: NDArray[np.int32]
    model: NDArray[np.int8]
    credit: FloatArray
    value_credit: FloatArray
    unattributed: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.journey.size)

    def for_model(self, model: AttributionModel | str) -> Credits:
        """The rows of one model.

        Parameters
        ----------
        model : AttributionModel or str
            One of ``models``.

        Returns
        -------
        Credits
            The same columns, restricted to that model's rows.
        """
        wanted = self.models.index(AttributionModel(model))
        rows = self.model == wanted
        return Credits(
            models=self.models,
            channel_names=self.channel_names,
            journey=self.journey[rows],
            touch=self.touch[rows],
            channel=self.channel[rows],
            model=self.model[rows],
            credit=self.credit[rows],
            value_credit=self.value_credit[rows],
            unattributed=self.unattributed,
        )

    def to_arrow(self) -> pa.Table:
        """The rows as a pyarrow table (``model`` and ``channel`` dictionary-encoded by name).

        Returns
        -------
        pyarrow.Table
            Columns ``journey_index, touch_index, channel, model, credit, value_credit``.
        """
        import pyarrow as pa

        return pa.table(
            {
                "journey_index": self.journey,
                "touch_index": self.touch,
                "channel": pa.DictionaryArray.from_arrays(self.channel, pa.array(self.channel_names)),
                "model": pa.DictionaryArray.from_arrays(self.model, pa.array([m.value for m in self.models])),
                "credit": self.credit,
                "value_credit": self.value_credit,
            }
        )


@dataclass(frozen=True, eq=False, slots=True)
class ChannelTotals:
    """Conversions and value credited to each channel, per model.

    Attributes
    ----------
    models : tuple of AttributionModel
        Row order of ``conversions`` and ``value``.
    channel_names : tuple of str
        Column order.
    conversions : ndarray of float64, shape (n_models, n_channels)
        Conversions credited (journey weights included).
    value : ndarray of float64, shape (n_models, n_channels)
        Value credited.
    unattributed_conversions, unattributed_value : float
        Conversions (and their value) with no touch in the lookback window: credited to no one.
    removal_effects : RemovalEffects or None
        The Markov model's removal effects, when it was run.
    """

    models: tuple[AttributionModel, ...]
    channel_names: tuple[str, ...]
    conversions: FloatArray
    value: FloatArray
    unattributed_conversions: float
    unattributed_value: float
    removal_effects: RemovalEffects | None = None

    def rows(self) -> Iterator[tuple[AttributionModel, str, float, float]]:
        """Yield ``(model, channel_name, conversions, value)`` for every model and channel.

        Yields
        ------
        tuple
            One row per model and channel, models in order, channels by code.
        """
        for m, model in enumerate(self.models):
            for c, name in enumerate(self.channel_names):
                yield model, name, float(self.conversions[m, c]), float(self.value[m, c])

    def share(self, model: AttributionModel | str) -> FloatArray:
        """Each channel's share of the conversions credited by ``model`` (sums to 1, or all 0)."""
        row = self.conversions[self.models.index(AttributionModel(model))]
        total = row.sum()
        return row / total if total > 0 else np.zeros_like(row)


class _Run:
    """One batch, prepared once; each model computed on demand from the shared pieces."""

    def __init__(self, batch: JourneyBatch, options: AttributionOptions) -> None:
        self.batch = batch
        self.options = options
        self.prepared = prepare(batch, options)

    @cached_property
    def converting(self) -> PreparedJourneys:
        # A row of weight 0 stands for no journey: nothing to credit.
        prepared = self.prepared
        return prepared.take(np.flatnonzero(prepared.converted & (prepared.weight > 0)))

    @cached_property
    def layout(self) -> TouchLayout:
        return TouchLayout(self.converting)

    @cached_property
    def unattributed(self) -> NDArray[np.int64]:
        has_touch = seg.lengths(self.converting.offsets) > 0
        return self.converting.journey_index[~has_touch]

    @cached_property
    def removal_effects(self) -> RemovalEffects:
        chain = fit_markov_chain(self.prepared, self.options.markov_order, self.options.markov_max_states)
        return removal_effects_of(chain, self.batch.channel_names, self.options.markov_order)

    def _spread(self, touch_weight: FloatArray) -> FloatArray:
        converting = self.converting
        return seg.spread(
            converting.offsets, self.layout.owner, converting.channel, converting.n_channels, touch_weight
        )

    def shares(self, model: AttributionModel) -> FloatArray:
        """Credit share of each touch of the converting journeys."""
        if model in RULE_SHARES:
            return rule_shares(model, self.layout, self.options)
        if model is AttributionModel.MARKOV:
            return self._spread(self.removal_effects.removal_effect[self.converting.channel])
        return self._shapley_shares()

    def _shapley_shares(self) -> FloatArray:
        sets, journey_key = fit_channel_sets(self.prepared, self.options)
        converting = self.converting
        owner = self.layout.owner
        key_of_touch = journey_key[converting.journey_index][owner]
        set_of_touch = np.searchsorted(sets.key, key_of_touch).astype(np.int64)
        needed = np.unique(set_of_touch)
        member_key, member_share = journey_set_shares(sets, needed, self.options)
        lookup = set_of_touch * converting.n_channels + converting.channel.astype(np.int64)
        touch_weight = member_share[np.searchsorted(member_key, lookup)] if lookup.size else np.zeros(0)
        return self._spread(touch_weight)

    @cached_property
    def journey_weight(self) -> tuple[FloatArray, FloatArray]:
        """Weight and value of the converting journey of each touch."""
        owner = self.layout.owner
        return (
            self.converting.weight.astype(np.float64)[owner],
            self.converting.conversion_value[owner],
        )


def attribute(
    batch: JourneyBatch,
    models: Iterable[AttributionModel | str] = ALL_MODELS,
    options: AttributionOptions | None = None,
) -> Credits:
    """Credit the touches of every converting journey, under each model.

    The data-driven models (``markov``, ``shapley``) learn from all journeys of the batch,
    converting or not, then distribute each converting journey's credit to its touches.

    Parameters
    ----------
    batch : JourneyBatch
        The journeys.
    models : iterable of AttributionModel or str, default ALL_MODELS
        Which models to run.
    options : AttributionOptions, optional
        Lookback window, excluded channels, weights, ...; defaults when not given.

    Returns
    -------
    Credits
        One row per (converting journey, touch with non-zero credit, model).
    """
    chosen = resolve_models(models)
    run = _Run(batch, options or AttributionOptions())
    converting = run.converting
    owner = run.layout.owner
    _, value = run.journey_weight
    rows_of: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)]
    credit_of: list[FloatArray] = [np.zeros(0)]
    model_of: list[NDArray[np.int8]] = [np.zeros(0, dtype=np.int8)]
    for index, model in enumerate(chosen):
        share = run.shares(model)
        rows = np.flatnonzero(share > 0)
        rows_of.append(rows)
        credit_of.append(share[rows])
        model_of.append(np.full(rows.size, index, dtype=np.int8))
    rows = np.concatenate(rows_of)
    credit = np.concatenate(credit_of)
    return Credits(
        models=chosen,
        channel_names=batch.channel_names,
        journey=converting.journey_index[owner[rows]],
        touch=converting.touch_index[rows],
        channel=converting.channel[rows],
        model=np.concatenate(model_of),
        credit=credit,
        value_credit=credit * value[rows],
        unattributed=run.unattributed,
    )


def channel_totals(
    batch: JourneyBatch,
    models: Iterable[AttributionModel | str] = ALL_MODELS,
    options: AttributionOptions | None = None,
) -> ChannelTotals:
    """Conversions and value credited to each channel, per model (what the CLI prints).

    For every model but ``markov`` this is the sum of :func:`attribute`'s credits. For
    ``markov`` it is the model's own channel-level answer, as ChannelAttribution gives it: the
    conversions split in proportion to the removal effects (and the value in proportion to the
    value removal effects). Summing Markov touch credits instead gives journey-level totals,
    which differ because a journey can only credit the channels it contains.

    Parameters
    ----------
    batch : JourneyBatch
        The journeys.
    models : iterable of AttributionModel or str, default ALL_MODELS
        Which models to run.
    options : AttributionOptions, optional
        Defaults when not given.

    Returns
    -------
    ChannelTotals
        One row of totals per model.
    """
    chosen = resolve_models(models)
    run = _Run(batch, options or AttributionOptions())
    n_channels = len(batch.channel_names)
    conversions = np.zeros((len(chosen), n_channels))
    values = np.zeros((len(chosen), n_channels))
    prepared = run.prepared
    converting = prepared.converted & (prepared.weight > 0)
    has_touch = prepared.offsets[1:] > prepared.offsets[:-1]
    attributed = converting & has_touch
    unattributed = converting & ~has_touch
    attributed_conversions = float(prepared.weight[attributed].sum())
    attributed_value = float(prepared.conversion_value[attributed].sum())
    effects: RemovalEffects | None = None
    for index, model in enumerate(chosen):
        if model is AttributionModel.MARKOV:
            effects = run.removal_effects
            conversions[index] = attributed_conversions * effects.conversion_share
            values[index] = attributed_value * effects.value_share
            continue
        share = run.shares(model)
        weight, value = run.journey_weight
        channel = run.converting.channel
        conversions[index] = np.bincount(channel, weights=share * weight, minlength=n_channels)
        values[index] = np.bincount(channel, weights=share * value, minlength=n_channels)
    return ChannelTotals(
        models=chosen,
        channel_names=batch.channel_names,
        conversions=conversions,
        value=values,
        unattributed_conversions=float(prepared.weight[unattributed].sum()),
        unattributed_value=float(prepared.conversion_value[unattributed].sum()),
        removal_effects=effects,
    )
