"""``make demo`` at a reduced size, as a user runs it (a subprocess), then its report in a real browser.

The demo starts its own local stack: it runs in its own process, so it never shares moto's per-process
backends with this test session's ``local_stack``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS

REPO = Path(__file__).resolve().parents[2]
CI_VISITORS = 120


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


def test_the_demo_plays_the_whole_loop_through_the_endpoints(demo_out, report):
    facts = report["facts"]
    assert facts["visitors"] == CI_VISITORS
    assert facts["leads"] > 0 and facts["deals"] > 0
    assert set(facts["deliveries"]) == {"hubspot", "salesforce", "pipedrive", "generic"}
    assert facts["refused"] == 0
    assert facts["retries"] > 0 and facts["out_of_order"] == 1
    assert facts["job"]["deals"] == facts["deals"]  # every CRM deal reached the lake, once
    stdout = (demo_out / "stdout.txt").read_text()
    for section in (
        "Revenue by channel under every model",
        "Funnel by channel",
        "Top campaigns",
        "Return on ad spend",
        "Ground truth",
    ):
        assert section in stdout
    assert "done in" in stdout


def test_the_named_queries_account_for_every_dollar_won(report):
    won = report["facts"]["revenue_won"]
    for model in ("first_touch", "last_touch", "linear", "markov", "shapley"):
        assert sum(row[model] for row in report["revenue_by_channel_by_model"]) == pytest.approx(won), model
    assert any(row["roas"] for row in report["roas_by_campaign"])  # spend was given, ROAS shows
    assert sum(row["visits"] for row in report["funnel_by_channel"]) > CI_VISITORS


def test_data_driven_models_recover_the_true_channel_mix_better_than_last_touch(report):
    scores = report["scores"]
    last = scores["last_touch"]
    for model in ("markov", "shapley"):
        assert scores[model]["mae"] < last["mae"], (model, scores)
        assert scores[model]["spearman"] > last["spearman"], (model, scores)


@pytest.mark.browser
def test_the_html_report_renders_its_charts_in_chromium(demo_out, page):
    html = (demo_out / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and 'src="' not in html  # self-contained

    page.goto((demo_out / "report.html").as_uri())
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
