"""Attribute job: journeys assembled and attributed per second, and how a run grows with the changes.

The table is an in-memory stand-in with the store's read methods (100,000 leads with their visitors,
touches and deals), and S3 is an in-memory bucket, so what is timed is the job itself: reading the
changes, building journeys, every attribution model, and writing Parquet.

    .venv/bin/python benchmarks/attribute_job.py [--leads 100000]

The run time must grow with the number of changed deals, not with the size of the table.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "common" / "python")]

from closedloop.analytics.job import JobSettings, run_attribute_job  # noqa: E402
from closedloop.analytics.training import STATE_NAME  # noqa: E402
from closedloop.clock import day_of  # noqa: E402
from closedloop.crm.models import CrmName, DealLifecycle  # noqa: E402
from closedloop.deals import DealLink, StoredDeal  # noqa: E402
from closedloop.lake import Lake  # noqa: E402
from closedloop.models.leads import Lead, VisitorLink  # noqa: E402
from closedloop.models.visits import Touch  # noqa: E402

DAY = 86_400_000
CHANNELS = [
    ("Paid Search", "google", "cpc"),
    ("Organic Search", "google", "organic"),
    ("Email", "newsletter", "email"),
    ("Paid Social", "linkedin", "paid_social"),
    ("Referral", "partner.example", "referral"),
    ("Direct", "(direct)", "(none)"),
    ("Display", "dv360", "display"),
    ("Organic Social", "linkedin.com", "referral"),
]


class MemoryTable:
    """The store's read side over dicts, shaped like the DynamoDB access patterns (by key, by day)."""

    def __init__(self, leads: int, now: int, seed: int = 3) -> None:
        rng = random.Random(seed)
        self.touches: dict[str, list[Touch]] = {}
        self.touches_by_day: dict[str, list[Touch]] = defaultdict(list)
        self.leads: dict[str, Lead] = {}
        self.leads_by_day: dict[str, list[Lead]] = defaultdict(list)
        self.links: dict[str, list[VisitorLink]] = {}
        self.deals: dict[tuple[str, str], StoredDeal] = {}
        self.deals_by_day: dict[str, list[StoredDeal]] = defaultdict(list)
        self.lead_deals: dict[str, list[DealLink]] = defaultdict(list)
        for n in range(leads):
            visitor, lead_id = f"v{n:07d}xxxxxxxxxxxxxx", f"ld_{n:032d}"
            created = now - rng.randint(1, 60) * DAY
            touches = []
            for t in range(rng.randint(1, 5)):
                channel, source, medium = rng.choice(CHANNELS)
                at = created - rng.randint(0, 30) * DAY - t * 3_600_000
                touch = Touch(
                    visitor_id=visitor,
                    touch_id=f"t{n}x{t}",
                    occurred_at=at,
                    channel=channel,
                    source=source,
                    medium=medium,
                    campaign=f"c{rng.randint(1, 20)}",
                    landing_host="www.acme.test",
                    landing_path="/",
                )
                touches.append(touch)
                self.touches_by_day[day_of(at)].append(touch)
            self.touches[visitor] = sorted(touches, key=lambda t: t.occurred_at)
            lead = Lead(lead_id=lead_id, email=f"p{n}@example.com", created_at=created, updated_at=created)
            self.leads[lead_id] = lead
            self.leads_by_day[day_of(created)].append(lead)
            self.links[lead_id] = [
                VisitorLink(visitor_id=visitor, lead_id=lead_id, linked_from=0, linked_at=created)
            ]
            if rng.random() < 0.3:
                won = rng.random() < 0.4
                deal = StoredDeal(
                    crm=CrmName.GENERIC,
                    deal_id=f"d{n}",
                    lifecycle=DealLifecycle.WON if won else DealLifecycle.OPEN,
                    version=1,
                    updated_at=created + DAY,
                    last_event_id="e",
                    amount=Decimal(rng.randint(1, 50) * 1000),
                    currency="USD",
                    opportunity_created_at=created + DAY // 2,
                    won_at=created + DAY if won else None,
                    lead_ids=(lead_id,),
                    changed_at=created + DAY,
                )
                self.deals[("generic", deal.deal_id)] = deal
                self.deals_by_day[day_of(deal.changed_at)].append(deal)
                self.lead_deals[lead_id].append(
                    DealLink(lead_id=lead_id, crm=CrmName.GENERIC, deal_id=deal.deal_id, linked_at=created)
                )

    def touches_on_day(self, day: str) -> Iterator[Touch]:
        return iter(self.touches_by_day.get(day, []))

    def leads_updated_on(self, day: str) -> Iterator[Lead]:
        return iter(self.leads_by_day.get(day, []))

    def deals_changed_on(self, day: str) -> Iterator[StoredDeal]:
        return iter(self.deals_by_day.get(day, []))

    def get_lead(self, lead_id: str) -> Lead | None:
        return self.leads.get(lead_id)

    def get_deal(self, crm: str, deal_id: str) -> StoredDeal | None:
        return self.deals.get((str(crm), deal_id))

    def links_of_lead(self, lead_id: str) -> list[VisitorLink]:
        return self.links.get(lead_id, [])

    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]:
        lead_id = "ld_" + f"{int(visitor_id[1:8]):032d}"
        return self.links.get(lead_id, [])

    def touches_of_visitor(self, visitor_id: str) -> list[Touch]:
        return self.touches.get(visitor_id, [])

    def deals_of_lead(self, lead_id: str) -> list[DealLink]:
        return self.lead_deals.get(lead_id, [])

    def late_touch_days(self, received_day: str) -> list[str]:
        return []


