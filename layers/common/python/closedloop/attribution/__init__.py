"""Attribution engine: rule-based and data-driven models over a columnar batch of journeys.

Pure library (numpy; pyarrow only to read CSV and to export): no AWS, no environment, no I/O.
Usable from the attribute job, a notebook (``docs/attribution.md``) and the command line
(``python -m closedloop.attribution PATHS.csv --model all``).

Contract for the attribute job
------------------------------
Input, a :class:`JourneyBatch` built with :meth:`JourneyBatch.from_arrays`:

per touch (journey after journey, in time order within each journey)
    ``offsets`` int64 (n_journeys + 1, CSR: journey ``j`` owns touches ``offsets[j]:offsets[j+1]``),
    ``channel`` int32 code into ``channel_names`` (the caller encodes the grouping level it
    chose: GA4 channel, ``"source / medium"`` or campaign; :meth:`JourneyBatch.regroup` coarsens),
    ``touch_time`` int64 epoch seconds, ``is_direct`` bool (or ``direct_channel="Direct"``).
per journey
    ``converted`` bool, ``conversion_time`` int64 epoch seconds (e.g. deal won), ``conversion_value``
    float64 (e.g. deal amount), ``lead_touch`` / ``opportunity_touch`` int64 index of the touch
    within the journey (-1 unknown), ``weight`` int64 (default 1: aggregated paths use counts).

Entry points::

    credits = attribute(batch, models=ALL_MODELS, options=AttributionOptions(lookback_days=90))
    totals = channel_totals(batch, models=ALL_MODELS, options=...)

:class:`Credits` is columnar: one row per (converting journey, touch with non-zero credit,
model) with ``journey``, ``touch`` (index within the journey as given), ``channel``, ``model``,
``credit`` (sums to 1 per journey and model) and ``value_credit`` (sums to the journey's
``conversion_value``); ``Credits.to_arrow()`` gives a pyarrow table. The data-driven models
learn from every journey of the batch, converting or not, so pass non-converting journeys too.

Options (:class:`AttributionOptions`): ``lookback_days`` (90), ``excluded_channels`` by name
and ``exclude_direct`` by the ``is_direct`` flag (no credit when the journey has another touch),
model weights, ``half_life_days``, ``markov_order``, Shapley settings. ``channel_totals`` gives
the per-channel totals the CLI prints (for Markov: ChannelAttribution's removal-effect split).

Edge cases: a converting journey with no touch left after the lookback window (and the
exclusions) gets no row and is listed in ``Credits.unattributed`` (report it as "no web
touch"); a touch after its journey's conversion time is ignored; milestones that fall outside
the window move to the last kept touch before them, or become unknown; a row of weight 0 stands
for no journey. See ``docs/attribution.md`` for every model's definition and edge case.

Invariants: credits are non-negative and sum to 1 per converting journey and model, value
credits sum to the journey's value, and results are deterministic (same batch, same options,
same output).
"""

from closedloop.attribution.engine import ChannelTotals, Credits, attribute, channel_totals, resolve_models
from closedloop.attribution.errors import AttributionError, JourneyBatchError, PathsFileError
from closedloop.attribution.journeys import UNKNOWN_TOUCH, JourneyBatch
from closedloop.attribution.markov import RemovalEffects, markov_removal_effects
from closedloop.attribution.options import (
    ALL_MODELS,
    DATA_DRIVEN_MODELS,
    RULE_BASED_MODELS,
    AttributionModel,
    AttributionOptions,
)
from closedloop.attribution.paths_csv import parse_paths_csv
from closedloop.attribution.shapley import shapley_values

__all__ = [
    "ALL_MODELS",
    "DATA_DRIVEN_MODELS",
    "RULE_BASED_MODELS",
    "UNKNOWN_TOUCH",
    "AttributionError",
    "AttributionModel",
    "AttributionOptions",
    "ChannelTotals",
    "Credits",
    "JourneyBatch",
    "JourneyBatchError",
    "PathsFileError",
    "RemovalEffects",
    "attribute",
    "channel_totals",
    "markov_removal_effects",
    "parse_paths_csv",
    "resolve_models",
    "shapley_values",
]
