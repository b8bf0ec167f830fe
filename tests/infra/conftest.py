"""The CDK app synthesised as the tests see it: cdk-nag on, bundling skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import build_app

ORIGIN = "https://www.acme.test"


def synthesise(outdir: Path, **context: Any) -> Template:
    """The whole app's stack with ``context`` on top of the tests' defaults.

    Bundling is skipped (it needs pip downloads; test_layer_bundling.py builds the layer for real).
    cdk-nag's AwsSolutions pack fails the synthesis on any unacknowledged finding, so reaching the
    template means the stack passed it.
    """
    app = App(
        context={"aws:cdk:bundling-stacks": [], "allowedOrigins": ORIGIN, **context}, outdir=str(outdir)
    )
    app, stack = build_app(app)
    app.synth()
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The stack with the default settings, synthesised once per test process."""
    return synthesise(tmp_path_factory.mktemp("cdk.out"))
