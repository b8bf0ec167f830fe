"""The common layer built for real, as ``cdk deploy`` builds it: package copy plus arm64 wheels from pip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import DockerImage

from infra.constructs.layers import COMMON_REQUIREMENTS, LAYER_SOURCE, PipLocalBundling

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LAMBDA_UNZIPPED_LIMIT = 250 * 1024**2  # function code and all its layers together
# What the attribute function's other layers take of that limit: AWS SDK for pandas 3.16.0 (~167 MB,
# aws/aws-sdk-pandas#3331) and a generous allowance for the managed Powertools layer.
OTHER_LAYERS_BUDGET = (167 + 40) * 1024**2
EM_AARCH64 = 183  # ELF e_machine of arm64


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("common-layer")
    bundling = PipLocalBundling(COMMON_REQUIREMENTS, LAYER_SOURCE / "python" / "closedloop")
    assert bundling.try_bundle(str(output), image=DockerImage.from_registry("unused")) is True
    return output


def test_the_layer_holds_the_package_and_its_small_dependencies(layer: Path) -> None:
    python = layer / "python"
    assert (python / "closedloop" / "__init__.py").is_file()
    assert (python / "closedloop" / "analytics" / "queries").is_dir()  # the named queries' SQL
    assert (python / "email_validator").is_dir()
    assert (python / "defusedxml").is_dir()
    assert sorted(p.name for p in layer.iterdir()) == ["python"]


def test_the_demo_and_build_leftovers_are_not_shipped(layer: Path) -> None:
    package = layer / "python" / "closedloop"
    assert not (package / "local").exists()
    assert not list(package.rglob("__pycache__"))
    assert not list(package.rglob("*.pyc"))
    assert not list(layer.rglob("*.egg-info"))


def test_native_libraries_if_any_are_built_for_arm64(layer: Path) -> None:
    for library in layer.rglob("*.so*"):
        header = library.read_bytes()[:20]
        if header[:4] == b"\x7fELF":
            assert int.from_bytes(header[18:20], "little") == EM_AARCH64, library


def test_the_package_imports_from_the_layer(layer: Path) -> None:
    python = layer / "python"
    code = (
        "import closedloop, email_validator, defusedxml; print(closedloop.__file__, email_validator.__file__)"
    )
    environment = {**os.environ, "PYTHONPATH": str(python)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    )
    assert all(path.startswith(str(python)) for path in result.stdout.split())


def test_the_layer_leaves_room_for_the_sdk_for_pandas_and_powertools_layers(layer: Path) -> None:
    size = sum(f.stat().st_size for f in layer.rglob("*") if f.is_file())
    print(f"common layer, unzipped: {size / 1024**2:.1f} MB")
    assert size < LAMBDA_UNZIPPED_LIMIT - OTHER_LAYERS_BUDGET
