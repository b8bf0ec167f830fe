"""The whole loop under moto: visits, forms and CRM webhooks through the real handlers, the attribute
job, and the named queries' SQL run with DuckDB on the Parquet it wrote."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import duckdb
import pytest

from closedloop.analytics.queries import named_queries
from closedloop.crm import sign_generic
from closedloop.local.gateway import load_function
from closedloop.local.lakeview import download_lake
from closedloop.local.lakeview import duckdb_over_lake as lakeview_connection
from tests.conftest import SITE_ORIGIN
from tests.support import api_event, invoke

BUCKET = "closedloop-analytics-test"
SIGNING_SECRET = "generic-signing-secret-0123456789"
HOUR = 3_600_000
DAY = 24 * HOUR
NOW = int(time.time() * 1000)


@pytest.fixture
def loop(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="closedloop-webhooks", SecretString=json.dumps({"generic": {"signing_secret": SIGNING_SECRET}})
    )
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    # These tests replay weeks of history in one run, as the demo does: events that old are accepted.
    monkeypatch.setenv("MAX_EVENT_AGE_HOURS", str(400 * 24))
    return {name: load_function(name) for name in ("collect", "identify", "crm_webhook", "attribute")}


def visit(
    loop: dict[str, ModuleType],
    visitor: str,
    event_id: str,
    url: str,
    *,
    at: int,
    referrer: str = "",
    sent_at: int = NOW,
) -> None:
    """A page view at ``at`` by the browser's clock, sent at ``sent_at`` (the server corrects the skew)."""
    body = {
        "event_id": event_id,
        "visitor_id": visitor,
        "url": url,
        "referrer": referrer,
        "ts": at,
        "sent_at": sent_at,
    }
    assert invoke(loop["collect"], api_event("POST", "/collect", body=body))[0] == 200


def identify(loop: dict[str, ModuleType], visitor: str, email: str) -> None:
    status, _, reply = invoke(
        loop["identify"], api_event("POST", "/identify", body={"email": email, "visitor_id": visitor})
    )
    assert status == 200, reply


def deal_event(
    loop: dict[str, ModuleType], event_id: str, deal_id: str, email: str, status: str, amount: str, *, at: int
) -> None:
    body = json.dumps(
        {
            "event_id": event_id,
            "deal_id": deal_id,
            "contact_email": email,
            "stage": status,
            "status": status,
            "amount": amount,
            "currency": "USD",
            "occurred_at": datetime.fromtimestamp(at / 1000, tz=UTC).isoformat(),
        }
    ).encode()
    signature = sign_generic(SIGNING_SECRET, body, int(time.time()))
    reply = invoke(
        loop["crm_webhook"],
        api_event(
            "POST",
            "/webhooks/generic",
            body=body,
            content_type="application/json",
            headers={"x-closedloop-signature": signature},
        ),
    )
    assert reply[0] == 200, reply


RECENT = {
    "from": datetime.fromtimestamp((NOW - 7 * DAY) / 1000, tz=UTC).date().isoformat(),
    "to": datetime.fromtimestamp(NOW / 1000, tz=UTC).date().isoformat(),
}


def run_job(loop: dict[str, ModuleType], event: dict[str, Any] | None = None) -> dict[str, Any]:
    from closedloop.local.gateway import LambdaContextStub

    return loop["attribute"].handler(
        event or {"mode": "incremental"}, LambdaContextStub(function_name="attribute")
    )


def lake_snapshot() -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in sorted(keys)}


