"""The example app (app.py): synthesized by the real CDK CLI, context-configured, environment-agnostic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"

COUNTED = (
    "AWS::SageMaker::Model",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Endpoint",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
)


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`cdk synth` of the repository's app (cdk.json runs `python app.py`), with no AWS credentials."""
    if not CDK.is_file():
        pytest.fail(f"{CDK} is missing: run `make setup` (npm ci installs the pinned CDK CLI)")
    if shutil.which("node") is None:
        pytest.fail("node is not installed; the CDK CLI needs it")
    outdir = tmp_path_factory.mktemp("cli-out")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "CDK_")) or key == "SAGEMAKER_CONSTRUCTS_CACHE_DIR"
    }
    env |= {
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(outdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads((outdir / "IrisEndpointStack.template.json").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("resource_type", COUNTED)
def test_cli_synth_holds_exactly_one(cli_template: dict[str, Any], resource_type: str) -> None:
    found = [r for r in cli_template["Resources"].values() if r["Type"] == resource_type]
    assert len(found) == 1


@pytest.mark.slow
def test_cli_synth_encrypts_the_endpoint_config(cli_template: dict[str, Any]) -> None:
    Template.from_json(cli_template).has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {"KmsKeyId": {"Fn::GetAtt": [cdk.assertions.Match.any_value(), "Arn"]}},
    )


@pytest.mark.parametrize("resource_type", COUNTED)
def test_in_process_synth_holds_exactly_one(example_template: Template, resource_type: str) -> None:
    example_template.resource_count_is(resource_type, 1)


def test_default_instance_type_is_small_and_not_burstable(example_template: Template) -> None:
    example_template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {"ProductionVariants": [cdk.assertions.Match.object_like({"InstanceType": "ml.m5.large"})]},
    )


def test_stack_is_environment_agnostic(example_app: cdk.App) -> None:
    stack = example_app.node.find_child("IrisEndpointStack")
    assert isinstance(stack, cdk.Stack)
    assert stack.environment == "aws://unknown-account/unknown-region"


def test_image_installs_the_iris_requirements(example_app: cdk.App) -> None:
    manifest = json.loads((Path(example_app.outdir) / "IrisEndpointStack.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"] == {"MODEL_REQUIREMENTS": "scikit-learn==1.9.1"}


def test_context_sets_instance_type_capacity_and_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    context = {"instanceType": "ml.c6i.large", "minCapacity": "2", "maxCapacity": "6", "pipCaBundle": str(ca)}
    app = build_app(str(tmp_path / "out"), context=context)
    app.synth()
    template = Template.from_stack(app.node.find_child("IrisEndpointStack"))  # type: ignore[arg-type]
    (target,) = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (2, 6)
    (config,) = template.find_resources("AWS::SageMaker::EndpointConfig").values()
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.c6i.large"
    assert config["Properties"]["ProductionVariants"][0]["InitialInstanceCount"] == 2
    manifest = json.loads((tmp_path / "out" / "IrisEndpointStack.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerBuildSecrets"] == {"pip-ca": f"src={ca}"}
