"""What a Closedloop deployment costs a month, per component, for a given traffic (docs/cost.md).

Run ``python -m closedloop.cost --visits-per-month 250000 --leads-per-month 400``. Every line is
``quantity x unit price``; the quantities come from the traffic and from :class:`Usage`, the per-request
resource use of this code base (measured where it could be, else an assumption, said so). Prices are
AWS's public on-demand prices in us-east-1, free tiers ignored: see :data:`PRICES_TAKEN_ON`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, asdict, dataclass, fields, replace

__all__ = [
    "PRICES",
    "PRICES_TAKEN_ON",
    "USAGE",
    "Estimate",
    "Line",
    "Prices",
    "Traffic",
    "Usage",
    "estimate",
    "main",
    "marginal",
]

PRICES_TAKEN_ON = "2026-11-23"
KB, MB, GB, TB = 1024, 1024**2, 1024**3, 1024**4
SECONDS_PER_MONTH = 30 * 86400
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Prices:
    """US East (N. Virginia) on-demand prices in USD (sources in docs/cost.md)."""

    api_per_million: float = 1.00  # HTTP API requests, first 300 million a month
    lambda_per_million: float = 0.20  # Lambda requests
    lambda_arm_per_gb_second: float = 0.0000133334  # Lambda duration, arm64, first 7.5 billion GB-s
    dynamodb_per_million_writes: float = 0.625  # on-demand write request units
    dynamodb_per_million_reads: float = 0.125  # on-demand read request units
    dynamodb_storage_per_gb: float = 0.25  # per GB-month, Standard table class (first 25 GB free: ignored)
    dynamodb_pitr_per_gb: float = 0.20  # continuous backups, per GB-month of table size
    s3_storage_per_gb: float = 0.023  # S3 Standard, first 50 TB, per GB-month
    s3_per_thousand_puts: float = 0.005
    s3_per_thousand_gets: float = 0.0004
    athena_per_tb: float = 5.00  # per TB scanned, at least 10 MB a query
    logs_ingest_per_gb: float = 0.50  # CloudWatch Logs, standard class
    logs_storage_per_gb: float = 0.03  # per GB-month, compressed
    metric_per_month: float = 0.30  # a custom metric (one name + dimension values), first 10,000
    alarm_metric_per_month: float = 0.10  # standard resolution, per metric in the alarm
    dashboard_per_month: float = 3.00
    xray_per_million_traces: float = 5.00  # traces recorded
    secret_per_month: float = 0.40
    kms_key_per_month: float = 1.00
    # Custom events put on a bus, each 64 KB chunk one event (https://aws.amazon.com/eventbridge/pricing/).
    eventbridge_per_million_events: float = 1.00
    # Standard queue requests, each 64 KB chunk one request; the first million a month are free (ignored)
    # (https://aws.amazon.com/sqs/pricing/).
    sqs_per_million_requests: float = 0.40
    # GetRecords calls a Lambda trigger makes on a table's stream are free
    # (https://aws.amazon.com/dynamodb/pricing/on-demand/, "DynamoDB Streams").
    dynamodb_stream_reads_by_lambda: float = 0.0


PRICES = Prices()


@dataclass(frozen=True)
class Traffic:
    """A month of a site's traffic and of its analysts' use. Only the first two are usually changed."""

    visits_per_month: float
    leads_per_month: float
    pages_per_visit: float = 3.0
    submissions_per_lead: float = 1.2  # form posts per new lead (resubmissions, newsletter + demo)
    deals_per_lead: float = 0.3
    events_per_deal: float = 4.0  # CRM webhook deliveries: created, stage changes, won or lost
    crms: int = 1  # CRMs sending webhooks (each adds metric series)
    attribute_runs_per_month: float = 24 * DAYS_PER_MONTH  # the default hourly schedule
    athena_queries_per_month: float = 300
    athena_mb_per_query: float = 50  # Parquet columns actually read; Athena bills at least 10 MB
    months_deployed: float = 13  # storage grows until the retention caps page views and touches
    retention_days: float = 395  # the stack's retentionDays (0 keeps them)
    identified_visit_share: float = 0.02  # visits by someone already a lead: each touch refreshes the CRM


@dataclass(frozen=True)
class Usage:
    """What one request or one run uses. Measured on this code base where noted, else assumed."""

    collect_ms: float = 40  # a beacon: validation, one read, one transaction (incl. ~1% cold starts)
    tracker_ms: float = 5  # GET /t.js, served from memory; cached an hour by the browser
    identify_ms: float = 120
    webhook_ms: float = 250  # HubSpot and Pipedrive deliveries look the deal's contacts up in the CRM
    api_memory_gb: float = 0.25  # 256 MB (infra/constructs/functions.py)
    attribute_seconds_per_run: float = 30  # an incremental run of a small site; grows with its day
    attribute_memory_gb: float = 2.0  # 2048 MB (infra/constructs/attribute_job.py)
    # DynamoDB request units, counted from closedloop.store: transactions cost 2 units an item (<= 1 KB).
    page_view_reads: float = 1  # the visitor's state, strongly consistent
    page_view_writes: float = 4  # the event and the state, in one transaction
    touch_writes: float = 3  # a session start adds the touch (2) and its by-day index entry (1)
    submission_reads: float = 3  # the lead, the visitor's links, recent submissions
    submission_writes: float = 9  # profile, submission, two link items (8) and the profile's index entry
    deal_event_reads: float = 2
    deal_event_writes: float = 7  # the event, the deal state and a lead link (6), the state's index entry
    job_reads_per_touch: float = 0.25  # touches re-read per run (eventually consistent, ~1 KB each)
    # Stored bytes, item overhead included.
    page_view_bytes: float = 600
    touch_bytes: float = 2 * KB  # the item and its copy in the index (projection ALL)
    visitor_state_bytes: float = 400
    new_visitor_share: float = 0.7  # visits by a first-time visitor: one more state item each
    lead_bytes: float = 3 * KB  # profile, submissions and links
    deal_bytes: float = 1 * KB  # a deal event; the state item is rewritten in place
    # Parquet bytes a row (compressed) and what the job rewrites.
    parquet_touch_bytes: float = 150
    parquet_lead_bytes: float = 300
    parquet_deal_bytes: float = 300
    parquet_credit_bytes: float = 60
    touches_per_journey: float = 5
    models: int = 10  # the attribution models, one credit row each per deal x touch
    partitions_per_run: float = 12  # six datasets x today and a late day
    noncurrent_days: float = 30  # the bucket keeps replaced partitions that long
    touch_noncurrent_days: float = 1  # but replaced touch partitions a day (with a retention set)
    # Logs: Lambda's JSON START/END/REPORT lines, our lines and the EMF metric lines; the access log line.
    log_bytes_per_invocation: float = 2 * KB
    access_log_bytes_per_request: float = 300
    log_retention_days: float = 30
    log_compression: float = 0.15  # CloudWatch bills stored logs compressed
    # 21 alarms; the API one reads 2 metrics, the DynamoDB one 4 (tests/infra/test_stack_drift.py counts
    # them in the synthesised template).
    alarm_metrics: int = 25
    metric_series_base: int = 18  # collect 5, identify 3, attribute 3, publish 3, crm_writeback 4
    metric_series_per_crm: int = 6  # accepted, stored, duplicated, offline leads, ~2 rejection reasons
    xray_reservoir_per_second: float = 1  # Lambda's fixed sampling: 1 request a second, then 5 %
    xray_rate: float = 0.05
    # The outward loop (infra/constructs/events.py): assumptions, not measurements.
    publish_memory_gb: float = 0.5  # 512 MB
    publish_ms: float = 60  # a stream batch: its reads, one PutEvents and one SendMessageBatch call
    writeback_memory_gb: float = 0.25
    writeback_ms: float = 300  # a lead: read it and its journey, then read and update it in the CRM
    touch_change_reads: float = 1  # publish: the visitor's links (which lead owns the touch)
    lead_change_reads: float = 4  # publish: the lead, its links, its visitors' touches
    deal_change_reads: float = 4  # publish: a won deal's journey, for its credit (an upper bound)
    writeback_reads: float = 6  # the lead, its links, touches and deals, the digest last written
    writeback_writes: float = 1  # the digest of what was written, when the fields changed
    sqs_pollers: int = 5  # Lambda long-polls an SQS event source with five pollers, idle or not
    sqs_wait_seconds: float = 20  # each long poll waits up to 20 s for a message


USAGE = Usage()


@dataclass(frozen=True)
class Line:
    component: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float


@dataclass(frozen=True)
class Estimate:
    traffic: Traffic
    lines: tuple[Line, ...]

    @property
    def total(self) -> float:
        return sum(line.monthly for line in self.lines)

    def by_component(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in self.lines:
            totals[line.component] = totals.get(line.component, 0.0) + line.monthly
        return totals


def _traces(requests: float, usage: Usage) -> float:
    """X-Ray traces of one function: every request up to one a second, then 5 % (traffic spread evenly)."""
    reservoir = usage.xray_reservoir_per_second * SECONDS_PER_MONTH
    return min(requests, reservoir) + usage.xray_rate * max(0.0, requests - reservoir)


def estimate(traffic: Traffic, *, usage: Usage = USAGE, prices: Prices = PRICES) -> Estimate:
    """Return the monthly cost, one :class:`Line` per billed quantity.

    Parameters
    ----------
    traffic
        Visits, leads and the analysts' queries of one month.
    usage
        Resource use per request; the defaults describe this code base.
    prices
        Unit prices; the defaults are us-east-1's on :data:`PRICES_TAKEN_ON`.

    Returns
    -------
    Estimate
        The lines, their total and the subtotal of each component.
    """
    t, u, p = traffic, usage, prices
    visits, leads = t.visits_per_month, t.leads_per_month
    page_views = visits * t.pages_per_visit
    submissions = leads * t.submissions_per_lead
    deals = leads * t.deals_per_lead
    deal_events = deals * t.events_per_deal
    runs = t.attribute_runs_per_month
    # One beacon a page view (batched events), one t.js a visit, half the forms posted by JavaScript
    # (one CORS preflight each), one webhook a deal event.
    collect_requests = page_views + visits
    identify_requests = submissions * 1.5
    api_requests = collect_requests + identify_requests + deal_events
    # The outward loop. The stream's changes that pass the mapping's filters: a touch a visit; a form
    # post, a lead's first visitor link, a deal's lead link (each refreshes the lead's CRM fields); a
    # deal event. Each relays touch.recorded, lead.identified or deal.stage_changed, plus deal.won once a
    # deal (both upper bounds: not every delivery moves the stage, not every deal is won).
    lead_changes = submissions + leads + deals
    changes = visits + lead_changes + deal_events
    bus_events = visits + submissions + deal_events + deals
    messages = visits * t.identified_visit_share + lead_changes  # "lead changed", to crm_writeback
    # Upper bounds again: one invocation a change and a message (the 1 s and 5 s batching windows group
    # them once they come faster); SQS: the pollers' long polls, then a send, a receive and a delete each.
    publish_invocations, writeback_invocations = changes, messages
    sqs_requests = u.sqs_pollers * SECONDS_PER_MONTH / u.sqs_wait_seconds + 3 * messages
    lines: list[Line] = []

    def add(component: str, item: str, quantity: float, unit: str, unit_price: float) -> None:
        lines.append(Line(component, item, quantity, unit, unit_price, quantity * unit_price))

    add("API Gateway", "HTTP API requests", api_requests / 1e6, "million requests", p.api_per_million)

    invocations = api_requests + runs + publish_invocations + writeback_invocations
    gb_seconds = (
        (page_views * u.collect_ms + visits * u.tracker_ms) / 1000 * u.api_memory_gb
        + identify_requests * u.identify_ms / 1000 * u.api_memory_gb
        + deal_events * u.webhook_ms / 1000 * u.api_memory_gb
        + runs * u.attribute_seconds_per_run * u.attribute_memory_gb
        + publish_invocations * u.publish_ms / 1000 * u.publish_memory_gb
        + writeback_invocations * u.writeback_ms / 1000 * u.writeback_memory_gb
    )
    add("Lambda", "requests", invocations / 1e6, "million requests", p.lambda_per_million)
    add("Lambda", "duration, arm64", gb_seconds, "GB-seconds", p.lambda_arm_per_gb_second)

    writes = (
        page_views * u.page_view_writes
        + visits * u.touch_writes
        + submissions * u.submission_writes
        + deal_events * u.deal_event_writes
        + runs  # the job's watermark
        + messages * u.writeback_writes
    )
    touches_per_day = visits / DAYS_PER_MONTH
    reads = (
        page_views * u.page_view_reads
        + submissions * u.submission_reads
        + deal_events * u.deal_event_reads
        # Each run re-reads the day so far: on average half a day's touches.
        + runs * touches_per_day / 2 * u.job_reads_per_touch
        + visits * u.touch_change_reads
        + lead_changes * u.lead_change_reads
        + deal_events * u.deal_change_reads
        + messages * u.writeback_reads
    )
    retained_months = (
        min(t.months_deployed, t.retention_days / DAYS_PER_MONTH) if t.retention_days else t.months_deployed
    )
    table_bytes = (
        page_views * retained_months * u.page_view_bytes
        + visits * retained_months * u.touch_bytes
        + visits * u.new_visitor_share * t.months_deployed * u.visitor_state_bytes
        + leads * t.months_deployed * u.lead_bytes
        + deal_events * t.months_deployed * u.deal_bytes
    )
    add("DynamoDB", "write request units", writes / 1e6, "million WRU", p.dynamodb_per_million_writes)
    add("DynamoDB", "read request units", reads / 1e6, "million RRU", p.dynamodb_per_million_reads)
    add("DynamoDB", "storage", table_bytes / GB, "GB-month", p.dynamodb_storage_per_gb)
    add("DynamoDB", "point-in-time recovery", table_bytes / GB, "GB-month", p.dynamodb_pitr_per_gb)
    add(
        "DynamoDB",
        "stream reads by Lambda",
        changes / 1e6,
        "million records",
        p.dynamodb_stream_reads_by_lambda,
    )

    parquet_touches_per_month = visits * u.parquet_touch_bytes
    parquet_per_month = (
        parquet_touches_per_month
        + leads * u.parquet_lead_bytes
        + deals * u.parquet_deal_bytes
        + deals * u.touches_per_journey * u.models * u.parquet_credit_bytes
    )
    runs_per_day = runs / DAYS_PER_MONTH
    # Every run replaces today's partitions; the replaced versions (half a day's data on average) stay
    # for noncurrent_days (touches: touch_noncurrent_days). Athena's results expire after 30 days (about
    # 1 MB a query kept).
    touch_noncurrent_days = u.touch_noncurrent_days if t.retention_days else u.noncurrent_days
    noncurrent = (
        runs_per_day
        * 0.5
        / DAYS_PER_MONTH
        * (
            u.noncurrent_days * (parquet_per_month - parquet_touches_per_month)
            + touch_noncurrent_days * parquet_touches_per_month
        )
    )
    # Touch partitions expire with the retention (an S3 lifecycle rule); the other datasets stay.
    bucket_bytes = (
        t.months_deployed * (parquet_per_month - parquet_touches_per_month)
        + retained_months * parquet_touches_per_month
        + noncurrent
        + t.athena_queries_per_month * MB
    )
    objects = runs * u.partitions_per_run
    add("S3", "storage", bucket_bytes / GB, "GB-month", p.s3_storage_per_gb)
    add("S3", "PUT requests", objects / 1000, "thousand requests", p.s3_per_thousand_puts)
    add("S3", "GET requests", objects / 1000, "thousand requests", p.s3_per_thousand_gets)

    scanned = t.athena_queries_per_month * max(10.0, t.athena_mb_per_query) * MB
    add("Athena", "data scanned", scanned / TB, "TB", p.athena_per_tb)

    logs = invocations * u.log_bytes_per_invocation + api_requests * u.access_log_bytes_per_request
    stored_logs = logs * u.log_retention_days / DAYS_PER_MONTH * u.log_compression
    series = u.metric_series_base + u.metric_series_per_crm * t.crms
    add("CloudWatch", "log ingestion", logs / GB, "GB", p.logs_ingest_per_gb)
    add("CloudWatch", "log storage", stored_logs / GB, "GB-month", p.logs_storage_per_gb)
    add("CloudWatch", "custom metrics", series, "metrics", p.metric_per_month)
    add("CloudWatch", "alarms", u.alarm_metrics, "alarm metrics", p.alarm_metric_per_month)
    add("CloudWatch", "dashboard", 1, "dashboard", p.dashboard_per_month)

    traces = (
        _traces(collect_requests, u)
        + _traces(identify_requests, u)
        + _traces(deal_events, u)
        + runs
        + _traces(publish_invocations, u)
        + _traces(writeback_invocations, u)
    )
    add("X-Ray", "traces recorded", traces / 1e6, "million traces", p.xray_per_million_traces)

    add("EventBridge", "custom events", bus_events / 1e6, "million events", p.eventbridge_per_million_events)
    add("SQS", "requests", sqs_requests / 1e6, "million requests", p.sqs_per_million_requests)

    add("Other", "Secrets Manager secret", 1, "secret", p.secret_per_month)
    add("Other", "KMS key (alarm topic)", 1, "key", p.kms_key_per_month)
    return Estimate(traffic, tuple(lines))


def marginal(traffic: Traffic, **overrides: float) -> float:
    """What ``overrides`` (e.g. ``visits_per_month=1e6`` more) add to the month of ``traffic``."""
    more = replace(traffic, **{key: getattr(traffic, key) + value for key, value in overrides.items()})
    return estimate(more).total - estimate(traffic).total


def _report(result: Estimate) -> str:
    t = result.traffic
    rows = [
        f"Closedloop, monthly cost in USD for {t.visits_per_month:,.0f} visits and "
        f"{t.leads_per_month:,.0f} leads a month (us-east-1 prices of {PRICES_TAKEN_ON}, free tiers ignored)",
        "",
        f"{'component':<12} {'item':<24} {'quantity':>14} {'unit':<18} {'unit price':>12} {'monthly':>10}",
    ]
    for line in result.lines:
        rows.append(
            f"{line.component:<12} {line.item:<24} {line.quantity:>14,.4f} {line.unit:<18} "
            f"{line.unit_price:>12,.7g} {line.monthly:>10,.2f}"
        )
    rows.append("")
    for component, subtotal in result.by_component().items():
        rows.append(f"{component:<12} {subtotal:>10,.2f}")
    rows.append(f"{'total':<12} {result.total:>10,.2f}")
    rows.append("")
    rows.append(
        f"One million more visits add {marginal(t, visits_per_month=1e6):,.2f}; "
        f"a thousand more leads add {marginal(t, leads_per_month=1e3):,.2f}."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m closedloop.cost --visits-per-month N --leads-per-month M [...]``."""
    parser = argparse.ArgumentParser(prog="python -m closedloop.cost", description=__doc__.splitlines()[0])
    for field in fields(Traffic):
        required = field.default is MISSING
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=int if field.type == "int" else float,
            required=required,
            default=None if required else field.default,
            metavar="N",
            help=None if required else f"default {field.default:g}",
        )
    parser.add_argument("--json", action="store_true", help="print the lines as JSON")
    arguments = vars(parser.parse_args(argv))
    as_json = arguments.pop("json")
    result = estimate(Traffic(**arguments))
    if as_json:
        payload = {
            "prices_taken_on": PRICES_TAKEN_ON,
            "traffic": asdict(result.traffic),
            "lines": [asdict(line) for line in result.lines],
            "by_component": result.by_component(),
            "total": result.total,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