def duckdb_over_lake(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The Athena tables, as DuckDB views over the same Parquet (downloaded: no httpfs offline)."""
    download_lake(boto3.client("s3", region_name="us-east-1"), BUCKET, tmp_path)
    return lakeview_connection(tmp_path)


@pytest.fixture
def closed_loop(loop: dict[str, ModuleType]) -> dict[str, ModuleType]:
    """Two leads from different channels; one deal won (12,000), one open (5,000); one lead without deal."""
    visit(
        loop,
        "AdaVisitorAAAAAAAAAAAA",
        "evt-ada-0001",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
        at=NOW - 5 * DAY,
    )
    visit(
        loop,
        "AdaVisitorAAAAAAAAAAAA",
        "evt-ada-0002",
        f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email",
        at=NOW - 3 * DAY,
    )
    identify(loop, "AdaVisitorAAAAAAAAAAAA", "ada@example.com")
    visit(
        loop,
        "BobVisitorBBBBBBBBBBBB",
        "evt-bob-0001",
        f"{SITE_ORIGIN}/blog",
        at=NOW - 4 * DAY,
        referrer="https://www.linkedin.com/",
    )
    identify(loop, "BobVisitorBBBBBBBBBBBB", "bob@example.com")
    visit(loop, "CyVisitorCCCCCCCCCCCCC", "evt-cy-00001", f"{SITE_ORIGIN}/", at=NOW - 2 * DAY)
    identify(loop, "CyVisitorCCCCCCCCCCCCC", "cy@example.com")
    deal_event(loop, "deal-a-1", "A-1", "ada@example.com", "open", "12000", at=NOW - HOUR * 3)
    deal_event(loop, "deal-a-2", "A-1", "ada@example.com", "won", "12000", at=NOW - HOUR * 2)
    deal_event(loop, "deal-b-1", "B-1", "bob@example.com", "open", "5000", at=NOW - HOUR)
    return loop


def test_every_model_credits_exactly_the_revenue_won_and_the_open_pipeline(closed_loop, tmp_path):
    report = run_job(closed_loop, {"mode": "full"})
    assert report["deals"] == 2

    sql = duckdb_over_lake(tmp_path)
    per_model = sql.execute(
        "SELECT model, SUM(revenue_credit), SUM(pipeline_credit), SUM(credit) "
        "FROM closedloop.attribution_credits GROUP BY model ORDER BY model"
    ).fetchall()
    assert len(per_model) == 12
    for model, revenue, pipeline, credit in per_model:
        assert revenue == pytest.approx(12_000), model
        assert pipeline == pytest.approx(5_000), model
        assert credit == pytest.approx(2.0), model  # two deals, each credited in full

    first_touch = dict(
        sql.execute(
            "SELECT channel, SUM(revenue_credit) FROM closedloop.attribution_credits "
            "WHERE model = 'first_touch' GROUP BY channel HAVING SUM(revenue_credit) > 0"
        ).fetchall()
    )
    last_touch = dict(
        sql.execute(
            "SELECT channel, SUM(revenue_credit) FROM closedloop.attribution_credits "
            "WHERE model = 'last_touch' GROUP BY channel HAVING SUM(revenue_credit) > 0"
        ).fetchall()
    )
    assert first_touch == {"Paid Search": pytest.approx(12_000)}
    assert last_touch == {"Email": pytest.approx(12_000)}


def test_the_named_queries_run_on_the_lake(closed_loop, tmp_path):
    run_job(closed_loop, RECENT)
    sql = duckdb_over_lake(tmp_path)
    results = {q.name: sql.execute(q.sql).fetchall() for q in named_queries()}

    revenue = {row[0]: row for row in results["revenue_by_channel_by_model"]}
    assert revenue["Paid Search"][1] == pytest.approx(12_000)  # first_touch column
    assert sum(row[2] for row in results["revenue_by_channel_by_model"]) == pytest.approx(12_000)
    funnel = {row[0]: row for row in results["funnel_by_channel"]}
    assert sum(row[1] for row in funnel.values()) == 4  # four touches
    assert sum(row[2] for row in funnel.values()) == pytest.approx(3)  # three leads
    assert sum(row[3] for row in funnel.values()) == pytest.approx(2)  # two opportunities
    assert sum(row[4] for row in funnel.values()) == pytest.approx(1)  # one customer
    pipeline = results["pipeline_by_stage_and_source"]
    assert sum(row[4] for row in pipeline) == pytest.approx(5_000)


def test_a_rerun_changes_nothing(closed_loop):
    run_job(closed_loop, RECENT)
    first = lake_snapshot()
    run_job(closed_loop, RECENT)
    assert lake_snapshot() == first


def test_a_deal_won_moves_from_pipeline_to_revenue(closed_loop, tmp_path):
    run_job(closed_loop)
    deal_event(closed_loop, "deal-b-2", "B-1", "bob@example.com", "won", "5000", at=NOW - 60_000)

    run_job(closed_loop)

    sql = duckdb_over_lake(tmp_path)
    revenue, pipeline = sql.execute(
        "SELECT SUM(revenue_credit), SUM(pipeline_credit) FROM closedloop.attribution_credits "
        "WHERE model = 'linear'"
    ).fetchone()
    assert (revenue, pipeline) == (pytest.approx(17_000), pytest.approx(0))
    latest = sql.execute(
        "SELECT COUNT(*) FROM closedloop.pipeline WHERE dt = (SELECT MAX(dt) FROM closedloop.pipeline)"
    ).fetchone()
    assert latest == (0,)


def test_revenue_no_web_touch_explains_is_counted_not_dropped(loop, tmp_path):
    deal_event(loop, "deal-x-1", "X-1", "never.visited@example.com", "won", "900", at=NOW - HOUR)
    run_job(loop, RECENT)
    rows = (
        duckdb_over_lake(tmp_path)
        .execute(
            "SELECT channel, SUM(revenue_credit) FROM closedloop.attribution_credits WHERE model = 'markov' "
            "GROUP BY channel"
        )
        .fetchall()
    )
    assert rows == [("(no web touch)", pytest.approx(900))]


def test_a_late_touch_changes_only_the_affected_partitions(closed_loop):
    run_job(closed_loop, RECENT)
    before = lake_snapshot()
    # A touch of Bob's arrives late (a retried beacon), dated three days ago
    visit(
        closed_loop,
        "BobVisitorBBBBBBBBBBBB",
        "evt-bob-late",
        f"{SITE_ORIGIN}/?utm_source=bing&utm_medium=cpc",
        at=NOW - 4 * DAY + HOUR,
    )

    run_job(closed_loop)

    after = lake_snapshot()
    changed = {key.split("/")[0] for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert "touches" in changed
    assert "attribution_credits" in changed  # Bob's deal now has two touches
    assert "leads" not in changed  # Bob's lead profile itself did not change


def test_a_merged_device_changes_only_the_partitions_it_affects(closed_loop):
    run_job(closed_loop, RECENT)
    before = lake_snapshot()
    # Ada's phone, seen six days ago from a LinkedIn ad, now fills a form with her email
    phone_day = datetime.fromtimestamp((NOW - 6 * DAY) / 1000, tz=UTC).date().isoformat()
    visit(
        closed_loop,
        "AdaPhoneDDDDDDDDDDDDDD",
        "evt-ada-phone",
        f"{SITE_ORIGIN}/?utm_source=linkedin&utm_medium=paid_social",
        at=NOW - 6 * DAY,
    )
    identify(closed_loop, "AdaPhoneDDDDDDDDDDDDDD", "ada@example.com")

    run_job(closed_loop)

    after = lake_snapshot()
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    untouched_days = {
        datetime.fromtimestamp((NOW - n * DAY) / 1000, tz=UTC).date().isoformat() for n in (5, 4, 3, 2)
    }
    assert f"touches/dt={phone_day}/part-0.parquet" in changed
    assert not any(
        key.startswith("touches/") and key.split("dt=")[1][:10] in untouched_days for key in changed
    )
    # Ada's won deal is credited again: its first touch is now the LinkedIn ad
    sql = duckdb_over_lake_from(after)
    first = sql.execute(
        "SELECT channel FROM closedloop.attribution_credits WHERE model = 'first_touch' "
        "AND deal_id = 'A-1' AND credit > 0"
    ).fetchall()
    assert first == [("Paid Social",)]


def duckdb_over_lake_from(objects: dict[str, bytes]) -> duckdb.DuckDBPyConnection:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    for key, body in objects.items():
        if key.endswith(".parquet"):
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(body)
    return lakeview_connection(folder)


class Clock:
    """``closedloop.clock``'s time source, set by the test: the job's watermark days follow it."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def time_ns(self) -> int:
        return self.ms * 1_000_000


def data_driven_credits(tmp_path: Path, deal_id: str) -> dict[tuple[str, str], float]:
    rows = (
        duckdb_over_lake(tmp_path)
        .execute(
            "SELECT model, channel, SUM(credit) FROM closedloop.attribution_credits "
            "WHERE deal_id = ? AND model IN ('markov', 'shapley') GROUP BY model, channel",
            [deal_id],
        )
        .fetchall()
    )
    return {(model, channel): round(credit, 9) for model, channel, credit in rows}


def test_an_hourly_run_credits_a_deal_as_a_full_rebuild_would(loop, monkeypatch, tmp_path):
    """The data-driven models learn from every journey of the period, not only from the run's deals."""
    clock = Clock(NOW - 5 * DAY)
    monkeypatch.setattr("closedloop.clock.time", clock)
    # Five days ago: Ada (paid search, then email) and Bob (paid search, then direct) became customers
    for name, second in (("Ada", "utm_source=newsletter&utm_medium=email"), ("Bob", "")):
        visitor = f"{name}Visitor".ljust(22, name[0].upper())
        visit(
            loop,
            visitor,
            f"evt-{name}-1",
            f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
            at=clock.ms - DAY,
        )
        visit(loop, visitor, f"evt-{name}-2", f"{SITE_ORIGIN}/pricing?{second}", at=clock.ms - HOUR)
        identify(loop, visitor, f"{name.lower()}@example.com")
        deal_event(
            loop, f"deal-{name}", f"{name}-1", f"{name.lower()}@example.com", "won", "1000", at=clock.ms
        )
    # Cy came from a partner's site, then directly, and has no deal yet
    visit(
        loop,
        "CyVisitorCCCCCCCCCCCCC",
        "evt-cy-1",
        f"{SITE_ORIGIN}/",
        at=clock.ms - DAY,
        referrer="https://partner.example/",
    )
    visit(loop, "CyVisitorCCCCCCCCCCCCC", "evt-cy-2", f"{SITE_ORIGIN}/pricing", at=clock.ms - HOUR)
    identify(loop, "CyVisitorCCCCCCCCCCCCC", "cy@example.com")
    run_job(loop)
    clock.ms = NOW - 3 * DAY
    run_job(loop)  # the hourly schedule, caught up

    # Today Cy's deal opens; the hourly run sees only that change
    clock.ms = NOW
    deal_event(loop, "deal-cy", "Cy-1", "cy@example.com", "open", "1000", at=NOW - 60_000)
    assert run_job(loop)["deals"] == 1
    hourly = data_driven_credits(tmp_path / "hourly", "Cy-1")

    run_job(loop, {"mode": "full"})

    assert hourly == data_driven_credits(tmp_path / "rebuilt", "Cy-1")
    assert hourly[("markov", "Direct")] != hourly[("markov", "Referral")]  # learnt, not split evenly


def test_a_backfill_of_old_days_does_not_make_the_schedule_skip_newer_changes(loop, monkeypatch):
    clock = Clock(NOW - 3 * DAY)
    monkeypatch.setattr("closedloop.clock.time", clock)
    visit(
        loop,
        "AdaVisitorAAAAAAAAAAAA",
        "evt-ada-1",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        at=clock.ms,
    )
    identify(loop, "AdaVisitorAAAAAAAAAAAA", "ada@example.com")
    run_job(loop)
    clock.ms = NOW - 2 * DAY
    deal_event(loop, "deal-ada", "Ada-1", "ada@example.com", "won", "1000", at=clock.ms)

    # An analyst backfills last month before the next scheduled run
    clock.ms = NOW
    old = datetime.fromtimestamp((NOW - 30 * DAY) / 1000, tz=UTC).date().isoformat()
    run_job(loop, {"from": old, "to": old})

    assert run_job(loop)["deals"] == 1


def test_a_deal_whose_crm_reveals_an_earlier_creation_day_is_moved_not_duplicated(loop, tmp_path):
    visit(
        loop,
        "ZedVisitorZZZZZZZZZZZZ",
        "evt-zed-1",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        at=NOW - 6 * DAY,
    )
    identify(loop, "ZedVisitorZZZZZZZZZZZZ", "zed@example.com")
    deal_event(loop, "zed-1", "Z-1", "zed@example.com", "open", "1000", at=NOW - 2 * DAY)
    run_job(loop, RECENT)

    # A later delivery carries the CRM's own creation date, three days before we first saw the deal
    body = json.dumps(
        {
            "event_id": "zed-2",
            "deal_id": "Z-1",
            "contact_email": "zed@example.com",
            "stage": "open",
            "status": "open",
            "amount": "1000",
            "currency": "USD",
            "occurred_at": datetime.fromtimestamp((NOW - HOUR) / 1000, tz=UTC).isoformat(),
            "created_at": datetime.fromtimestamp((NOW - 5 * DAY) / 1000, tz=UTC).isoformat(),
        }
    ).encode()
    headers = {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))}
    request = api_event(
        "POST", "/webhooks/generic", body=body, content_type="application/json", headers=headers
    )
    assert invoke(loop["crm_webhook"], request)[0] == 200
    run_job(loop)

    sql = duckdb_over_lake(tmp_path)
    assert sql.execute("SELECT COUNT(*) FROM closedloop.deals WHERE deal_id = 'Z-1'").fetchone() == (1,)
    pipeline = sql.execute(
        "SELECT SUM(pipeline_credit) FROM closedloop.attribution_credits WHERE model = 'linear'"
    ).fetchone()
    assert pipeline == (pytest.approx(1000),)


