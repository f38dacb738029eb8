"""`cdk bootstrap`, `cdk deploy` and `cdk destroy` of the example against moto (an AWS API emulator).

What these prove: the synthesized assembly deploys with the pinned CDK CLI end to end (bootstrap stack,
asset publishing: the model archive to S3 and the image through `docker build/tag/push` to ECR, then the
CloudFormation stack); the deployed Model runs the very image the container tests exercised and reads the
uploaded archive; the stack can be destroyed. moto skips `AWS::ApplicationAutoScaling::*` and
`AWS::S3::BucketPolicy`, so the construct tests assert those on the template; moto ignores given physical
names, so names are read back from the stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from e2e.assembly import Stack
from e2e.deploy import ACCOUNT, EXAMPLE_STACK, REGION, aws_env, cdk, moto_server


@dataclass
class Deployment:
    endpoint: str
    env: dict[str, str]
    assembly: Path
    output: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def physical_ids(self, resource_type: str) -> list[str]:
        resources = self.client("cloudformation").describe_stack_resources(StackName=EXAMPLE_STACK)
        return [
            r["PhysicalResourceId"]
            for r in resources["StackResources"]
            if r.get("ResourceType") == resource_type
        ]


@pytest.fixture(scope="module")
def deployment(example_assembly: Path, example_image: str) -> Iterator[Deployment]:
    """moto on a loopback port, bootstrapped, with the example deployed; moto stops afterwards."""
    del example_image  # built first, so the deploy's `docker build` reuses its layers
    with moto_server() as endpoint:
        env = aws_env(endpoint)
        cdk("bootstrap", f"aws://{ACCOUNT}/{REGION}", assembly=example_assembly, env=env)
        output = cdk(
            "deploy", EXAMPLE_STACK, "--require-approval", "never", assembly=example_assembly, env=env
        )
        yield Deployment(endpoint, env, example_assembly, output)


def _name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def test_stack_reaches_create_complete(deployment: Deployment) -> None:
    stack = deployment.client("cloudformation").describe_stacks(StackName=EXAMPLE_STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", deployment.output


def test_endpoint_exists_and_serves_the_stack_model(deployment: Deployment) -> None:
    sagemaker = deployment.client("sagemaker")
    (endpoint_arn,) = deployment.physical_ids("AWS::SageMaker::Endpoint")
    (model_arn,) = deployment.physical_ids("AWS::SageMaker::Model")
    endpoint = sagemaker.describe_endpoint(EndpointName=_name(endpoint_arn))
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [_name(model_arn)]


def _deployed_container(deployment: Deployment) -> dict[str, Any]:
    (model_arn,) = deployment.physical_ids("AWS::SageMaker::Model")
    model = deployment.client("sagemaker").describe_model(ModelName=_name(model_arn))
    return model.get("PrimaryContainer") or model["Containers"][0]


def test_model_image_is_the_pushed_image_the_container_tests_ran(
    deployment: Deployment, example_stack: Stack, example_image: str
) -> None:
    image_uri = _deployed_container(deployment)["Image"]
    repository_uri, _, tag = image_uri.rpartition(":")
    ecr = deployment.client("ecr")
    (repository,) = ecr.describe_repositories(repositoryNames=[repository_uri.split("/", 1)[1]])[
        "repositories"
    ]
    assert repository["repositoryUri"] == repository_uri
    assert tag == example_stack.model_image_asset().image_tag
    (image,) = ecr.batch_get_image(repositoryName=repository["repositoryName"], imageIds=[{"imageTag": tag}])[
        "images"
    ]
    # The manifest's config digest is the image id: the deployed image is byte for byte the tested one.
    assert json.loads(image["imageManifest"])["config"]["digest"] == f"sha256:{example_image}"


def test_model_data_is_the_uploaded_archive(deployment: Deployment, example_stack: Stack) -> None:
    url = _deployed_container(deployment)["ModelDataUrl"]
    bucket, _, key = url.removeprefix("s3://").partition("/")
    body = deployment.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    asset = example_stack.model_data_asset()
    assert key == asset.object_key
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(asset.path.read_bytes()).hexdigest()


def test_destroy_removes_the_stack_and_its_endpoint(deployment: Deployment) -> None:
    (endpoint_arn,) = deployment.physical_ids("AWS::SageMaker::Endpoint")
    cdk("destroy", EXAMPLE_STACK, "--force", assembly=deployment.assembly, env=deployment.env)
    cloudformation, sagemaker = deployment.client("cloudformation"), deployment.client("sagemaker")
    live = [
        s["StackName"]
        for s in cloudformation.list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert EXAMPLE_STACK not in live
    names = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    assert _name(endpoint_arn) not in names
