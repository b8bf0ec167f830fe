"""``make demo``: a synthetic company through the real HTTP endpoints, the attribute job, then a report.

Everything runs on 127.0.0.1: moto's server stands in for DynamoDB, S3 and Secrets Manager, the local
gateway for API Gateway, and the functions are the ones deployed to Lambda. The steps:

1. visitors arrive from a dozen channels and campaigns, browse (``POST /collect``, as the tracker sends
   beacons), some fill the contact form, some on a second device (``POST /identify``);
2. the CRMs (HubSpot, Salesforce, Pipedrive and the generic webhook) create deals for some leads, move
   them, win or lose them (``POST /webhooks/{crm}``), with retries and an out-of-order delivery;
3. the ad platforms' cost reports land under ``spend/`` in the analytics bucket;
4. the attribute job writes the Parquet datasets (copied to ``out/lake/``, where DuckDB or any Parquet
   reader can open them); DuckDB runs the Athena named queries on them;
5. the report: in the terminal, and ``out/report.html`` (self-contained, charts included).

Time: the page views carry their simulated times (the beacons' ``ts``) and the CRM events their
simulated CRM times, spread over the simulated weeks. A lead's ``created_at`` is the server's clock at
``POST /identify``, which a client cannot set: in the lake every lead is created on the day of the run,
while its form was filled, and its deal created, won or lost, days or weeks earlier.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import itertools
import json
import random
import shutil
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from closedloop.clock import now_ms
from closedloop.local.crm_senders import CrmDelivery, DealChange, build_delivery
from closedloop.local.simulation import (
    DAY_MS,
    PAGE_VIEW_GAP_MS,
    SITE,
    DealPlan,
    SimulatedVisitor,
    ad_spend_rows,
    plan_deals,
    simulate_company,
    true_revenue_share,
)
from closedloop.local.stack import LOCAL_CRM_SECRETS, LocalStack

__all__ = ["DemoRun", "main", "run_demo"]

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
DEFAULT_VISITORS = 400
# A sales cycle, in days drawn uniformly: form -> deal created, -> moved a stage, -> won or lost.
SALES_CYCLE_DAYS: tuple[tuple[float, float], ...] = ((0.5, 3.0), (2.0, 7.0), (3.0, 14.0))


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - 127.0.0.1
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def _post_json(url: str, body: dict[str, Any], content_type: str) -> dict[str, Any]:
    status, reply = _post(
        url,
        json.dumps(body).encode(),
        {"Content-Type": content_type, "User-Agent": BROWSER_UA, "Origin": SITE},
    )
    if status != 200:
        raise RuntimeError(f"POST {url} answered {status}: {reply[:300]!r}")
    return dict(json.loads(reply))


class Progress:
    """A progress bar on stderr (a line per quarter when stderr is not a terminal, e.g. in CI logs)."""

    def __init__(self, label: str, total: int, unit: str, stream: TextIO | None = None) -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = self.stream.isatty()
        self._quarter = -1

    def update(self, done: int) -> None:
        width = 30
        filled = int(width * done / self.total)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        bar = "█" * filled + "·" * (width - filled)
        line = f"  {self.label:<10}[{bar}] {done}/{self.total} {self.unit}, {rate:.0f}/s"
        if self.tty:
            self.stream.write("\r" + line)
        elif done * 4 // self.total > self._quarter:
            self._quarter = done * 4 // self.total
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class DemoRun:
    """What the demo did: the facts the report states next to the query results."""

    seed: int
    days: int
    visitors: list[SimulatedVisitor]
    leads: list[SimulatedVisitor] = field(default_factory=list)
    deals: list[DealPlan] = field(default_factory=list)
    sessions: int = 0
    page_views: int = 0
    second_devices: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    out_of_order: int = 0
    out_of_order_deal: dict[str, str] | None = None  # the deal whose close arrived before its stage change
    refused: int = 0
    spend_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)


def play_visitor(api: str, visitor: SimulatedVisitor, sequence: list[int], run: DemoRun) -> bool:
    """Each session is one beacon batch, as the tracker sends it; a converting visitor then posts a form.

    Returns whether the visitor filled the form (became a lead).
    """
    for device, start, arrival, pages in visitor.sessions:
        sequence[0] += 1
        session_id = f"s{visitor.number:06d}x{sequence[0]:08d}"
        landing = arrival.landing.replace("{n}", f"{visitor.number:05d}{sequence[0]:07d}")
        urls = [landing] + [SITE + path for path in pages]
        events = [
            {
                "type": "page_view",
                "event_id": f"e{sequence[0]:08d}n{index:02d}x{visitor.number:06d}",
                "visitor_id": visitor.visitor_ids[device],
                "session_id": session_id,
                "url": url,
                "referrer": arrival.referrer if index == 0 else urls[index - 1],
                "ts": start + index * PAGE_VIEW_GAP_MS,
            }
            for index, url in enumerate(urls)
        ]
        _post_json(f"{api}/collect", {"sent_at": now_ms(), "events": events}, "text/plain;charset=UTF-8")
        run.sessions += 1
        run.page_views += len(events)
    if not visitor.email:
        return False
    last_device = visitor.sessions[-1][0]
    _post_json(
        f"{api}/identify",
        {
            "email": visitor.email,
            "visitor_id": visitor.visitor_ids[last_device],
            "company": visitor.company,
            "form_id": "contact-sales",
            "page_url": f"{SITE}/contact",
        },
        "application/json",
    )
    for device_id in visitor.visitor_ids:  # the other device, if any, is identified too (a login)
        if device_id != visitor.visitor_ids[last_device]:
            run.second_devices += 1
            _post_json(
                f"{api}/identify",
                {"email": visitor.email, "visitor_id": device_id, "form_id": "login"},
                "application/json",
            )
    return True


def deal_changes(
    plans: list[DealPlan], form_filled_at: dict[str, int], now: int, rng: random.Random
) -> list[list[DealChange]]:
    """Each deal's changes in increasing CRM time, over the simulated weeks: after its lead's form (the
    simulated time, by e-mail), before ``now``.

    The sales cycle is drawn from :data:`SALES_CYCLE_DAYS`; one that would end after ``now`` (a form
    filled lately) is compressed to end at a random point between the form and ``now``, so every planned
    outcome is still reached, and those deals do not all close at the same moment.
    """
    changes = []
    for plan in plans:
        form = form_filled_at[plan.email]
        offsets = list(itertools.accumulate(rng.uniform(*days) * DAY_MS for days in SALES_CYCLE_DAYS))
        steps = [("open", 0), ("open", 1)] + ([(plan.outcome, 2)] if plan.outcome != "open" else [])
        fits = rng.uniform(0.5, 0.95) * max(now - form, 3)
        scale = min(1.0, fits / offsets[len(steps) - 1])
        at = [form + int(offset * scale) + step for step, offset in enumerate(offsets)]
        changes.append(
            [
                DealChange(
                    plan.crm, plan.deal_id, plan.email, status, step, plan.amount, "USD", at[0], at[step]
                )
                for status, step in steps
            ]
        )
    return changes


def delivery_order(
    changes: list[list[DealChange]], rng: random.Random
) -> tuple[list[DealChange], int, DealChange | None]:
    """Interleave the deals' changes as CRMs send them: mostly in order, a few retried, one pair swapped.

    Returns the sending order, the number of retries, and the close that was sent before its deal's
    stage change (``None`` when no deal was closed).
    """
    queues = [list(deal) for deal in changes]
    # One deal's close arrives before its stage change (the older event then comes late).
    swapped = None
    for queue in queues:
        if len(queue) == 3:
            queue[1], queue[2] = queue[2], queue[1]
            swapped = queue[1]
            break
    order: list[DealChange] = []
    while queues:
        queue = rng.choice(queues)
        order.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    retries = 0
    for _ in range(min(3, len(order))):  # a few deliveries whose answer the CRM did not see: sent again later
        index = rng.randrange(len(order))
        order.insert(min(len(order), index + rng.randint(1, 6)), order[index])
        retries += 1
    return order, retries, swapped


def send(api: str, delivery: CrmDelivery) -> int:
    status, _ = _post(api + delivery.path, delivery.body, delivery.headers)
    return status


def run_demo(stack: LocalStack, *, visitors: int, days: int, seed: int, logs: TextIO) -> DemoRun:
    """Play the company through ``stack``, run the attribute job; the lake is then ready to query."""
    from closedloop.local.gateway import LambdaContextStub, load_function

    started = time.monotonic()
    run = DemoRun(
        seed=seed,
        days=days,
        visitors=list(simulate_company(visitors=visitors, days=days, now_ms=now_ms(), seed=seed)),
    )
    sequence = [0]
    progress = Progress("visitors", len(run.visitors), "visitors")
    # What the functions print (JSON logs, EMF metrics) goes where Lambda would send it: a log file.
    with contextlib.redirect_stdout(logs):
        for done, visitor in enumerate(run.visitors, start=1):
            if play_visitor(stack.url, visitor, sequence, run):
                run.leads.append(visitor)
            if done % 10 == 0 or done == len(run.visitors):
                progress.update(done)
                # moto keeps every item as Python objects in this process: without this, each full
                # garbage collection walks all of them (the run, and the exit, get slower and slower).
                gc.freeze()
    progress.close()
    run.timings["visitors"] = time.monotonic() - started

    # The CRMs: deals for some leads (the ground truth decides which), signed as each CRM signs.
    started = time.monotonic()
    run.deals = plan_deals(run.leads, seed=seed)
    form_filled_at = {lead.email: lead.form_filled_at for lead in run.leads if lead.email}
    order, run.retries, late_close = delivery_order(
        deal_changes(run.deals, form_filled_at, now_ms(), random.Random(seed * 104_729 + 3)),  # noqa: S311
        random.Random(seed),  # noqa: S311 - a seeded simulation
    )
    if late_close is not None:
        run.out_of_order = 1
        run.out_of_order_deal = {
            "crm": late_close.crm,
            "deal_id": late_close.deal_id,
            "outcome": late_close.status,
            "stage": late_close.stage,
        }
    host = urlsplit(stack.url).netloc
    progress = Progress("CRM", len(order), "deliveries")
    with contextlib.redirect_stdout(logs):
        for done, change in enumerate(order, start=1):
            status = send(stack.url, build_delivery(change, LOCAL_CRM_SECRETS, host))
            run.deliveries[change.crm] += 1
            if status != 200:
                run.refused += 1
                print(
                    json.dumps({"demo": "delivery refused", "crm": change.crm, "status": status}), file=logs
                )
            if done % 5 == 0 or done == len(order):
                progress.update(done)
    progress.close()
    run.timings["crm"] = time.monotonic() - started

    # The ad platforms' cost reports, as a CSV dropped under spend/.
    import boto3

    s3 = boto3.client("s3", region_name=stack.region, endpoint_url=stack.moto_url)
    rows = ad_spend_rows(run.visitors, seed=seed)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["date", "channel", "source", "campaign", "cost", "currency"])
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=stack.bucket_name, Key="spend/ad-platforms.csv", Body=buffer.getvalue().encode())
    run.spend_rows = len(rows)

    # The attribute job, as the schedule would run it (here: a backfill of the simulated weeks).
    started = time.monotonic()
    today = datetime.now(UTC).date()
    with contextlib.redirect_stdout(logs):
        job = load_function("attribute")
        run.job = job.handler(
            {"from": (today - timedelta(days=days + 1)).isoformat(), "to": today.isoformat()},
            LambdaContextStub(function_name="attribute"),
        )
    run.timings["job"] = time.monotonic() - started
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--visitors", type=int, default=DEFAULT_VISITORS, help="visitors to simulate")
    parser.add_argument("--days", type=int, default=28, help="days of traffic before today")
    parser.add_argument("--seed", type=int, default=7, help="the synthetic company's seed")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for report.html and the logs")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from closedloop.local.lakeview import download_lake, duckdb_over_lake
    from closedloop.local.report import build_report, render_html, render_terminal

    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    # The demo replays weeks of history at once: the collect function must accept events that old.
    history = LocalStack(extra_env={"MAX_EVENT_AGE_HOURS": str((args.days + 2) * 24)})
    with (args.out / "function-logs.jsonl").open("w") as logs, history as stack:
        print(f"local stack up on {stack.url} (moto on {stack.moto_url})", file=sys.stderr)
        run = run_demo(stack, visitors=args.visitors, days=args.days, seed=args.seed, logs=logs)
        import boto3

        query_started = time.monotonic()
        lake = args.out / "lake"
        shutil.rmtree(lake, ignore_errors=True)  # the previous run's lake: its partitions would mix in
        download_lake(
            boto3.client("s3", region_name=stack.region, endpoint_url=stack.moto_url), stack.bucket_name, lake
        )
        report = build_report(duckdb_over_lake(lake), run, true_revenue_share(run.leads))
        run.timings["queries"] = time.monotonic() - query_started
    run.timings["total"] = time.monotonic() - started
    report.timings = dict(run.timings)
    print(render_terminal(report))
    (args.out / "report.html").write_text(render_html(report), encoding="utf-8")
    (args.out / "report.json").write_text(
        json.dumps(report.as_dict(), indent=2, default=str), encoding="utf-8"
    )
    print(
        f"\nreport: {args.out / 'report.html'}   data: {args.out / 'report.json'}   "
        f"lake: {args.out / 'lake'}   logs: {args.out / 'function-logs.jsonl'}"
    )
    print(
        f"done in {run.timings['total']:.1f} s (visitors {run.timings['visitors']:.1f} s, CRM "
        f"{run.timings['crm']:.1f} s, job {run.timings['job']:.1f} s, queries {run.timings['queries']:.1f} s)"
    )
    return 1 if run.refused else 0


if __name__ == "__main__":
    sys.exit(main())