def put_spend(name: str, lines: list[str]) -> None:
    body = "date,channel,source,campaign,cost,currency\n" + "\n".join(lines) + "\n"
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=BUCKET, Key=f"spend/{name}", Body=body.encode()
    )


def test_ad_spend_gives_roas_and_acquisition_cost_and_a_bad_line_is_skipped(closed_loop, tmp_path):
    today = RECENT["to"]
    put_spend(
        "google.csv",
        [
            f"{today},Paid Search,google,brand,1000,USD",
            ",Paid Search,google,brand,5,USD",
            f"{today},Email,x,,abc,USD",
        ],
    )

    report = run_job(closed_loop, RECENT)

    assert report["spend_lines_skipped"] == 2
    row = (
        duckdb_over_lake(tmp_path)
        .execute(
            "SELECT cost, revenue_credited, roas, customer_acquisition_cost FROM closedloop.channel_daily "
            "WHERE model = 'first_touch' AND channel = 'Paid Search' AND campaign = 'brand' AND dt = ?",
            [today],
        )
        .fetchone()
    )
    # Ada's won deal (12,000) first came from the brand campaign
    assert row == (pytest.approx(1000), pytest.approx(12_000), pytest.approx(12.0), pytest.approx(1000))


def test_spend_dropped_for_an_old_day_is_applied_by_the_next_hourly_run_and_removed_with_its_file(
    loop, tmp_path
):
    run_job(loop)
    old = datetime.fromtimestamp((NOW - 40 * DAY) / 1000, tz=UTC).date().isoformat()
    put_spend("october.csv", [f"{old},Paid Social,linkedin,launch,250,USD"])

    run_job(loop)

    costs = duckdb_over_lake(tmp_path / "1").execute(
        "SELECT SUM(cost) FROM closedloop.channel_daily WHERE dt = ? AND model = 'linear'", [old]
    )
    assert costs.fetchone() == (pytest.approx(250),)
    boto3.client("s3", region_name="us-east-1").delete_object(Bucket=BUCKET, Key="spend/october.csv")
    run_job(loop)
    assert f"channel_daily/dt={old}/part-0.parquet" not in lake_snapshot()


