"""The attribute job: journeys from the table, every attribution model, Parquet partitions on S3.

A run is given the days to refresh (the incremental run: the days since its watermark; a backfill:
a range). It then rewrites only what those days touch:

- ``touches`` partitions of those days (every touch of the day, with the lead that owns it);
- the leads changed on those days, and the leads whose touches arrived on them (a late touch, a
  merged device), in their ``leads`` partitions (by creation day);
- the deals changed on those days and the deals of those leads, in ``deals`` (by opportunity
  creation day), ``attribution_credits`` (by conversion day) and the ``pipeline`` snapshot;
- ``channel_daily`` for every day whose inputs changed.

Partitions are read, the affected rows replaced, and written back whole (``closedloop.lake``), so
the cost follows the changes, not the table, and a re-run writes the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from closedloop.analytics.datasets import Dataset, dataset
from closedloop.analytics.training import TrainingJourney, TrainingJourneys, lead_journey_key
from closedloop.attribution import ALL_MODELS, AttributionModel, AttributionOptions, JourneyBatch, attribute
from closedloop.clock import day_of
from closedloop.crm.models import DealLifecycle
from closedloop.crm.money import to_base_currency
from closedloop.deal_attribution import conversion_time, deal_journey, milestone
from closedloop.deals import DealLink, StoredDeal
from closedloop.identity import journey_touches
from closedloop.lake import Lake
from closedloop.models.leads import Lead, LeadSource, VisitorLink
from closedloop.models.visits import Touch

__all__ = ["NO_WEB_TOUCH", "AttributeStore", "JobReport", "JobSettings", "days_between", "run_attribute_job"]

NO_WEB_TOUCH = "(no web touch)"
CLOSED_TO_PIPELINE = {DealLifecycle.WON, DealLifecycle.LOST, DealLifecycle.DELETED}


class AttributeStore(Protocol):
    """What the job reads from DynamoDB (``closedloop.store.DynamoStore``)."""

    def touches_on_day(self, day: str) -> Iterator[Touch]: ...
    def leads_updated_on(self, day: str) -> Iterator[Lead]: ...
    def deals_changed_on(self, day: str) -> Iterator[StoredDeal]: ...
    def get_lead(self, lead_id: str) -> Lead | None: ...
    def get_deal(self, crm: str, deal_id: str) -> StoredDeal | None: ...
    def links_of_lead(self, lead_id: str) -> list[VisitorLink]: ...
    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]: ...
    def touches_of_visitor(self, visitor_id: str) -> list[Touch]: ...
    def deals_of_lead(self, lead_id: str) -> list[DealLink]: ...
    def late_touch_days(self, received_day: str) -> list[str]: ...


@dataclass(frozen=True)
class JobSettings:
    lookback_days: float = 90.0
    base_currency: str = "USD"
    rates: dict[str, Decimal] = field(default_factory=dict)
    models: tuple[AttributionModel, ...] = ALL_MODELS
    half_life_days: float = 7.0
    training_days: float = 365.0  # the period whose journeys the data-driven models learn from


@dataclass
class JobReport:
    days: list[str]
    touches: int = 0
    leads: int = 0
    deals: int = 0
    credit_rows: int = 0
    training_journeys: int = 0
    spend_lines_skipped: int = 0
    partitions_written: int = 0
    bytes_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "days": [self.days[0], self.days[-1]] if self.days else []}


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _deal_key(crm: str, deal_id: str) -> str:
    return f"{crm}#{deal_id}"


class _Reader:
    """The store, with per-run caches: a visitor's links and touches are read once per run."""

    def __init__(self, store: AttributeStore) -> None:
        self.store = store
        self._links: dict[str, list[VisitorLink]] = {}
        self._touches: dict[str, list[Touch]] = {}
        self._leads: dict[str, Lead | None] = {}

    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]:
        if visitor_id not in self._links:
            self._links[visitor_id] = self.store.links_of_visitor(visitor_id)
        return self._links[visitor_id]

    def touches_of_visitor(self, visitor_id: str) -> list[Touch]:
        if visitor_id not in self._touches:
            self._touches[visitor_id] = self.store.touches_of_visitor(visitor_id)
        return self._touches[visitor_id]

    def lead(self, lead_id: str) -> Lead | None:
        if lead_id not in self._leads:
            self._leads[lead_id] = self.store.get_lead(lead_id)
        return self._leads[lead_id]

    def owner_of(self, touch: Touch) -> str | None:
        links = self.links_of_visitor(touch.visitor_id)
        return next((link.lead_id for link in links if link.covers(touch.occurred_at)), None)

    def journey(self, lead_ids: Iterable[str]) -> list[Touch]:
        links = [link for lead_id in lead_ids for link in self.store.links_of_lead(lead_id)]
        return journey_touches(
            links, {link.visitor_id: self.touches_of_visitor(link.visitor_id) for link in links}
        )


