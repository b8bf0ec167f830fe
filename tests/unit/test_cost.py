"""The cost model against a month computed by hand, its CLI, and docs/cost.md kept in step with it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from closedloop.cost import PRICES_TAKEN_ON, Estimate, Line, Traffic, estimate, main, marginal

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cost.md"

# 1M visits of 2 pages (2% by someone already a lead), 1,000 leads posting once, half of them a deal with
# 2 webhook deliveries; no attribute runs; 100 Athena queries of 5 MB (billed 10 MB); the first month.
HAND = Traffic(
    visits_per_month=1_000_000,
    leads_per_month=1_000,
    pages_per_visit=2,
    submissions_per_lead=1,
    deals_per_lead=0.5,
    events_per_deal=2,
    crms=1,
    attribute_runs_per_month=0,
    athena_queries_per_month=100,
    athena_mb_per_query=5,
    months_deployed=1,
    identified_visit_share=0.02,
)
GIB = 1024**3


def test_a_month_computed_by_hand() -> None:
    # Given the traffic above; page views 2,000,000; submissions 1,000; deal events 1,000
    # The outward loop: stream changes = 1,000,000 touches + 1,000 submissions + 1,000 first links
    #   + 500 deal links + 1,000 deal events = 1,003,500, one publish invocation each (upper bound);
    # write-back messages = 2% of 1,000,000 touches + 2,500 lead changes = 22,500, one worker invocation each
    lines = {(line.component, line.item): line for line in estimate(HAND).lines}

    def cost(component: str, item: str) -> float:
        return lines[component, item].monthly

    # API: 2,000,000 beacons + 1,000,000 t.js + 1,000 x 1.5 identify (half preflighted) + 1,000 webhooks
    #      = 3,002,500 requests x $1.00 / million
    assert cost("API Gateway", "HTTP API requests") == pytest.approx(3.0025)
    # Lambda: 3,002,500 API invocations + 1,003,500 publish + 22,500 crm_writeback = 4,028,500 x $0.20 / M
    assert cost("Lambda", "requests") == pytest.approx(4.0285 * 0.20)
    # (2,000,000 x 40 ms + 1,000,000 x 5 ms + 1,500 x 120 ms + 1,000 x 250 ms) x 0.25 GB = 21,357.5 GB-s
    # + publish 1,003,500 x 60 ms x 0.5 GB = 30,105 + crm_writeback 22,500 x 300 ms x 0.25 GB = 1,687.5
    assert cost("Lambda", "duration, arm64") == pytest.approx(53_150 * 0.0000133334)
    # DynamoDB writes: 2,000,000 x 4 + 1,000,000 touches x 3 + 1,000 x 9 + 1,000 x 7
    #                  + 22,500 write-back digests = 11,038,500 WRU
    assert cost("DynamoDB", "write request units") == pytest.approx(11.0385 * 0.625)
    # reads: 2,000,000 x 1 + 1,000 x 3 + 1,000 x 2, + publish 1,000,000 touches x 1 + 2,500 lead changes x 4
    #        + 1,000 deal events x 4, + crm_writeback 22,500 x 6 = 3,154,000 RRU
    assert cost("DynamoDB", "read request units") == pytest.approx(3.154 * 0.125)
    # The stream's records reach publish through a Lambda trigger: free
    assert lines["DynamoDB", "stream reads by Lambda"].quantity == pytest.approx(1.0035)
    assert cost("DynamoDB", "stream reads by Lambda") == 0
    # storage: 2,000,000 x 600 B + 1,000,000 x 2,048 B + 700,000 new visitors x 400 B
    #          + 1,000 leads x 3,072 B + 1,000 deal events x 1,024 B = 3,532,096,000 B
    table_gib = 3_532_096_000 / GIB
    assert cost("DynamoDB", "storage") == pytest.approx(table_gib * 0.25)
    assert cost("DynamoDB", "point-in-time recovery") == pytest.approx(table_gib * 0.20)
    # S3: Parquet 1,000,000 x 150 + 1,000 x 300 + 500 x 300 + 500 deals x 5 touches x 10 models x 60
    #     = 151,950,000 B, plus 100 Athena results of 1 MiB; no run, so no request and no old version
    assert cost("S3", "storage") == pytest.approx((151_950_000 + 100 * 1024**2) / GIB * 0.023)
    assert cost("S3", "PUT requests") == 0
    # Athena: 100 queries x 10 MiB (the minimum) = 1,000 MiB = 1,000 / 1,048,576 TiB x $5
    assert cost("Athena", "data scanned") == pytest.approx(1_000 / 1_048_576 * 5)
    # CloudWatch: 4,028,500 invocations x 2,048 B + 3,002,500 access log lines x 300 B
    logs_gib = (4_028_500 * 2048 + 3_002_500 * 300) / GIB
    assert cost("CloudWatch", "log ingestion") == pytest.approx(logs_gib * 0.50)
    assert cost("CloudWatch", "log storage") == pytest.approx(logs_gib * 0.15 * 0.03)
    assert cost("CloudWatch", "custom metrics") == pytest.approx((18 + 6) * 0.30)
    assert cost("CloudWatch", "alarms") == pytest.approx(25 * 0.10)
    assert cost("CloudWatch", "dashboard") == 3.00
    # X-Ray: collect's 3,000,000 requests -> 2,592,000 (one a second) + 5 % of 408,000 = 2,612,400;
    #        identify 1,500, webhooks 1,000, publish 1,003,500, crm_writeback 22,500 all traced (under one
    #        a second each): 3,640,900 traces x $5 / million
    assert cost("X-Ray", "traces recorded") == pytest.approx(3.6409 * 5)
    # EventBridge: 1,000,000 touch.recorded + 1,000 lead.identified + 1,000 deal.stage_changed
    #              + 500 deal.won = 1,002,500 events x $1.00 / million
    assert cost("EventBridge", "custom events") == pytest.approx(1.0025)
    # SQS: 5 pollers x 2,592,000 s / 20 s = 648,000 long polls + 22,500 messages x 3 (send, receive,
    #      delete) = 715,500 requests x $0.40 / million
    assert cost("SQS", "requests") == pytest.approx(0.7155 * 0.40)
    assert cost("Other", "Secrets Manager secret") + cost("Other", "KMS key (alarm topic)") == 1.40


def test_the_total_is_the_sum_of_its_lines_and_of_its_components() -> None:
    result = estimate(HAND)
    assert result.total == pytest.approx(sum(line.monthly for line in result.lines))
    assert result.total == pytest.approx(sum(result.by_component().values()))
    assert all(line.monthly == pytest.approx(line.quantity * line.unit_price) for line in result.lines)


def test_no_traffic_costs_only_the_fixed_monthly_items() -> None:
    idle = estimate(Traffic(visits_per_month=0, leads_per_month=0, athena_queries_per_month=0))
    fixed = {(line.component, line.item) for line in idle.lines if line.monthly > 0}
    assert fixed >= {
        ("CloudWatch", "custom metrics"),
        ("CloudWatch", "alarms"),
        ("CloudWatch", "dashboard"),
        ("Other", "Secrets Manager secret"),
        ("SQS", "requests"),  # the worker's event source long-polls an empty queue
    }
    assert ("API Gateway", "HTTP API requests") not in fixed
    assert ("EventBridge", "custom events") not in fixed


def test_touches_stop_growing_the_bucket_and_the_table_after_the_retention() -> None:
    # Given two years deployed: with 180 days' retention, touches (S3 and table) hold 6 months, not 24
    kept = Traffic(
        visits_per_month=1_000_000,
        leads_per_month=0,
        months_deployed=24,
        retention_days=180,
        attribute_runs_per_month=0,  # no replaced versions: only what is current
    )
    forever = replace(kept, retention_days=0)  # 0 keeps page views and touches
    storage = {r: _line(estimate(t), "S3", "storage").quantity for r, t in (("180", kept), ("0", forever))}
    touch_gib = 1_000_000 * 150 / GIB  # a month of touch rows in Parquet
    assert storage["0"] - storage["180"] == pytest.approx((24 - 6) * touch_gib)
    table = {
        r: _line(estimate(t), "DynamoDB", "storage").quantity for r, t in (("180", kept), ("0", forever))
    }
    assert table["0"] > 3 * table["180"]


def test_the_outward_loop_grows_with_visits_and_leads() -> None:
    base = Traffic(visits_per_month=1_000_000, leads_per_month=1_000)
    more = replace(base, visits_per_month=2_000_000, leads_per_month=2_000)
    for component, item in (("EventBridge", "custom events"), ("SQS", "requests")):
        assert _line(estimate(more), component, item).monthly > _line(estimate(base), component, item).monthly


def test_leads_cost_far_less_than_visits() -> None:
    base = Traffic(visits_per_month=1_000_000, leads_per_month=1_000)
    per_million_visits = marginal(base, visits_per_month=1_000_000)
    per_thousand_leads = marginal(base, leads_per_month=1_000)
    assert 0 < per_thousand_leads < per_million_visits / 10


def test_the_cli_prints_the_table_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--visits-per-month", "1000000", "--leads-per-month", "1000"]) == 0
    table = capsys.readouterr().out
    assert "total" in table
    assert PRICES_TAKEN_ON in table
    assert "One million more visits add" in table
    assert main(["--visits-per-month", "1000000", "--leads-per-month", "1000", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    expected = estimate(Traffic(visits_per_month=1_000_000, leads_per_month=1_000)).total
    assert payload["total"] == pytest.approx(expected)


def test_the_cli_needs_visits_and_leads() -> None:
    with pytest.raises(SystemExit):
        main(["--visits-per-month", "1000"])


@pytest.mark.parametrize(("visits", "leads"), [(100_000, 100), (1_000_000, 1_000), (10_000_000, 5_000)])
def test_docs_cost_shows_what_the_script_computes(visits: int, leads: int) -> None:
    docs = DOCS.read_text()
    assert PRICES_TAKEN_ON in docs
    total = estimate(Traffic(visits_per_month=visits, leads_per_month=leads)).total
    assert f"| {visits:,} | {leads:,} |" in docs
    assert f"{total:,.2f}" in docs, (visits, leads, f"{total:,.2f}")


def _line(result: Estimate, component: str, item: str) -> Line:
    return next(line for line in result.lines if (line.component, line.item) == (component, item))
