"""The CDK app, synthesised once for the module: what it creates and what it grants."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App
from aws_cdk.assertions import Match, Template

from closedloop.routes import ROUTES
from closedloop.store import schema
from infra.app import build_app

pytestmark = pytest.mark.infra


def test_the_table_is_on_demand_encrypted_recoverable_and_expiring(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": schema.KEY_SCHEMA,
            "TimeToLiveSpecification": {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [
                Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
            ],
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": schema.BY_DAY_INDEX})],
        },
    )


def test_the_collect_function_runs_python_312_on_arm64_with_both_layers(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.12",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "TABLE_NAME": Match.any_value(),
                        "ALLOWED_ORIGINS": "https://www.acme.test",
                        "POWERTOOLS_SERVICE_NAME": "closedloop-collect",
                        "RETENTION_DAYS": "395",
                    }
                )
            },
        },
    )


def test_each_function_gets_only_the_writes_it_needs(template: Template) -> None:
    actions_of = {}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        role = policy["Properties"]["Roles"][0]["Ref"]
        actions_of[role] = {
            a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in _list(s["Action"])
        }
    collect_role = next(r for r in actions_of if r.startswith("CollectRole"))
    identify_role = next(r for r in actions_of if r.startswith("IdentifyRole"))
    assert "dynamodb:UpdateItem" not in actions_of[collect_role]
    assert "dynamodb:UpdateItem" in actions_of[identify_role]
    assert not any("DeleteItem" in str(a) for actions in actions_of.values() for a in actions)


def test_the_collect_function_may_only_read_visitor_state_and_put_items(template: Template) -> None:
    # closedloop.collect calls get_visitor_state (GetItem) and record_event: one TransactWriteItems of
    # Puts, which IAM checks as PutItem. No Query, no ConditionCheckItem, no UpdateItem.
    dynamodb_actions = {
        action
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"][0]["Ref"].startswith("CollectRole")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _list(statement["Action"])
        if str(action).startswith("dynamodb:")
    }
    assert dynamodb_actions == {"dynamodb:GetItem", "dynamodb:PutItem"}


def test_the_powertools_layer_is_aws_managed_pinned_and_resolved_at_deploy(template: Template) -> None:
    from infra.constructs.layers import POWERTOOLS_PARAMETER

    ours = {
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert {
        "closedloop-collect",
        "closedloop-identify",
        "closedloop-crm-webhook",
        "closedloop-attribute",
    } <= set(ours)
    for service, properties in ours.items():
        # The attribute job (pyarrow, numpy) and the publish function (numpy, for deal.won's credit)
        # also get the AWS SDK for pandas layer.
        with_pandas = {"closedloop-attribute", "closedloop-publish", "closedloop-erase"}
        assert len(properties["Layers"]) == (3 if service in with_pandas else 2), service
    parameters = template.to_json()["Parameters"]
    assert any(POWERTOOLS_PARAMETER in json.dumps(p) for p in parameters.values())


def test_every_route_of_the_product_is_on_the_http_api(template: Template) -> None:
    route_keys = {
        r["Properties"]["RouteKey"] for r in template.find_resources("AWS::ApiGatewayV2::Route").values()
    }
    expected = {f"{r.method} {r.path}" for r in ROUTES} | {
        f"OPTIONS {r.path}" for r in ROUTES if r.method == "POST"
    }
    assert route_keys == expected


def test_the_stage_is_throttled_and_logs_without_ip_addresses(template: Template) -> None:
    [stage] = template.find_resources("AWS::ApiGatewayV2::Stage").values()
    properties = stage["Properties"]
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] == 200
    assert properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 400
    log_format = properties["AccessLogSettings"]["Format"]
    assert "requestId" in log_format
    assert "sourceIp" not in log_format
    assert "userAgent" not in log_format


def test_functions_get_exact_dynamodb_actions_on_exact_resources(template: Template) -> None:
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    dynamodb_statements = [
        s for s in statements if any(str(a).startswith("dynamodb:") for a in _list(s["Action"]))
    ]
    assert dynamodb_statements
    for statement in dynamodb_statements:
        assert "dynamodb:*" not in _list(statement["Action"])
        assert set(_list(statement["Action"])) <= {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:Query",
            "dynamodb:BatchWriteItem",  # the erase function deletes a person's items, 25 at a time
            # the publish function reads the table's stream, on the stream's own ARN
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        }
        assert "*" not in json.dumps(statement["Resource"]).replace("index/*", "")
        assert "index/*" not in json.dumps(statement["Resource"])
    wildcard_statements = [s for s in statements if s["Resource"] == "*"]
    assert all(str(a).startswith("xray:") for s in wildcard_statements for a in _list(s["Action"]))


def test_no_function_of_ours_uses_a_managed_policy(template: Template) -> None:
    for name, role in template.find_resources("AWS::IAM::Role").items():
        if name.startswith("CustomS3AutoDeleteObjects"):
            continue  # CDK's own helper, only outside production (auto-delete of the dev bucket)
        assert "ManagedPolicyArns" not in role["Properties"], name


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _honor_gpc_by_service(template: Template) -> dict[str, str | None]:
    """HONOR_GPC of every function of ours, by its service name."""
    variables = [
        f["Properties"].get("Environment", {}).get("Variables", {})
        for f in template.find_resources("AWS::Lambda::Function").values()
    ]
    return {
        v["POWERTOOLS_SERVICE_NAME"]: v.get("HONOR_GPC") for v in variables if "POWERTOOLS_SERVICE_NAME" in v
    }


def test_the_functions_a_browser_reaches_honour_global_privacy_control_by_default(template: Template) -> None:
    honor_gpc = _honor_gpc_by_service(template)
    assert honor_gpc.pop("closedloop-collect") == "true"
    assert honor_gpc.pop("closedloop-identify") == "true"
    assert set(honor_gpc.values()) == {None}  # the others never see a browser's Sec-GPC header


def test_honor_gpc_false_on_the_command_line_turns_it_off_in_both_functions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given `cdk deploy -c honorGpc=false` (context from the command line is a string)
    app = App(
        context={
            "aws:cdk:bundling-stacks": [],
            "allowedOrigins": "https://www.acme.test",
            "honorGpc": "false",
        },
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
    )
    _, stack = build_app(app)

    honor_gpc = _honor_gpc_by_service(Template.from_stack(stack))

    assert (honor_gpc["closedloop-collect"], honor_gpc["closedloop-identify"]) == ("false", "false")
