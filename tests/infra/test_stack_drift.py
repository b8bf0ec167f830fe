"""What the cost model and docs/deploy.md say about the stack, checked against the synthesised app."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from closedloop.cost import USAGE
from tests.infra.conftest import synthesise

pytestmark = pytest.mark.infra

DEPLOY_DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    # With a custom domain, so the one conditional output (CustomDomainTarget) is synthesised too.
    return synthesise(
        tmp_path_factory.mktemp("cdk.out"),
        customDomain="track.acme.test",
        certificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/abc",
    )


def _metrics_of(alarm: Mapping[str, Any]) -> int:
    """CloudWatch bills an alarm per metric it reads: a metric-math alarm's MetricStat entries, else one."""
    queries = alarm["Properties"].get("Metrics")
    return sum(1 for q in queries if "MetricStat" in q) if queries else 1


def test_the_cost_model_counts_every_alarm_metric_of_the_template(template: Template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    billed = sum(_metrics_of(alarm) for alarm in alarms.values())
    assert billed == USAGE.alarm_metrics, (
        f"{len(alarms)} alarms read {billed} metrics; closedloop.cost.Usage.alarm_metrics says "
        f"{USAGE.alarm_metrics} (update it, its comment and docs/cost.md)"
    )


def test_every_output_of_the_stack_is_in_the_deploy_guide(template: Template) -> None:
    docs = DEPLOY_DOCS.read_text()
    outputs = set(template.to_json()["Outputs"])
    assert "CustomDomainTarget" in outputs
    missing = sorted(key for key in outputs if f"`{key}`" not in docs)
    assert missing == [], f"docs/deploy.md does not name these outputs: {missing}"
