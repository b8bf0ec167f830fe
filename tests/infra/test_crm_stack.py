"""The CRM webhook side of the CDK app, synthesised once for the module: function, route, secret, grants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.infra


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _logical_id(template: Template, kind: str, prefix: str) -> str:
    [logical_id] = [name for name in template.find_resources(kind) if name.startswith(prefix)]
    return logical_id


def _statements(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement, with the role it is attached to."""
    return [
        (role["Ref"], statement)
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_webhook_function_runs_python_312_on_arm64_within_pipedrives_10_seconds(
    template: Template,
) -> None:
    secret = _logical_id(template, "AWS::SecretsManager::Secret", "WebhookSecret")
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.12",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "Timeout": Match.any_value(),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "POWERTOOLS_SERVICE_NAME": "closedloop-crm-webhook",
                        "TABLE_NAME": Match.any_value(),
                        "WEBHOOK_SECRET_ARN": {"Ref": secret},
                    }
                )
            },
        },
    )
    [function] = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == "closedloop-crm-webhook"
    ]
    assert function["Properties"]["Timeout"] <= 10


def test_the_webhook_route_goes_to_the_webhook_function(template: Template) -> None:
    function = _logical_id(template, "AWS::Lambda::Function", "CrmWebhookFunction")
    [route] = [
        r
        for r in template.find_resources("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["RouteKey"] == "POST /webhooks/{crm}"
    ]
    target = json.dumps(route["Properties"]["Target"])
    [integration] = [
        i for name, i in template.find_resources("AWS::ApiGatewayV2::Integration").items() if name in target
    ]
    assert function in json.dumps(integration["Properties"]["IntegrationUri"])


def test_the_secret_starts_as_an_empty_json_object_whose_arn_the_stack_prints(template: Template) -> None:
    [(logical_id, secret)] = template.find_resources("AWS::SecretsManager::Secret").items()
    assert json.loads(secret["Properties"]["SecretString"]) == {}
    assert secret["DeletionPolicy"] == "Delete"  # not production: torn down with the stack
    template.has_output("WebhookSecretArn", {"Value": {"Ref": logical_id}})


def test_only_the_webhook_and_write_back_functions_read_the_secret_and_only_that_secret(
    template: Template,
) -> None:
    secret = _logical_id(template, "AWS::SecretsManager::Secret", "WebhookSecret")
    webhook_role = _logical_id(template, "AWS::IAM::Role", "CrmWebhookRole")
    # The CRM write-back worker reads each CRM's write-back settings from the same secret.
    writeback_role = _logical_id(template, "AWS::IAM::Role", "EventsCrmWritebackRole")
    secret_statements = [
        (role, statement)
        for role, statement in _statements(template)
        if any(str(action).startswith("secretsmanager:") for action in _list(statement["Action"]))
    ]
    assert sorted(role for role, _ in secret_statements) == sorted([webhook_role, writeback_role])
    for _, statement in secret_statements:
        assert statement["Effect"] == "Allow"
        assert _list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
        assert statement["Resource"] == {"Ref": secret}


def test_the_webhook_function_only_reads_and_puts_items(template: Template) -> None:
    webhook_role = _logical_id(template, "AWS::IAM::Role", "CrmWebhookRole")
    actions = {
        action
        for role, statement in _statements(template)
        if role == webhook_role
        for action in _list(statement["Action"])
        if str(action).startswith("dynamodb:")
    }
    # TransactWriteItems is authorised per item: its Puts need PutItem, nothing more.
    assert actions == {"dynamodb:GetItem", "dynamodb:PutItem"}