@dataclass
class _Conversion:
    """One deal to credit: its journey and what its credit is worth."""

    deal: StoredDeal
    journey: list[Touch]
    at: int  # ms: won time, or opportunity creation time
    value: float  # base currency
    lead_touch: int
    opportunity_touch: int


def _amount_base(deal: StoredDeal, settings: JobSettings) -> float:
    if deal.amount is None:
        return 0.0
    return float(
        to_base_currency(
            deal.amount, deal.currency or settings.base_currency, settings.rates, settings.base_currency
        )
    )


def _deals_day(c: _Conversion) -> str:
    """The ``deals`` partition: the day the opportunity was created (else its conversion day)."""
    return day_of(c.deal.opportunity_created_at or c.at)


def _build_batch(conversions: list[_Conversion], training: pa.Table) -> JourneyBatch:
    """The run's conversions first (they are credited), then the other journeys the models learn from."""
    n_conv = len(conversions)
    flat = [t for c in conversions for t in c.journey]
    learnt_channels = pc.list_flatten(training["channels"])
    names = sorted({t.channel for t in flat} | set(pc.unique(learnt_channels).to_pylist())) or ["Direct"]
    code = {name: i for i, name in enumerate(names)}
    lengths = np.concatenate(
        [
            np.array([len(c.journey) for c in conversions], dtype=np.int64),
            pc.list_value_length(training["channels"]).to_numpy(zero_copy_only=False).astype(np.int64),
        ]
    )
    return JourneyBatch.from_arrays(
        np.concatenate([[0], np.cumsum(lengths)]),
        np.concatenate(
            [
                np.array([code[t.channel] for t in flat], dtype=np.int32),
                pc.index_in(learnt_channels, value_set=pa.array(names)).to_numpy(zero_copy_only=False),
            ]
        ).astype(np.int32),
        names,
        converted=np.concatenate(
            [np.ones(n_conv, dtype=np.bool_), training["converted"].to_numpy(zero_copy_only=False)]
        ),
        touch_time=np.concatenate(
            [
                np.array([t.occurred_at // 1000 for t in flat], dtype=np.int64),
                pc.list_flatten(training["touch_times"]).to_numpy(zero_copy_only=False),
            ]
        ).astype(np.int64),
        conversion_time=np.concatenate(
            [np.array([c.at // 1000 for c in conversions], dtype=np.int64), training["ended_at"].to_numpy()]
        ).astype(np.int64),
        conversion_value=np.concatenate(
            [np.array([c.value for c in conversions], dtype=np.float64), training["value"].to_numpy()]
        ),
        lead_touch=np.concatenate(
            [np.array([c.lead_touch for c in conversions], dtype=np.int64), np.full(training.num_rows, -1)]
        ),
        opportunity_touch=np.concatenate(
            [
                np.array([c.opportunity_touch for c in conversions], dtype=np.int64),
                np.full(training.num_rows, -1),
            ]
        ),
    )


def _credit_rows(conversions: list[_Conversion], training: pa.Table, settings: JobSettings) -> list[dict]:
    """One row per deal x credited touch x model, plus '(no web touch)' rows for journeys with none.

    ``training`` holds the other journeys of the period: the data-driven models learn from them too,
    but only the run's own conversions are credited.
    """
    rows: list[dict] = []
    # Journeys come windowed from the job (see the conversions step): no second window here.
    options = AttributionOptions(lookback_days=None, half_life_days=settings.half_life_days)
    credited: set[int] = set()
    if any(c.journey for c in conversions):
        credits = attribute(_build_batch(conversions, training), models=settings.models, options=options)
        mine = np.flatnonzero(credits.journey < len(conversions))
        for journey, touch, model, share, value in zip(
            credits.journey[mine].tolist(),
            credits.touch[mine].tolist(),
            credits.model[mine].tolist(),
            credits.credit[mine].tolist(),
            credits.value_credit[mine].tolist(),
            strict=True,
        ):
            conversion = conversions[journey]
            credited.add(journey)
            rows.append(
                _credit_row(conversion, conversion.journey[touch], credits.models[model], share, value)
            )
    for index, conversion in enumerate(conversions):
        if index not in credited:
            for model in settings.models:
                rows.append(_credit_row(conversion, None, model, 1.0, conversion.value))
    return rows


def _training_rows(conversions: list[_Conversion], others: dict[str, list[Touch]]) -> list[TrainingJourney]:
    rows = [
        TrainingJourney(
            journey_key=_deal_key(str(c.deal.crm), c.deal.deal_id),
            lead_id=c.deal.lead_ids[0] if c.deal.lead_ids else None,
            channels=[t.channel for t in c.journey],
            touch_times=[t.occurred_at // 1000 for t in c.journey],
            converted=True,
            value=c.value,
            ended_at=c.at // 1000,
            written_days=sorted({_deals_day(c), day_of(c.at)}),
        )
        for c in conversions
    ]
    rows += [
        TrainingJourney(
            journey_key=lead_journey_key(lead_id),
            lead_id=lead_id,
            channels=[t.channel for t in journey],
            touch_times=[t.occurred_at // 1000 for t in journey],
            converted=False,
            value=0.0,
            ended_at=journey[-1].occurred_at // 1000,
            written_days=[],
        )
        for lead_id, journey in others.items()
    ]
    return rows


def _credit_row(
    c: _Conversion, touch: Touch | None, model: AttributionModel, share: float, value: float
) -> dict:
    deal = c.deal
    won = deal.lifecycle is DealLifecycle.WON
    open_ = deal.lifecycle not in CLOSED_TO_PIPELINE
    return {
        "crm": str(deal.crm),
        "deal_id": deal.deal_id,
        "lead_id": deal.lead_ids[0] if deal.lead_ids else None,
        "model": str(model),
        "lifecycle": str(deal.lifecycle),
        "touch_id": touch.touch_id if touch else None,
        "touch_at": _ts(touch.occurred_at) if touch else None,
        "channel": touch.channel if touch else NO_WEB_TOUCH,
        "source": touch.source if touch else NO_WEB_TOUCH,
        "medium": touch.medium if touch else NO_WEB_TOUCH,
        "campaign": touch.campaign if touch else None,
        "credit": share,
        "revenue_credit": value if won else 0.0,
        "pipeline_credit": value if open_ else 0.0,
        "converted_at": _ts(c.at),
    }


def _source_fields(prefix: str, source: LeadSource | None) -> dict[str, Any]:
    return {
        f"{prefix}channel": source.channel if source else NO_WEB_TOUCH,
        f"{prefix}source": source.source if source else NO_WEB_TOUCH,
        f"{prefix}medium": source.medium if source else NO_WEB_TOUCH,
        f"{prefix}campaign": source.campaign if source else None,
    }


def _lead_row(lead: Lead, visitors: int) -> dict[str, Any]:
    return {
        "lead_id": lead.lead_id,
        "created_at": _ts(lead.created_at),
        "updated_at": _ts(lead.updated_at),
        "first_seen_at": _ts(lead.first_seen_at),
        "submissions": lead.submissions,
        "visitors": visitors,
        "company": lead.company,
        "job_title": lead.job_title,
        **_source_fields("original_", lead.original_source),
        **_source_fields("lead_creation_", lead.lead_creation_source),
        **_source_fields("latest_", lead.latest_source),
        "has_web_touch": lead.original_source is not None,
    }


def _deal_row(c: _Conversion) -> dict[str, Any]:
    deal = c.deal
    return {
        "crm": str(deal.crm),
        "deal_id": deal.deal_id,
        "lead_id": deal.lead_ids[0] if deal.lead_ids else None,
        "lead_count": len(deal.lead_ids),
        "lifecycle": str(deal.lifecycle),
        "pipeline": deal.pipeline,
        "stage": deal.stage,
        "amount": float(deal.amount) if deal.amount is not None else None,
        "currency": deal.currency,
        "amount_base": c.value,
        "opportunity_created_at": _ts(deal.opportunity_created_at),
        "won_at": _ts(deal.won_at),
        "lost_at": _ts(deal.lost_at),
        "updated_at": _ts(deal.updated_at),
        "touches": len(c.journey),
    }


def _sorted(table: pa.Table, sort_by: tuple[str, ...]) -> pa.Table:
    """The rows in a fixed order (nulls last; a stable sort), so the same rows write the same bytes."""
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in sort_by])
    return table.take(order)


def _table(ds: Dataset, rows: list[dict[str, Any]], sort_by: tuple[str, ...]) -> pa.Table:
    return _sorted(pa.Table.from_pylist(rows, schema=ds.schema), sort_by)


class _Writer:
    """Replace rows in partitions: read the partition, drop the rows of the given keys, add, write."""

    def __init__(self, lake: Lake, report: JobReport) -> None:
        self.lake = lake
        self.report = report
        self.written: dict[tuple[str, str], pa.Table] = {}
        self._existing: dict[str, set[str]] = {}

    def exists(self, name: str, dt: str) -> bool:
        """One listing per dataset and run: most days of a backfill have no partition to read."""
        if name not in self._existing:
            self._existing[name] = set(self.lake.partitions(name))
        return dt in self._existing[name]

    def read(self, name: str, dt: str) -> pa.Table:
        if (name, dt) in self.written:
            return self.written[(name, dt)]
        if not self.exists(name, dt):
            return dataset(name).schema.empty_table()
        return self.lake.read(name, dt, dataset(name).schema)

    def _write(self, name: str, dt: str, table: pa.Table) -> None:
        self.written[(name, dt)] = table
        existed = self.exists(name, dt)
        if table.num_rows == 0 and not existed:
            return
        self.report.bytes_written += self.lake.write(name, dt, table)
        self.report.partitions_written += 1
        if table.num_rows:
            self._existing[name].add(dt)
        else:
            self._existing[name].discard(dt)

    def replace(
        self,
        name: str,
        dt: str,
        key: tuple[str, ...],
        drop: set[str],
        rows: list[dict],
        sort_by: tuple[str, ...],
    ) -> None:
        existing = self.read(name, dt)
        if drop and existing.num_rows:
            keys = pc.binary_join_element_wise(*(pc.cast(existing[k], pa.string()) for k in key), "#")
            stale = pc.fill_null(pc.is_in(keys, value_set=pa.array(sorted(drop), pa.string())), False)
            existing = existing.filter(pc.invert(stale))
        fresh = pa.Table.from_pylist(rows, schema=dataset(name).schema)
        self._write(name, dt, _sorted(pa.concat_tables([existing, fresh]), sort_by))

    def put(self, name: str, dt: str, rows: list[dict], sort_by: tuple[str, ...]) -> None:
        self._write(name, dt, _table(dataset(name), rows, sort_by))


def _counts(table: pa.Table, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows per distinct ``keys`` (nulls are a value of their own), as ``count_all``."""
    return table.group_by(list(keys), use_threads=False).aggregate([([], "count_all")]).to_pylist()


def _channel_daily_rows(
    day: str, writer: _Writer, models: tuple[AttributionModel, ...], spend: dict[tuple[str, str, str], float]
) -> list[dict]:
    """The funnel and credit of one day by model x channel x source x medium x campaign."""
    keys = ("channel", "source", "medium", "campaign")
    totals: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    # Aggregated by Arrow (a day holds thousands of touches and credit rows); merged here, a few hundred.
    for row in _counts(writer.read("touches", day), keys):
        for model in models:
            totals[(str(model), *(row[k] for k in keys))]["visits"] += row["count_all"]
    lead_keys = tuple(f"lead_creation_{k}" for k in keys)
    for row in _counts(writer.read("leads", day), lead_keys):
        for model in models:
            totals[(str(model), *(row[k] for k in lead_keys))]["leads"] += row["count_all"]
    credits = writer.read("attribution_credits", day)
    won = pc.equal(credits["lifecycle"], str(DealLifecycle.WON))
    credits = credits.append_column("won_credit", pc.if_else(won, credits["credit"], 0.0))
    for row in (
        credits.group_by(["model", *keys], use_threads=False)
        .aggregate([(c, "sum") for c in ("credit", "won_credit", "revenue_credit", "pipeline_credit")])
        .to_pylist()
    ):
        bucket = totals[(row["model"], *(row[k] for k in keys))]
        # Each opportunity is counted once: on the day it was won, or else the day it was created.
        bucket["opportunities"] += row["credit_sum"]
        bucket["deals_won"] += row["won_credit_sum"]
        bucket["revenue_credited"] += row["revenue_credit_sum"]
        bucket["pipeline_credited"] += row["pipeline_credit_sum"]
    for (spend_channel, spend_source, spend_campaign), cost in spend.items():
        matches = [
            k
            for k in totals
            if k[1] == spend_channel and k[2] == spend_source and (k[4] or "") == spend_campaign
        ]
        if not matches:
            for model in models:
                totals[(str(model), spend_channel, spend_source, "(spend)", spend_campaign or None)][
                    "cost"
                ] += cost
            continue
        for model in models:  # one medium per (channel, source, campaign) carries the cost
            target = next((k for k in matches if k[0] == str(model)), None)
            if target is not None:
                totals[target]["cost"] += cost
    rows = []
    for (model, channel, source, medium, campaign), values in totals.items():
        cost = values.get("cost", 0.0)
        leads, won = values.get("leads", 0.0), values.get("deals_won", 0.0)
        revenue = values.get("revenue_credited", 0.0)
        rows.append(
            {
                "model": model,
                "channel": channel,
                "source": source,
                "medium": medium,
                "campaign": campaign,
                "visits": int(values.get("visits", 0)),
                "leads": leads,
                "opportunities": values.get("opportunities", 0.0),
                "deals_won": won,
                "pipeline_credited": values.get("pipeline_credited", 0.0),
                "revenue_credited": revenue,
                "cost": cost,
                "roas": revenue / cost if cost else None,
                "cost_per_lead": cost / leads if cost and leads else None,
                "customer_acquisition_cost": cost / won if cost and won else None,
            }
        )
    return rows


SpendByDay = dict[str, dict[tuple[str, str, str], float]]
APPLIED_SPEND = "applied-spend"  # the spend each channel_daily partition was last written with
_SPEND_SCHEMA = pa.schema(
    [
        ("dt", pa.string()),
        ("channel", pa.string()),
        ("source", pa.string()),
        ("campaign", pa.string()),
        ("cost", pa.float64()),
    ]
)


def _spend_by_day(lake: Lake, settings: JobSettings, report: JobReport) -> SpendByDay:
    """Cost per day and (channel, source, campaign), in the base currency; bad lines are counted, skipped."""
    spend: SpendByDay = defaultdict(lambda: defaultdict(float))
    for row in lake.spend_rows():
        try:
            day = date.fromisoformat((row.get("date") or "").strip()).isoformat()
            cost = to_base_currency(
                Decimal(row["cost"]),
                row.get("currency") or settings.base_currency,
                settings.rates,
                settings.base_currency,
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):  # InvalidOperation is an ArithmeticError
            report.spend_lines_skipped += 1
            continue
        key = (row.get("channel") or "", (row.get("source") or "").lower(), row.get("campaign") or "")
        spend[day][key] += float(cost)
    return spend


def _applied_spend(lake: Lake) -> SpendByDay:
    applied: SpendByDay = defaultdict(dict)
    for row in lake.read_state(APPLIED_SPEND, _SPEND_SCHEMA).to_pylist():
        applied[row["dt"]][(row["channel"], row["source"], row["campaign"])] = row["cost"]
    return applied


def _save_applied_spend(lake: Lake, spend: SpendByDay) -> int:
    rows = [
        {"dt": dt, "channel": key[0], "source": key[1], "campaign": key[2], "cost": cost}
        for dt, costs in sorted(spend.items())
        for key, cost in sorted(costs.items())
    ]
    return lake.write_state(APPLIED_SPEND, pa.Table.from_pylist(rows, schema=_SPEND_SCHEMA))


def run_attribute_job(
    store: AttributeStore,
    lake: Lake,
    *,
    days: list[str],
    now_ms: int,
    settings: JobSettings,
    rebuild: bool = False,
) -> JobReport:
    """Refresh every dataset for the changes of ``days`` (see the module docstring).

    ``rebuild`` starts the models' training journeys afresh (a full run) instead of updating them.
    """
    report = JobReport(days=days)
    reader = _Reader(store)
    writer = _Writer(lake, report)
    day_set = set(days)
    lookback_ms = int(settings.lookback_days * 86_400_000)

    # 1. Touches of the days (and of the days late touches arrived for), each with the lead that owns it.
    affected_leads: set[str] = set()
    touch_days = sorted(day_set | {late for day in days for late in store.late_touch_days(day)})
    for day in touch_days:
        rows = []
        for touch in store.touches_on_day(day):
            owner = reader.owner_of(touch)
            if owner:
                affected_leads.add(owner)
            rows.append(
                {
                    **touch.model_dump(
                        include={
                            "touch_id",
                            "visitor_id",
                            "channel",
                            "source",
                            "medium",
                            "campaign",
                            "term",
                            "content",
                            "click_id_type",
                            "referrer_host",
                            "landing_path",
                        }
                    ),
                    "lead_id": owner,
                    "occurred_at": _ts(touch.occurred_at),
                }
            )
        writer.put("touches", day, rows, ("occurred_at", "touch_id"))
        report.touches += len(rows)

    # 2. Changed leads, and the deals to credit again.
    for day in days:
        affected_leads.update(lead.lead_id for lead in store.leads_updated_on(day))
    deal_keys: dict[str, tuple[str, str]] = {}
    for day in days:
        for deal in store.deals_changed_on(day):
            deal_keys[_deal_key(str(deal.crm), deal.deal_id)] = (str(deal.crm), deal.deal_id)
    leads_with_deals: set[str] = set()
    for lead_id in sorted(affected_leads):
        for link in store.deals_of_lead(lead_id):
            leads_with_deals.add(lead_id)
            deal_keys[_deal_key(str(link.crm), link.deal_id)] = (str(link.crm), link.deal_id)

    # 3. Leads partitions (by creation day).
    lead_rows: dict[str, list[dict]] = defaultdict(list)
    for lead_id in sorted(affected_leads):
        lead = reader.lead(lead_id)
        if lead is not None:
            lead_rows[day_of(lead.created_at)].append(_lead_row(lead, len(store.links_of_lead(lead_id))))
    for dt, rows in sorted(lead_rows.items()):
        writer.replace("leads", dt, ("lead_id",), {r["lead_id"] for r in rows}, rows, ("lead_id",))
        report.leads += len(rows)

    # 4. Conversions: every affected deal with its journey up to its conversion.
    remembered = TrainingJourneys.load(lake)
    training = TrainingJourneys.empty() if rebuild else remembered
    conversions: list[_Conversion] = []
    deleted: set[str] = set()
    old_partitions: dict[str, set[str]] = defaultdict(set)
    for key, written in remembered.written_days(deal_keys).items():
        for dt in written:
            old_partitions[dt].add(key)
    for key, (crm, deal_id) in sorted(deal_keys.items()):
        stored = store.get_deal(crm, deal_id)
        if stored is None:
            continue
        deal = stored
        for ms in (deal.opportunity_created_at, deal.won_at, deal.updated_at):
            if ms is not None:
                old_partitions[day_of(ms)].add(key)
        if deal.lifecycle is DealLifecycle.DELETED:
            deleted.add(key)
            continue
        at = conversion_time(deal)
        primary = reader.lead(deal.lead_ids[0]) if deal.lead_ids else None
        journey = deal_journey(
            deal,
            reader.journey(deal.lead_ids),
            lead_created_at=primary.created_at if primary else None,
            lookback_days=settings.lookback_days,
        )
        conversions.append(
            _Conversion(
                deal=deal,
                journey=journey,
                at=at,
                value=_amount_base(deal, settings),
                lead_touch=milestone(journey, primary.created_at if primary else None),
                opportunity_touch=milestone(journey, deal.opportunity_created_at),
            )
        )
    report.deals = len(conversions)

    # 5. What the data-driven models learn from: the period's journeys, this run's replaced.
    # Non-converting journeys (leads without deals) teach the data-driven models what does not convert;
    # their window ends at their last touch.
    others = {
        lead_id: [t for t in journey if t.occurred_at >= journey[-1].occurred_at - lookback_ms]
        for lead_id in sorted(affected_leads - leads_with_deals)
        if (journey := reader.journey([lead_id]))
    }
    touched_keys = {_deal_key(str(c.deal.crm), c.deal.deal_id) for c in conversions} | deleted
    training.replace(
        leads=affected_leads,
        journey_keys=touched_keys | {lead_journey_key(lead) for c in conversions for lead in c.deal.lead_ids},
        fresh=_training_rows(conversions, others),
        since=now_ms // 1000 - int(settings.training_days * 86400),
    )
    report.bytes_written += training.save(lake)
    report.training_journeys = len(training)

    # 6. Deals (by opportunity creation day) and credits (by conversion day).
    deal_rows: dict[str, list[dict]] = defaultdict(list)
    for c in conversions:
        deal_rows[_deals_day(c)].append(_deal_row(c))
    for dt in sorted(set(deal_rows) | set(old_partitions)):
        writer.replace(
            "deals", dt, ("crm", "deal_id"), touched_keys, deal_rows.get(dt, []), ("crm", "deal_id")
        )
    credit_rows: dict[str, list[dict]] = defaultdict(list)
    all_credit_rows = _credit_rows(conversions, training.without(touched_keys), settings)
    for row in all_credit_rows:
        credit_rows[day_of(int(row["converted_at"].timestamp() * 1000))].append(row)
    report.credit_rows = len(all_credit_rows)
    credit_days = sorted(set(credit_rows) | set(old_partitions))
    for dt in credit_days:
        writer.replace(
            "attribution_credits",
            dt,
            ("crm", "deal_id"),
            touched_keys,
            credit_rows.get(dt, []),
            ("crm", "deal_id", "model", "touch_at", "touch_id"),
        )

    # 7. The pipeline snapshot of today: yesterday's, with the affected deals replaced.
    today = day_of(now_ms)
    snapshots = [p for p in lake.partitions("pipeline") if p <= today]
    base = writer.read("pipeline", snapshots[-1]).to_pylist() if snapshots else []
    kept = [r for r in base if _deal_key(r["crm"], r["deal_id"]) not in touched_keys]
    amounts = {_deal_key(str(c.deal.crm), c.deal.deal_id): c for c in conversions}
    fresh = [
        {
            **{
                k: r[k]
                for k in (
                    "crm",
                    "deal_id",
                    "model",
                    "channel",
                    "source",
                    "medium",
                    "campaign",
                    "credit",
                    "pipeline_credit",
                )
            },
            "pipeline": amounts[_deal_key(r["crm"], r["deal_id"])].deal.pipeline,
            "stage": amounts[_deal_key(r["crm"], r["deal_id"])].deal.stage,
            "amount_base": amounts[_deal_key(r["crm"], r["deal_id"])].value,
        }
        for r in all_credit_rows
        if r["pipeline_credit"] > 0 or (r["lifecycle"] not in {"won", "lost"})
    ]
    writer.put("pipeline", today, kept + fresh, ("crm", "deal_id", "model", "channel", "source", "campaign"))

    # 8. channel_daily for every day whose inputs changed.
    # A spend CSV dropped (or corrected, or removed) for any day rewrites that day, in this run or not.
    spend = _spend_by_day(lake, settings, report)
    applied = _applied_spend(lake)
    spend_changed = {dt for dt in set(spend) | set(applied) if dict(spend.get(dt, {})) != applied.get(dt, {})}
    for dt in sorted(
        set(touch_days) | set(lead_rows) | set(credit_days) | (set(spend) & day_set) | spend_changed
    ):
        writer.put(
            "channel_daily",
            dt,
            _channel_daily_rows(dt, writer, settings.models, spend.get(dt, {})),
            ("model", "channel", "source", "medium", "campaign"),
        )
    if spend_changed:  # after the partitions: a crash before this line redoes them next run
        report.bytes_written += _save_applied_spend(lake, spend)
    return report