class MemoryS3:
    """The four S3 calls the lake makes, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:  # noqa: N803
        self.objects[Key] = Body
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.objects.pop(Key, None)
        return {}

    def list_objects_v2(self, *, Bucket: str, Prefix: str, Delimiter: str = "", **_: Any) -> dict[str, Any]:  # noqa: N803
        keys = [k for k in self.objects if k.startswith(Prefix)]
        if Delimiter:
            prefixes = sorted({Prefix + k[len(Prefix) :].split(Delimiter)[0] + Delimiter for k in keys})
            return {"CommonPrefixes": [{"Prefix": p} for p in prefixes]}
        return {"Contents": [{"Key": k} for k in sorted(keys)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    now = int(time.time() * 1000)
    started = time.perf_counter()
    table = MemoryTable(args.leads, now)
    print(
        f"table: {len(table.leads):,} leads, {sum(map(len, table.touches.values())):,} touches, "
        f"{len(table.deals):,} deals (built in {time.perf_counter() - started:.1f} s)"
    )
    days_with_deals = sorted(table.deals_by_day, key=lambda d: len(table.deals_by_day[d]))
    print(f"{'days refreshed':>15}{'changed deals':>15}{'journeys':>10}{'seconds':>10}{'journeys/s':>12}")
    for n_days in (1, 4, 16, 60):
        days = sorted(days_with_deals[-n_days:])
        changed = sum(len(table.deals_by_day[d]) for d in days)
        lake = Lake("bench", client=MemoryS3())  # type: ignore[arg-type]
        t0 = time.perf_counter()
        report = run_attribute_job(table, lake, days=days, now_ms=now, settings=JobSettings())
        elapsed = time.perf_counter() - t0
        print(f"{n_days:>15}{changed:>15}{report.deals:>10}{elapsed:>10.2f}{report.deals / elapsed:>12.0f}")
    print("the run time follows the changed deals (and the days' touches), not the 100k-lead table.")

    # The steady state: a full run has stored every journey of the period for the data-driven models,
    # and each hourly run reads and rewrites that state (one GET, one PUT) and trains on all of it.
    lake = Lake("bench", client=MemoryS3())  # type: ignore[arg-type]
    all_days = sorted(set(table.touches_by_day) | set(table.leads_by_day) | set(table.deals_by_day))
    t0 = time.perf_counter()
    full = run_attribute_job(table, lake, days=all_days, now_ms=now, settings=JobSettings(), rebuild=True)
    state = lake.client.objects[Lake.state_key(STATE_NAME)]  # type: ignore[attr-defined]
    print(
        f"\nfull run: {full.deals:,} deals, {len(all_days)} days, {time.perf_counter() - t0:.1f} s; "
        f"training state {full.training_journeys:,} journeys, {len(state) / 1e6:.1f} MB"
    )
    print(f"{'days refreshed':>15}{'changed deals':>15}{'trained on':>12}{'seconds':>10}")
    for n_days in (1, 4, 16):
        days = sorted(days_with_deals[-n_days:])
        changed = sum(len(table.deals_by_day[d]) for d in days)
        t0 = time.perf_counter()
        report = run_attribute_job(table, lake, days=days, now_ms=now, settings=JobSettings())
        print(f"{n_days:>15}{changed:>15}{report.training_journeys:>12,}{time.perf_counter() - t0:>10.2f}")


if __name__ == "__main__":
    main()
