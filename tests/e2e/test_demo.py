"""``make demo`` at a reduced size, as a user runs it (a subprocess), then its report in a real browser.

The demo starts its own local stack: it runs in its own process, so it never shares moto's per-process
backends with this test session's ``local_stack``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from closedloop.attribution import ALL_MODELS
from closedloop.local.lakeview import duckdb_over_lake
from tests.e2e.conftest import ARTIFACTS

REPO = Path(__file__).resolve().parents[2]
CI_VISITORS = 120
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PYTHONPATH": str(REPO / "layers/common/python")}
    # Given the demo run as `make demo` runs it, at a reduced size
    completed = subprocess.run(
        [sys.executable, "-m", "closedloop.local.demo", "--visitors", str(CI_VISITORS), "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    (out / "stdout.txt").write_text(completed.stdout)
    (out / "stderr.txt").write_text(completed.stderr)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def report(demo_out: Path) -> dict[str, Any]:
    return dict(json.loads((demo_out / "report.json").read_text()))


@pytest.fixture(scope="module")
def lake(demo_out: Path) -> duckdb.DuckDBPyConnection:
    """The Athena tables as the demo left them under out/lake."""
    return duckdb_over_lake(demo_out / "lake")


def test_the_demo_plays_the_whole_loop_through_the_endpoints(demo_out, report):
    facts = report["facts"]
    assert facts["visitors"] == CI_VISITORS
    assert facts["leads"] > 0 and facts["deals"] > 0
    assert set(facts["deliveries"]) == {"hubspot", "salesforce", "pipedrive", "generic"}
    assert facts["refused"] == 0
    assert facts["retries"] > 0
    assert facts["job"]["deals"] == facts["deals"]  # every CRM deal reached the lake, once
    stdout = (demo_out / "stdout.txt").read_text()
    for section in (
        "Revenue by channel under every model",
        "Open pipeline by channel under every model",
        "Funnel by lead source",
        "Top campaigns",
        "Return on ad spend",
        "Ground truth",
    ):
        assert section in stdout
    assert "done in" in stdout


def test_a_close_delivered_before_its_stage_change_stays_closed_in_the_lake(report, lake):
    # Given the deal whose close the CRM sent before the (older) stage change
    swapped = report["facts"]["out_of_order_deal"]
    # Then the lake holds the deal in its true final state: the late stage change did not move it back
    assert lake.execute(
        "SELECT lifecycle, stage FROM closedloop.deals WHERE crm = ? AND deal_id = ?",
        [swapped["crm"], swapped["deal_id"]],
    ).fetchall() == [(swapped["outcome"], swapped["stage"])]
    assert swapped["outcome"] in {"won", "lost"}


def test_deals_are_dated_over_the_simulated_weeks_after_their_forms(lake):
    # Each deal was created after its lead's last visit (the form), not all on the day of the run
    late = lake.execute(
        "SELECT d.deal_id FROM closedloop.deals d JOIN closedloop.touches t ON t.lead_id = d.lead_id "
        "GROUP BY d.deal_id, d.opportunity_created_at HAVING d.opportunity_created_at < MAX(t.occurred_at)"
    ).fetchall()
    assert late == []
    earliest, days = lake.execute(
        "SELECT epoch_ms(MIN(opportunity_created_at)), "
        "COUNT(DISTINCT CAST(COALESCE(won_at, lost_at, opportunity_created_at) AS DATE)) "
        "FROM closedloop.deals"
    ).fetchone()
    assert earliest < time.time() * 1000 - 7 * DAY_MS
    assert days >= 5


def test_the_named_queries_account_for_every_dollar_won_and_open(report):
    won, open_pipeline = report["facts"]["revenue_won"], report["facts"]["pipeline_open"]
    assert open_pipeline > 0
    rows = report["revenue_by_channel_by_model"]
    for model in ALL_MODELS:
        assert sum(row[model] for row in rows) == pytest.approx(won), model
        assert sum(row[f"pipeline_{model}"] for row in rows) == pytest.approx(open_pipeline), model
    assert any(row["roas"] for row in report["roas_by_campaign"])  # spend was given, ROAS shows
    assert sum(row["visits"] for row in report["funnel_by_channel"]) > CI_VISITORS


def test_data_driven_models_recover_the_true_channel_mix_better_than_last_touch(report):
    scores = report["scores"]
    last = scores["last_touch"]
    for model in ("markov", "shapley"):
        assert scores[model]["mae"] < last["mae"], (model, scores)
        assert scores[model]["spearman"] > last["spearman"], (model, scores)


def test_the_report_names_the_model_closest_to_the_truth(demo_out, report):
    best = min(report["scores"], key=lambda model: report["scores"][model]["mae"])
    line = f"Closest to the truth on this synthetic company: {best} "
    assert line in (demo_out / "stdout.txt").read_text()
    assert line in (demo_out / "report.html").read_text()


@pytest.mark.browser
def test_the_html_report_renders_its_charts_in_chromium(demo_out, page):
    html = (demo_out / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and 'src="' not in html  # self-contained

    page.goto((demo_out / "report.html").as_uri())
    pipeline_by_model = page.locator("table.pipeline-by-model")
    assert pipeline_by_model.locator("th").count() == 1 + len(ALL_MODELS)  # channel, then every model
    charts = page.locator("svg.chart")
    assert charts.count() >= 6
    for chart_id in ("truth-vs-models", "revenue-markov", "funnel-rates", "top-campaigns", "roas"):
        chart = page.locator(f"svg.chart#{chart_id}")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 20, chart_id
        widths = [b["width"] for b in (bar.bounding_box() for bar in chart.locator("rect.bar").all()) if b]
        assert widths and max(widths) > 10, chart_id  # bars were drawn, with real sizes
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-report.png"), full_page=True)
