"""The managed Powertools layer is the release the tests ran with, never whatever AWS published last."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.constructs.layers import POWERTOOLS_VERSION, LayersConstruct

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]


def _pinned(requirement_lines: list[str], package: str) -> str:
    """The ``==`` version of ``package`` (names compared as PEP 503 normalises them)."""
    normalised = re.sub(r"[-_.]+", "-", package).lower()
    for line in requirement_lines:
        match = re.match(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if match and re.sub(r"[-_.]+", "-", match.group(1)).lower() == normalised:
            return match.group(3)
    raise AssertionError(f"{package} is not pinned with ==")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    app = App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stack = Stack(app, "LayersTest")
    LayersConstruct(stack, "Layers")
    return Template.from_stack(stack)


def test_the_layer_release_is_the_one_in_the_lock_file_and_pyproject() -> None:
    locked = _pinned((ROOT / "requirements.lock").read_text().splitlines(), "aws-lambda-powertools")
    declared = _pinned(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"],
        "aws-lambda-powertools",
    )
    assert POWERTOOLS_VERSION == locked == declared


def test_the_synthesised_layer_reference_names_the_pinned_release(template: Template) -> None:
    # value_for_string_parameter becomes an SSM-typed template parameter, resolved at deploy time.
    defaults = [p.get("Default") for p in template.to_json()["Parameters"].values()]
    powertools = [d for d in defaults if str(d).startswith("/aws/service/powertools/")]
    assert powertools == [f"/aws/service/powertools/python/arm64/python3.12/{POWERTOOLS_VERSION}"]
    assert "latest" not in json.dumps(template.to_json()["Parameters"])
