"""The cost model against a month computed by hand, its CLI, and docs/cost.md kept in step with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from closedloop.cost import PRICES_TAKEN_ON, Traffic, estimate, main, marginal

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cost.md"

# 1M visits of 2 pages, 1,000 leads posting once, half of them a deal with 2 webhook deliveries; no
# attribute runs; 100 Athena queries of 5 MB (billed 10 MB); the first month (nothing stored before).
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
)
GIB = 1024**3


def test_a_month_computed_by_hand() -> None:
    # Given the traffic above; page views 2,000,000; submissions 1,000; deal events 1,000
    lines = {(line.component, line.item): line for line in estimate(HAND).lines}

    def cost(component: str, item: str) -> float:
        return lines[component, item].monthly

    # API: 2,000,000 beacons + 1,000,000 t.js + 1,000 x 1.5 identify (half preflighted) + 1,000 webhooks
    #      = 3,002,500 requests x $1.00 / million
    assert cost("API Gateway", "HTTP API requests") == pytest.approx(3.0025)
    # Lambda: the same 3,002,500 invocations x $0.20 / million
    assert cost("Lambda", "requests") == pytest.approx(0.6005)
    # (2,000,000 x 40 ms + 1,000,000 x 5 ms + 1,500 x 120 ms + 1,000 x 250 ms) x 0.25 GB
    #      = (80,000 + 5,000 + 180 + 250) s x 0.25 = 21,357.5 GB-s x $0.0000133334
    assert cost("Lambda", "duration, arm64") == pytest.approx(21_357.5 * 0.0000133334)
    # DynamoDB writes: 2,000,000 x 4 + 1,000,000 touches x 3 + 1,000 x 9 + 1,000 x 7 = 11,016,000 WRU
    assert cost("DynamoDB", "write request units") == pytest.approx(11.016 * 0.625)
    # reads: 2,000,000 x 1 + 1,000 x 3 + 1,000 x 2 = 2,005,000 RRU
    assert cost("DynamoDB", "read request units") == pytest.approx(2.005 * 0.125)
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
    # CloudWatch: 3,002,500 invocations x 2,048 B + 3,002,500 access log lines x 300 B
    logs_gib = 3_002_500 * (2048 + 300) / GIB
    assert cost("CloudWatch", "log ingestion") == pytest.approx(logs_gib * 0.50)
    assert cost("CloudWatch", "log storage") == pytest.approx(logs_gib * 0.15 * 0.03)
    assert cost("CloudWatch", "custom metrics") == pytest.approx((11 + 6) * 0.30)
    assert cost("CloudWatch", "alarms") == pytest.approx(16 * 0.10)
    assert cost("CloudWatch", "dashboard") == 3.00
    # X-Ray: collect's 3,000,000 requests -> 2,592,000 (one a second) + 5 % of 408,000 = 2,612,400;
    #        identify 1,500 and webhooks 1,000 all traced: 2,614,900 traces x $5 / million
    assert cost("X-Ray", "traces recorded") == pytest.approx(2.6149 * 5)
    assert cost("Other", "Secrets Manager secret") + cost("Other", "KMS key (alarm topic)") == 1.40


def test_the_total_is_the_sum_of_its_lines_and_of_its_components() -> None:
    result = estimate(HAND)
    assert result.total == pytest.approx(sum(line.monthly for line in result.lines))
    assert result.total == pytest.approx(sum(result.by_component().values()))
    assert all(line.monthly == pytest.approx(line.quantity * line.unit_price) for line in result.lines)


def test_no_traffic_costs_only_the_fixed_monthly_items() -> None:
    idle = estimate(Traffic(visits_per_month=0, leads_per_month=0, athena_queries_per_month=0))
    fixed = {line.item for line in idle.lines if line.monthly > 0}
    assert fixed >= {"custom metrics", "alarms", "dashboard", "Secrets Manager secret"}
    assert "HTTP API requests" not in fixed


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
