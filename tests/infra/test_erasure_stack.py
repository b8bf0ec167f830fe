"""The erase function in the stack: invoked by an admin only, with exactly the grants an erasure needs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

pytestmark = pytest.mark.infra


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _erase(template: Template) -> tuple[str, dict[str, Any]]:
    [(logical_id, function)] = [
        (i, f)
        for i, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == "closedloop-erase"
    ]
    return logical_id, function


def test_the_erase_function_has_pyarrow_and_no_trigger(template: Template) -> None:
    logical_id, function = _erase(template)
    assert set(function["Properties"]["Environment"]["Variables"]) >= {"TABLE_NAME", "BUCKET_NAME"}
    assert len(function["Properties"]["Layers"]) == 3  # SDK for pandas, Powertools, common
    # Nothing invokes it but an admin: no permission for a service, no event source, no schedule.
    for permission in template.find_resources("AWS::Lambda::Permission").values():
        assert logical_id not in str(permission["Properties"]["FunctionName"])
    for mapping in template.find_resources("AWS::Lambda::EventSourceMapping").values():
        assert logical_id not in str(mapping["Properties"]["FunctionName"])
    assert logical_id not in str(template.find_resources("AWS::Scheduler::Schedule"))


def test_the_erase_function_gets_exactly_the_grants_an_erasure_needs(template: Template) -> None:
    _, function = _erase(template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in _actions(s)}
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
    }
    assert {a for a in actions if a.startswith("s3:")} == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    }
    objects = next(s for s in statements if "s3:PutObject" in _actions(s))
    prefixes = sorted(str(r["Fn::Join"][1][-1]) for r in objects["Resource"])
    assert prefixes == sorted(
        f"/{d}/*" for d in ("touches", "leads", "deals", "attribution_credits", "pipeline", "state")
    )
    assert not any(a.startswith(("secretsmanager:", "events:", "sqs:")) for a in actions)