def test_a_sales_cycle_longer_than_the_lookback_keeps_the_touch_that_made_the_lead(
    loop, monkeypatch, tmp_path
):
    clock = Clock(NOW - 120 * DAY)
    monkeypatch.setattr("closedloop.clock.time", clock)
    visit(
        loop,
        "EveVisitorEEEEEEEEEEEE",
        "evt-eve-1",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        at=clock.ms,
        sent_at=clock.ms,
    )
    identify(loop, "EveVisitorEEEEEEEEEEEE", "eve@example.com")

    # Four months later (past the 90-day lookback from the win) the deal is won
    clock.ms = NOW
    deal_event(loop, "deal-eve", "Eve-1", "eve@example.com", "won", "1000", at=NOW - 60_000)
    run_job(loop, {"mode": "full"})

    credited = duckdb_over_lake(tmp_path).execute(
        "SELECT channel FROM closedloop.attribution_credits WHERE deal_id = 'Eve-1' AND model = 'first_touch'"
    )
    assert credited.fetchall() == [("Paid Search",)]


def test_the_funnel_counts_whole_leads_by_their_source_so_every_rate_is_a_share(closed_loop, tmp_path):
    # Given, besides Ada (email lead, won), Bob (social lead, open deal) and Cy (direct lead, no deal):
    # Dan, found twice by paid search, comes back directly to fill the form and wins a deal (most of
    # its credit goes to paid search); Eve fills the form from paid search and buys nothing; Fay never
    # visited and wins a deal (an offline lead).
    for event_id, at in (("evt-dan-0001", NOW - 6 * DAY), ("evt-dan-0002", NOW - 5 * DAY)):
        visit(closed_loop, "DanVisitorDDDDDDDDDDDD", event_id, f"{SITE_ORIGIN}/?gclid=dan", at=at)
    visit(closed_loop, "DanVisitorDDDDDDDDDDDD", "evt-dan-0003", f"{SITE_ORIGIN}/", at=NOW - DAY)
    identify(closed_loop, "DanVisitorDDDDDDDDDDDD", "dan@example.com")
    visit(
        closed_loop, "EveVisitorEEEEEEEEEEEE", "evt-eve-0001", f"{SITE_ORIGIN}/?gclid=eve", at=NOW - 2 * DAY
    )
    identify(closed_loop, "EveVisitorEEEEEEEEEEEE", "eve@example.com")
    deal_event(closed_loop, "deal-d-1", "D-1", "dan@example.com", "won", "3000", at=NOW - HOUR)
    deal_event(closed_loop, "deal-f-1", "F-1", "fay@example.com", "won", "800", at=NOW - HOUR)

    # When the job has run and the named query runs on its lake
    run_job(closed_loop, {"mode": "full"})
    query = next(q for q in named_queries() if q.name == "funnel_by_channel")
    cursor = duckdb_over_lake(tmp_path).execute(query.sql)
    names = [d[0] for d in cursor.description]
    funnel = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}

    # Then every conversion rate is a share of the step before
    rates = ("visit_to_lead", "lead_to_opportunity", "opportunity_to_customer")
    for channel, row in funnel.items():
        for rate in rates:
            assert row[rate] is None or 0 <= row[rate] <= 1, (channel, rate, row[rate])
    # and each lead counts once, under the channel that made it, and is followed to its deals
    steps = ("visits", "leads", "opportunities", "customers")
    assert {channel: tuple(row[s] for s in steps) for channel, row in funnel.items()} == {
        "Paid Search": (4, 1, 0, 0),  # Ada's first visit, Dan's two, Eve's; only Eve's lead is from it
        "Direct": (2, 2, 1, 1),  # Cy, and Dan who came back directly
        "Email": (1, 1, 1, 1),
        "Organic Social": (1, 1, 1, 0),
        "(no web touch)": (0, 1, 1, 1),
    }
    assert funnel["Direct"]["lead_to_opportunity"] == pytest.approx(0.5)
    assert funnel["(no web touch)"]["visit_to_lead"] is None  # no visits to convert
