"""The Lambda layers: AWS's managed Powertools layer, and our common layer (the ``closedloop`` package).

The common layer is built without Docker: ``pip install --platform`` fetches the arm64 wheels of the
few dependencies the Powertools layer does not carry, next to a copy of the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_SOURCE = REPO_ROOT / "layers" / "common"
# Wheels for Lambda's arm64 Linux: several manylinux tags, because one alone picks old or wrong wheels.
ARM64_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
# What the functions import that the Powertools layer (pydantic, aws-xray-sdk) and the runtime (boto3) lack.
COMMON_REQUIREMENTS = ("email-validator==2.4.0", "defusedxml==0.7.1")
PYTHON_VERSION = "3.12"
# The Powertools release the tests ran with (requirements.lock): the managed layer of exactly that release,
# from AWS's public per-release parameter. Bump it with the lock file (tests/infra/test_layers.py checks).
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_PARAMETER = f"/aws/service/powertools/python/arm64/python{PYTHON_VERSION}/{POWERTOOLS_VERSION}"


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Bundle a layer on this machine: copy the package, pip-install arm64 wheels beside it."""

    def __init__(self, requirements: tuple[str, ...], package_dir: Path) -> None:
        self.requirements = requirements
        self.package_dir = package_dir

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        target = Path(output_dir) / "python"
        shutil.copytree(
            self.package_dir,
            target / self.package_dir.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "local", "*.egg-info"),
        )
        if self.requirements:
            command = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                PYTHON_VERSION,
            ]
            for platform in ARM64_PLATFORMS:
                command += ["--platform", platform]
            subprocess.run([*command, *self.requirements], check=True)  # noqa: S603 - fixed argv
        return True


class LayersConstruct(Construct):
    """Built once and handed to every function."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Resolved at deploy time from AWS's public parameter: the region's layer of the pinned release.
        powertools_arn = ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_PARAMETER)
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", powertools_arn)
        self.common = lambda_.LayerVersion(
            self,
            "Common",
            description="closedloop package and its small dependencies",
            compatible_architectures=[lambda_.Architecture.ARM_64],
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            code=lambda_.Code.from_asset(
                str(LAYER_SOURCE),
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
                    local=PipLocalBundling(COMMON_REQUIREMENTS, LAYER_SOURCE / "python" / "closedloop"),
                ),
            ),
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        """Powertools, then ours: a function lists layers in this order (another managed layer, such as
        AWS SDK for pandas, goes before both), so our pinned dependencies win where files overlap."""
        return [self.powertools, self.common]
