"""Fixtures every suite may use: AWS credentials that can never reach AWS, and moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import settings
from moto import mock_aws

from closedloop.store.schema import create_table

# CI explores the same examples every run, so a red build is reproducible (CI=true make test);
# on a developer's machine property tests and the fuzzer explore new examples each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    settings.load_profile("ci")

TABLE_NAME = "closedloop-test"
SITE_ORIGIN = "https://www.acme.test"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and the functions' environment; set before any client is made."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": TABLE_NAME,
        "ALLOWED_ORIGINS": f"{SITE_ORIGIN},https://app.acme.test",
        "POWERTOOLS_SERVICE_NAME": "closedloop-test",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ClosedloopTest",
        "POWERTOOLS_DEV": "false",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[object]:
    """A moto DynamoDB with the Closedloop table, created from the same definition as the CDK app."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE_NAME)
        yield client
