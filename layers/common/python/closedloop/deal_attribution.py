"""One won deal's credit under one rule-based model, for the ``deal.won`` event.

The attribute job credits every deal under every model in batches (:mod:`closedloop.analytics.job`);
an event needs one deal under one model at once. The journey and its milestones are built here for
both (:func:`deal_journey`, :func:`milestone`): the contacts' touches from the lookback window before
the lead's creation up to the conversion, the lead-creation touch (the last at or before the primary
contact became a lead) and the opportunity-creation touch. Credits are in the deal's own
currency (no conversion to the base currency: the event carries the deal's currency).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from closedloop.attribution.options import RULE_BASED_MODELS, AttributionModel, AttributionOptions
from closedloop.crm.models import DealLifecycle
from closedloop.deals import StoredDeal
from closedloop.events import ChannelCredit, DealAttribution, TouchCredit, TouchSource, ms_to_datetime
from closedloop.models.visits import Touch

__all__ = ["DEFAULT_MODEL", "conversion_time", "credit_deal", "deal_journey", "milestone"]

DEFAULT_MODEL = AttributionModel.W_SHAPED


def conversion_time(deal: StoredDeal) -> int:
    """When the deal converted (ms): its won time while it is won, else its opportunity creation, else
    its last change."""
    if deal.lifecycle is DealLifecycle.WON and deal.won_at is not None:
        return deal.won_at
    return deal.opportunity_created_at or deal.updated_at


def deal_journey(
    deal: StoredDeal, touches: Sequence[Touch], *, lead_created_at: int | None, lookback_days: float | None
) -> list[Touch]:
    """The touches that can have brought the deal: up to its conversion, from ``lookback_days`` before
    its first milestone (the lead's creation, else the opportunity's), not before the win, so a sales
    cycle longer than the window keeps the touches that made the lead. ``None``: no window."""
    at = conversion_time(deal)
    if lookback_days is None:
        return [t for t in touches if t.occurred_at <= at]
    first = min((ms for ms in (lead_created_at, deal.opportunity_created_at, at) if ms), default=at)
    opens = first - int(lookback_days * 86_400_000)
    return [t for t in touches if opens <= t.occurred_at <= at]


def milestone(journey: Sequence[Touch], at: int | None) -> int:
    """Index of the last touch at or before ``at`` (-1 when unknown or none)."""
    if at is None:
        return -1
    index = -1
    for i, touch in enumerate(journey):
        if touch.occurred_at <= at:
            index = i
    return index


def credit_deal(
    deal: StoredDeal,
    journey: Sequence[Touch],
    *,
    lead_created_at: int | None,
    model: AttributionModel = DEFAULT_MODEL,
    options: AttributionOptions | None = None,
) -> DealAttribution:
    """Credit the touches of one deal's journey under one rule-based model.

    Parameters
    ----------
    deal
        The deal (its won time is the conversion; its amount the value).
    journey
        The deal's contacts' touches, in time order (windowed by :func:`deal_journey`).
    lead_created_at
        When the primary contact became a lead (ms): the W- and Z-shaped lead-creation milestone.
    model
        A rule-based model; the data-driven ones need many journeys (the attribute job has them).
    options
        Lookback window and weights; the defaults otherwise.

    Returns
    -------
    DealAttribution
        Credited touches in time order and channel totals by credit; both empty when the journey has
        no touch in the lookback window ("no web touch").

    Raises
    ------
    ValueError
        ``model`` is data-driven.
    """
    import numpy as np

    from closedloop.attribution import JourneyBatch, attribute

    if model not in RULE_BASED_MODELS:
        raise ValueError(f"{model} needs many journeys; choose a rule-based model for deal events")
    options = options or AttributionOptions()
    at = conversion_time(deal)
    touches = deal_journey(
        deal, journey, lead_created_at=lead_created_at, lookback_days=options.lookback_days
    )
    lookback = options.lookback_days if options.lookback_days is not None else 0.0
    if not touches:
        return DealAttribution(model=str(model), lookback_days=lookback)

    names = sorted({t.channel for t in touches})
    code = {name: i for i, name in enumerate(names)}
    value = float(deal.amount) if deal.amount is not None else 0.0
    batch = JourneyBatch.from_arrays(
        np.array([0, len(touches)], dtype=np.int64),
        np.array([code[t.channel] for t in touches], dtype=np.int32),
        names,
        converted=np.array([True]),
        touch_time=np.array([t.occurred_at // 1000 for t in touches], dtype=np.int64),
        conversion_time=np.array([at // 1000], dtype=np.int64),
        conversion_value=np.array([value], dtype=np.float64),
        lead_touch=np.array([milestone(touches, lead_created_at)], dtype=np.int64),
        opportunity_touch=np.array([milestone(touches, deal.opportunity_created_at)], dtype=np.int64),
    )
    # The window is applied above, from the lead's creation: not again from the conversion.
    credits = attribute(batch, models=[model], options=options.model_copy(update={"lookback_days": None}))
    credited: list[TouchCredit] = []
    by_channel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for index, share, value_share in zip(
        credits.touch.tolist(), credits.credit.tolist(), credits.value_credit.tolist(), strict=True
    ):
        touch = touches[index]
        credited.append(
            TouchCredit(
                touch_id=touch.touch_id,
                touched_at=ms_to_datetime(touch.occurred_at),
                source=TouchSource(
                    channel=touch.channel, source=touch.source, medium=touch.medium, campaign=touch.campaign
                ),
                credit=round(share, 6),
                revenue_credit=round(value_share, 2),
            )
        )
        totals = by_channel[touch.channel]
        totals[0] += share
        totals[1] += value_share
    channels = sorted(
        (
            ChannelCredit(channel=name, credit=round(share, 6), revenue_credit=round(revenue, 2))
            for name, (share, revenue) in by_channel.items()
        ),
        key=lambda c: (-c.credit, c.channel),
    )
    credited.sort(key=lambda c: (c.touched_at, c.touch_id))
    return DealAttribution(
        model=str(model), lookback_days=lookback, touches=tuple(credited), channels=tuple(channels)
    )
