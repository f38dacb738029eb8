"""ModelEndpoint: the resources it creates, how props shape them, and what it exposes.

One stack holds an endpoint per configuration; each has an explicit name so tests find its resources by
their properties (EndpointName, LogGroupName...), never by logical ID.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Capture, Match, Template

from sagemaker_constructs import InstanceType, ModelEndpoint, ModelEndpointProps, ProductionVariant
from tests.constructs.conftest import bucket_data, ecr_image, new_stack, only


@dataclass
class Rich:
    stack: cdk.Stack
    template: Template
    endpoints: dict[str, ModelEndpoint]


@pytest.fixture(scope="module")
def rich() -> Rich:
    stack = new_stack()
    data, image = bucket_data(stack), ecr_image(stack)
    vpc = ec2.Vpc.from_vpc_attributes(
        stack,
        "Vpc",
        vpc_id="vpc-0123",
        availability_zones=["us-east-1a", "us-east-1b"],
        private_subnet_ids=["subnet-0aaa", "subnet-0bbb"],
    )
    endpoints = {
        "basic": ModelEndpoint(stack, "Basic", model_data=data, image=image),
        "custom": ModelEndpoint(
            stack,
            "Custom",
            endpoint_name="custom-endpoint",
            model_data=data,
            image=image,
            instance_type=InstanceType.C5_XLARGE,
            initial_instance_count=2,
            variants=[
                ProductionVariant(
                    variant_name="Champion", initial_weight=3, environment={"ROLE": "champion"}
                ),
                ProductionVariant(
                    variant_name="Challenger",
                    instance_type=InstanceType.M6I_LARGE,
                    initial_instance_count=1,
                    initial_weight=1,
                    model_data=bucket_data(stack, "models/challenger.tar.gz"),
                ),
                ProductionVariant(variant_name="Legacy", model_name="legacy-model", initial_weight=1),
            ],
            environment={"LOG_LEVEL": "info", "ROLE": "default"},
            volume_size=cdk.Size.gibibytes(50),
            model_download_timeout=cdk.Duration.minutes(15),
            container_startup_health_check_timeout=cdk.Duration.minutes(10),
            tags={"team": "ml"},
            log_retention=logs.RetentionDays.TWO_YEARS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        ),
        "vpc": ModelEndpoint(
            stack, "Networked", endpoint_name="vpc-endpoint", model_data=data, image=image, vpc=vpc
        ),
        "existing": ModelEndpoint(
            stack,
            "ExistingOnly",
            endpoint_name="existing-only",
            variants=[ProductionVariant(variant_name="Old", model_name="old-model")],
        ),
        "gpu": ModelEndpoint(
            stack,
            "Gpu",
            endpoint_name="gpu-endpoint",
            model_data=data,
            image=image,
            instance_type=InstanceType.G5_XLARGE,
        ),
    }
    return Rich(stack, Template.from_stack(stack), endpoints)


def endpoint_config_of(template: Template, endpoint_name: str) -> Mapping[str, Any]:
    """The EndpointConfig the Endpoint named `endpoint_name` uses."""
    endpoints = template.find_resources(
        "AWS::SageMaker::Endpoint", {"Properties": {"EndpointName": endpoint_name}}
    )
    (endpoint,) = endpoints.values()
    config_id = endpoint["Properties"]["EndpointConfigName"]["Fn::GetAtt"][0]
    return template.find_resources("AWS::SageMaker::EndpointConfig")[config_id]


def variants_of(template: Template, endpoint_name: str) -> dict[str, Mapping[str, Any]]:
    config = endpoint_config_of(template, endpoint_name)
    return {v["VariantName"]: v for v in config["Properties"]["ProductionVariants"]}


def model_of(template: Template, endpoint_name: str, variant: str) -> Mapping[str, Any]:
    model_id = variants_of(template, endpoint_name)[variant]["ModelName"]["Fn::GetAtt"][0]
    return template.find_resources("AWS::SageMaker::Model")[model_id]


def log_group_named(template: Template, endpoint_name: str) -> tuple[str, Mapping[str, Any]]:
    name = f"/aws/sagemaker/Endpoints/{endpoint_name}"
    (found,) = template.find_resources("AWS::Logs::LogGroup", {"Properties": {"LogGroupName": name}}).items()
    return found


# --- what is created -------------------------------------------------------------------------------------


def test_single_variant_endpoint_creates_one_model_config_and_endpoint() -> None:
    stack = new_stack()
    ModelEndpoint(stack, "E", model_data=bucket_data(stack), image=ecr_image(stack))
    template = Template.from_stack(stack)
    for resource_type in (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
    ):
        template.resource_count_is(resource_type, 1)


def test_model_and_endpoint_config_names_are_generated(rich: Rich) -> None:
    for resource_type, name in (
        ("AWS::SageMaker::Model", "ModelName"),
        ("AWS::SageMaker::EndpointConfig", "EndpointConfigName"),
    ):
        assert all(name not in r["Properties"] for r in rich.template.find_resources(resource_type).values())


def test_generated_endpoint_name_is_valid_lower_case_and_deterministic(rich: Rich) -> None:
    name = rich.endpoints["basic"].physical_endpoint_name
    assert re.fullmatch(r"[a-z0-9](-*[a-z0-9])*", name)
    assert len(name) <= 63
    rich.template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": name})


def test_generated_endpoint_name_is_stable_across_apps() -> None:
    names = []
    for _ in range(2):
        stack = new_stack()
        names.append(
            ModelEndpoint(
                stack, "E", model_data=bucket_data(stack), image=ecr_image(stack)
            ).physical_endpoint_name
        )
    assert names[0] == names[1]


def test_generated_endpoint_name_differs_per_construct_path() -> None:
    stack = new_stack()
    a = ModelEndpoint(stack, "A", model_data=bucket_data(stack), image=ecr_image(stack))
    b = ModelEndpoint(stack, "B", model_data=bucket_data(stack), image=ecr_image(stack))
    assert a.physical_endpoint_name != b.physical_endpoint_name


def test_endpoint_uses_the_given_name(rich: Rich) -> None:
    rich.template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "custom-endpoint"})


def test_log_group_is_named_after_the_endpoint(rich: Rich) -> None:
    log_group_named(rich.template, "custom-endpoint")


def test_log_group_is_created_before_the_endpoint(rich: Rich) -> None:
    log_group_id, _ = log_group_named(rich.template, "custom-endpoint")
    (endpoint,) = rich.template.find_resources(
        "AWS::SageMaker::Endpoint", {"Properties": {"EndpointName": "custom-endpoint"}}
    ).values()
    assert log_group_id in endpoint["DependsOn"]


def test_log_group_keeps_logs_a_year_by_default(rich: Rich) -> None:
    _, log_group = log_group_named(rich.template, "vpc-endpoint")
    assert log_group["Properties"]["RetentionInDays"] == 365


def test_log_retention_prop_sets_the_retention(rich: Rich) -> None:
    _, log_group = log_group_named(rich.template, "custom-endpoint")
    assert log_group["Properties"]["RetentionInDays"] == 731


def test_log_group_is_encrypted_with_the_endpoint_key(rich: Rich) -> None:
    _, log_group = log_group_named(rich.template, "vpc-endpoint")
    config = endpoint_config_of(rich.template, "vpc-endpoint")
    assert log_group["Properties"]["KmsKeyId"] == config["Properties"]["KmsKeyId"]


def test_log_group_and_key_are_retained_by_default(rich: Rich) -> None:
    _, log_group = log_group_named(rich.template, "vpc-endpoint")
    assert log_group["DeletionPolicy"] == "Retain"


def test_removal_policy_prop_applies_to_the_log_group(rich: Rich) -> None:
    _, log_group = log_group_named(rich.template, "custom-endpoint")
    assert log_group["DeletionPolicy"] == "Delete"


def test_endpoint_config_encrypts_volumes_with_the_key(rich: Rich) -> None:
    key_id, attribute = endpoint_config_of(rich.template, "vpc-endpoint")["Properties"]["KmsKeyId"][
        "Fn::GetAtt"
    ]
    assert attribute == "Arn"
    assert key_id in rich.template.find_resources("AWS::KMS::Key")


# --- variants ------------------------------------------------------------------------------------------


def test_single_variant_is_named_all_traffic(rich: Rich) -> None:
    assert list(rich.endpoints["basic"].variant_names) == ["AllTraffic"]


def test_variants_carry_their_weights(rich: Rich) -> None:
    weights = {
        name: v["InitialVariantWeight"] for name, v in variants_of(rich.template, "custom-endpoint").items()
    }
    assert weights == {"Champion": 3, "Challenger": 1, "Legacy": 1}


def test_variant_inherits_the_endpoint_instance_type_and_count(rich: Rich) -> None:
    champion = variants_of(rich.template, "custom-endpoint")["Champion"]
    assert (champion["InstanceType"], champion["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)


def test_variant_overrides_instance_type_and_count(rich: Rich) -> None:
    challenger = variants_of(rich.template, "custom-endpoint")["Challenger"]
    assert (challenger["InstanceType"], challenger["InitialInstanceCount"]) == ("ml.m6i.large", 1)


def test_each_new_variant_gets_its_own_model(rich: Rich) -> None:
    champion = model_of(rich.template, "custom-endpoint", "Champion")
    challenger = model_of(rich.template, "custom-endpoint", "Challenger")
    assert (
        champion["Properties"]["PrimaryContainer"]["ModelDataUrl"] == "s3://model-bucket/models/model.tar.gz"
    )
    assert (
        challenger["Properties"]["PrimaryContainer"]["ModelDataUrl"]
        == "s3://model-bucket/models/challenger.tar.gz"
    )


def test_variant_can_serve_an_existing_model_by_name(rich: Rich) -> None:
    assert variants_of(rich.template, "custom-endpoint")["Legacy"]["ModelName"] == "legacy-model"


def test_endpoint_of_existing_models_only_creates_no_model_and_no_role(rich: Rich) -> None:
    endpoint = rich.endpoints["existing"]
    assert (endpoint.models, endpoint.role, endpoint.execution_role) == ({}, None, None)


def test_variant_environment_is_merged_over_the_endpoint_environment(rich: Rich) -> None:
    champion = model_of(rich.template, "custom-endpoint", "Champion")
    assert champion["Properties"]["PrimaryContainer"]["Environment"] == {
        "LOG_LEVEL": "info",
        "ROLE": "champion",
    }


def test_volume_size_and_timeouts_are_set_on_every_variant(rich: Rich) -> None:
    for name, variant in variants_of(rich.template, "custom-endpoint").items():
        settings = (
            variant.get("VolumeSizeInGB"),
            variant.get("ModelDataDownloadTimeoutInSeconds"),
            variant.get("ContainerStartupHealthCheckTimeoutInSeconds"),
        )
        assert settings == (50, 900, 600), name


def test_timeouts_are_left_to_sagemaker_by_default(rich: Rich) -> None:
    (variant,) = variants_of(rich.template, "vpc-endpoint").values()
    assert not {
        "VolumeSizeInGB",
        "ModelDataDownloadTimeoutInSeconds",
        "ContainerStartupHealthCheckTimeoutInSeconds",
    } & set(variant)


def test_tags_reach_the_endpoint_models_and_log_group(rich: Rich) -> None:
    tag = Match.array_with([{"Key": "team", "Value": "ml"}])
    rich.template.has_resource_properties(
        "AWS::SageMaker::Endpoint", {"EndpointName": "custom-endpoint", "Tags": tag}
    )
    assert model_of(rich.template, "custom-endpoint", "Champion")["Properties"]["Tags"] == [
        {"Key": "team", "Value": "ml"}
    ]
    assert log_group_named(rich.template, "custom-endpoint")[1]["Properties"]["Tags"] == [
        {"Key": "team", "Value": "ml"}
    ]


# --- instance storage ----------------------------------------------------------------------------------


def test_instance_storage_type_gets_no_kms_key_id(rich: Rich) -> None:
    assert "KmsKeyId" not in endpoint_config_of(rich.template, "gpu-endpoint")["Properties"]


def test_instance_storage_type_acknowledges_only_the_kms_rule_with_the_reason(rich: Rich) -> None:
    config = rich.endpoints["gpu"].endpoint_config
    acknowledged = {
        key: reason
        for entry in config.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for key, reason in entry.data.items()
    }
    assert sorted(acknowledged) == [
        f"Annotation::{pack}-SageMakerEndpointConfigurationKMSKeyConfigured"
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321")
    ]
    assert all(
        "ml.g5.xlarge" in reason and "refuses a KmsKeyId" in reason for reason in acknowledged.values()
    )


# --- network -------------------------------------------------------------------------------------------


def test_vpc_puts_the_model_in_the_selected_subnets(rich: Rich) -> None:
    (model,) = [
        m
        for m in rich.template.find_resources("AWS::SageMaker::Model").values()
        if "VpcConfig" in m["Properties"]
    ]
    assert model["Properties"]["VpcConfig"]["Subnets"] == ["subnet-0aaa", "subnet-0bbb"]


def test_vpc_without_security_groups_creates_one_allowing_only_outbound_https(rich: Rich) -> None:
    _, group = only(rich.template, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in group["Properties"]
    assert group["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to S3, ECR and CloudWatch (VPC endpoints or NAT)",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_model_uses_the_created_security_group(rich: Rich) -> None:
    group_id, _ = only(rich.template, "AWS::EC2::SecurityGroup")
    rich.template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "VpcConfig": {
                "SecurityGroupIds": [{"Fn::GetAtt": [group_id, "GroupId"]}],
                "Subnets": Match.any_value(),
            }
        },
    )


def test_models_without_a_vpc_have_no_vpc_config(rich: Rich) -> None:
    assert "VpcConfig" not in model_of(rich.template, "custom-endpoint", "Champion")["Properties"]


# --- outputs, grants, metrics -------------------------------------------------------------------------


def test_outputs_name_and_arn_of_the_endpoint(rich: Rich) -> None:
    outputs = rich.template.find_outputs("*")
    values = [json.dumps(o["Value"]) for o in outputs.values()]
    assert sum('"EndpointName"]' in v for v in values) == 5
    assert sum('"EndpointArn"]' in v for v in values) == 5


def test_grant_invoke_allows_invoke_endpoint_on_this_endpoint_only() -> None:
    stack = new_stack()
    endpoint = ModelEndpoint(stack, "E", model_data=bucket_data(stack), image=ecr_image(stack))
    client = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
    endpoint.grant_invoke(client)
    arn = Capture()
    Template.from_stack(stack).has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [{"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": arn}],
                "Version": Match.any_value(),
            }
        },
    )
    assert arn.as_object()["Fn::GetAtt"][1] == "EndpointArn"


def test_invoke_policy_statement_is_scoped_to_the_endpoint(rich: Rich) -> None:
    statement = rich.stack.resolve(rich.endpoints["basic"].invoke_policy_statement().to_statement_json())
    assert (statement["Action"], statement["Resource"]["Fn::GetAtt"][1]) == (
        "sagemaker:InvokeEndpoint",
        "EndpointArn",
    )


@pytest.mark.parametrize(
    ("method", "namespace", "metric_name", "statistic"),
    [
        ("metric_invocations", "AWS/SageMaker", "Invocations", "Sum"),
        ("metric_invocations_per_instance", "AWS/SageMaker", "InvocationsPerInstance", "Sum"),
        ("metric_invocation_4xx_errors", "AWS/SageMaker", "Invocation4XXErrors", "Sum"),
        ("metric_invocation_5xx_errors", "AWS/SageMaker", "Invocation5XXErrors", "Sum"),
        ("metric_model_latency", "AWS/SageMaker", "ModelLatency", "Average"),
        ("metric_overhead_latency", "AWS/SageMaker", "OverheadLatency", "Average"),
        ("metric_cpu_utilization", "/aws/sagemaker/Endpoints", "CPUUtilization", "Average"),
        ("metric_memory_utilization", "/aws/sagemaker/Endpoints", "MemoryUtilization", "Average"),
        ("metric_disk_utilization", "/aws/sagemaker/Endpoints", "DiskUtilization", "Average"),
    ],
)
def test_metric_helpers_name_namespace_metric_and_statistic(
    rich: Rich, method: str, namespace: str, metric_name: str, statistic: str
) -> None:
    metric = getattr(rich.endpoints["custom"], method)(variant_name="Challenger")
    assert (metric.namespace, metric.metric_name, metric.statistic) == (namespace, metric_name, statistic)
    dimensions = rich.stack.resolve(metric.dimensions)
    assert dimensions["VariantName"] == "Challenger"
    assert dimensions["EndpointName"]["Fn::GetAtt"][1] == "EndpointName"


def test_metrics_default_to_the_first_variant(rich: Rich) -> None:
    assert (rich.endpoints["custom"].metric_invocations().dimensions or {})["VariantName"] == "Champion"


def test_imported_endpoint_has_metrics_for_its_variants() -> None:
    stack = new_stack()
    imported = ModelEndpoint.from_endpoint_name(
        stack, "Imported", "Prod-Endpoint", variant_names=["Blue", "Green"]
    )
    metric = imported.metric_model_latency(variant_name="Green")
    assert metric.dimensions == {"EndpointName": "Prod-Endpoint", "VariantName": "Green"}
    assert (imported.metric_invocations().dimensions or {})["VariantName"] == "Blue"


def test_imported_endpoint_arn_uses_the_lower_case_name() -> None:
    stack = new_stack()
    imported = ModelEndpoint.from_endpoint_name(stack, "Imported", "Prod-Endpoint")
    resolved = json.dumps(stack.resolve(imported.endpoint_arn))
    assert ":endpoint/prod-endpoint" in resolved


def test_imported_endpoint_grant_invoke_names_its_arn() -> None:
    stack = new_stack()
    imported = ModelEndpoint.from_endpoint_name(stack, "Imported", "prod")
    role = iam.Role(stack, "Client", assumed_by=iam.AccountRootPrincipal())
    imported.grant_invoke(role)
    resource = Capture()
    Template.from_stack(stack).has_resource_properties(
        "AWS::IAM::Policy", {"PolicyDocument": {"Statement": [Match.object_like({"Resource": resource})]}}
    )
    assert json.dumps(resource.as_object()).endswith(':endpoint/prod"]]}')


# --- read-only attributes ---------------------------------------------------------------------------------


def test_attributes_expose_what_was_created(rich: Rich) -> None:
    endpoint = rich.endpoints["custom"]
    assert sorted(endpoint.models) == ["Challenger", "Champion"]
    assert endpoint.role is not None
    assert endpoint.execution_role is not None
    assert endpoint.log_group.node.scope is endpoint
    assert endpoint.key.node.scope is not None
    assert endpoint.endpoint.node.scope is endpoint
    assert endpoint.endpoint_config.node.scope is endpoint


def test_vpc_endpoint_exposes_its_security_groups(rich: Rich) -> None:
    assert len(rich.endpoints["vpc"].security_groups) == 1
    assert not rich.endpoints["basic"].security_groups


def test_props_typed_dict_matches_the_constructor() -> None:
    parameters = inspect.signature(ModelEndpoint.__init__).parameters
    keyword_only = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only == set(ModelEndpointProps.__annotations__)
