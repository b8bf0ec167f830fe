"""Layer order is what each function declares, whatever the construct paths, with the deploy's flags.

Lambda extracts a function's layers in the order listed and a later layer overwrites an earlier one's
files: the managed AWS SDK for pandas layer first, then Powertools, then our common layer, so the
newer pydantic / typing_extensions and our pinned dependencies win. cdk.json turns on
``@aws-cdk/aws-lambda:recognizeLayerVersion``, under which CDK sorts a function's layers by construct
path; the order must not depend on that luck.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra.constructs.attribute_job import SDK_FOR_PANDAS_PARAMETER
from infra.constructs.functions import ClosedloopFunction
from infra.constructs.layers import POWERTOOLS_PARAMETER
from tests.infra.conftest import synthesise

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]
RECOGNIZE_LAYER_VERSION = "@aws-cdk/aws-lambda:recognizeLayerVersion"
WITH_PANDAS = {"closedloop-attribute", "closedloop-erase", "closedloop-publish"}


def _layer_names(template: dict[str, Any], layers: list[dict[str, Any]]) -> list[str]:
    """Each layer reference as ``pandas``, ``powertools`` or ``common``."""
    names = []
    for layer in layers:
        ref = layer["Ref"]
        default = template.get("Parameters", {}).get(ref, {}).get("Default")
        if default == SDK_FOR_PANDAS_PARAMETER:
            names.append("pandas")
        elif default == POWERTOOLS_PARAMETER:
            names.append("powertools")
        elif template["Resources"].get(ref, {}).get("Type") == "AWS::Lambda::LayerVersion":
            names.append("common")
        else:
            names.append(ref)
    return names


def test_every_function_lists_its_layers_in_the_declared_order_with_the_deploys_flags(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    context = {k: v for k, v in DEPLOY_CONTEXT.items() if k.startswith("@aws-cdk/")}
    template = synthesise(tmp_path_factory.mktemp("cdk.out"), **context).to_json()
    functions = {
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: f["Properties"]
        for f in template["Resources"].values()
        if f["Type"] == "AWS::Lambda::Function" and "Layers" in f["Properties"]
    }
    assert set(functions) > WITH_PANDAS
    for service, properties in functions.items():
        expected = ["pandas", "powertools", "common"] if service in WITH_PANDAS else ["powertools", "common"]
        assert _layer_names(template, properties["Layers"]) == expected, service


def test_the_order_is_the_declared_one_even_when_construct_paths_sort_the_other_way(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    app = App(
        context={"aws:cdk:bundling-stacks": [], RECOGNIZE_LAYER_VERSION: True},
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
    )
    stack = Stack(app, "LayerOrder")
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:{}:1"
    zulu = lambda_.LayerVersion.from_layer_version_arn(stack, "Zulu", arn.format("zulu"))
    alpha = lambda_.LayerVersion.from_layer_version_arn(stack, "Alpha", arn.format("alpha"))
    ClosedloopFunction(stack, "collect", layers=[zulu, alpha], environment={}, log_retention_days=7)

    [function] = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()

    assert function["Properties"]["Layers"] == [arn.format("zulu"), arn.format("alpha")]
