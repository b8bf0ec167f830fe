"""cfn-lint on the synthesised templates: no errors, and only the warnings listed here, each with its reason.

Two variants, synthesised once in one app: every option on (alarm e-mail, custom domain) outside
production, and production (retained data, no auto-delete helpers).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App
from cfnlint.api import ManualArgs, lint_file

from infra.config import DeploySettings
from infra.stack import ClosedloopStack

pytestmark = pytest.mark.infra

REGIONS = ["us-east-1", "eu-west-1"]
# Warnings we accept, by rule id, and why. Anything else (and every error) fails the test.
ACCEPTED_WARNINGS = {
    # CDK's Function L2 adds DependsOn its role's default policy next to the GetAtt of the role, so the
    # function is created only once its permissions exist; cfn-lint sees the role dependency twice.
    "W3005": "redundant DependsOn emitted by CDK's Lambda Function construct",
}
SETTINGS = {
    "ClosedloopEverything": {
        "allowedOrigins": ["https://www.acme.test"],
        "alarmEmail": "ops@acme.test",
        "customDomain": "track.acme.test",
        "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0c6f1b1e-1111-2222-3333-44445555",
    },
    "ClosedloopProduction": {"allowedOrigins": ["https://www.acme.test"], "production": True},
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    # Bundling is skipped (no pip downloads): the layer's build has its own test.
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    for name, values in SETTINGS.items():
        ClosedloopStack(app, name, settings=DeploySettings.model_validate(values))
    app.synth()
    return {name: outdir / f"{name}.template.json" for name in SETTINGS}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_cfn_lint_finds_no_error_and_only_accepted_warnings(templates: dict[str, Path], name: str) -> None:
    matches = lint_file(templates[name], config=ManualArgs(regions=REGIONS))
    unexpected = [
        f"{m.rule.id} {m.message} ({m.path_string})" for m in matches if m.rule.id not in ACCEPTED_WARNINGS
    ]
    assert unexpected == []
    assert all(m.rule.id.startswith("W") for m in matches)  # never accept an error
