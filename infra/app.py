#!/usr/bin/env python3
"""The CDK app: ``cdk synth`` / ``cdk deploy`` (or ``make synth``), settings from cdk.json's context."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts infra/ first on the path, where infra/constructs would shadow the
# `constructs` package CDK needs: import everything through the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "infra"]
for path in (ROOT, ROOT / "layers" / "common" / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aws_cdk import App, Environment, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import DeploySettings  # noqa: E402
from infra.stack import ClosedloopStack  # noqa: E402


def build_app(app: App | None = None) -> tuple[App, ClosedloopStack]:
    """The app with its stack and the cdk-nag AwsSolutions pack (failures stop the synthesis)."""
    app = app or App()
    settings = DeploySettings.from_context(app.node.try_get_context)
    stack = ClosedloopStack(
        app,
        app.node.try_get_context("stackName") or "Closedloop",
        settings=settings,
        env=Environment(
            account=app.node.try_get_context("account"), region=app.node.try_get_context("region")
        ),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def _app_for_this_process() -> App:
    """Under the CDK CLI, the CLI passes cdk.json's context; run directly (`make synth`), read it here."""
    if "CDK_CONTEXT_JSON" in os.environ or "CDK_OUTDIR" in os.environ:
        return App()
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return App(context=context, outdir=str(ROOT / "cdk.out"))


if __name__ == "__main__":
    built, _ = build_app(_app_for_this_process())
    built.synth()
