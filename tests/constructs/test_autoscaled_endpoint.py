"""AutoScaledEndpoint: scalable targets per variant, tracking policies, schedules, the deployer payload."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk.assertions import Match, Template

from sagemaker_constructs import (
    AutoScaledEndpoint,
    InstanceType,
    ModelEndpoint,
    ProductionVariant,
    ScheduledCapacity,
    invocations_target,
)
from tests.constructs.conftest import bucket_data, ecr_image, new_stack

PAYLOAD: dict[str, Any] = {
    "endpointName": "from-payload",
    "productionVariants": [
        {
            "ModelName": "legacy-blue",
            "VariantName": "Blue",
            "InstanceType": "ml.m5.xlarge",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 0.75,
            "AcceleratorType": None,
        },
        {"ModelName": "legacy-green", "VariantName": "Green", "InstanceType": "ml.c5.large"},
    ],
    "autoscalingMinCapacity": 1,
    "autoscalingMaxCapacity": 7,
    "targetTrackingScalingPolicyConfiguration": {
        "TargetValue": 450.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleOutCooldown": 45,
        "ScaleInCooldown": 900,
        "DisableScaleIn": True,
    },
}


@dataclass
class Scaling:
    stack: cdk.Stack
    template: Template
    endpoints: dict[str, AutoScaledEndpoint]


@pytest.fixture(scope="module")
def scaling() -> Scaling:
    stack = new_stack()
    data, image = bucket_data(stack), ecr_image(stack)
    endpoints = {
        "full": AutoScaledEndpoint(
            stack,
            "Full",
            endpoint_name="full",
            model_data=data,
            image=image,
            instance_type=InstanceType.C6I_LARGE,
            variants=[
                ProductionVariant(variant_name="A"),
                ProductionVariant(variant_name="B", initial_weight=0.5),
            ],
            min_capacity=1,
            max_capacity=5,
            max_requests_per_second_per_instance=30,
            safety_factor=0.5,
            cpu_utilization_target=60,
            scale_in_cooldown=cdk.Duration.minutes(10),
            scale_out_cooldown=cdk.Duration.minutes(1),
            disable_scale_in=True,
            scheduled_capacity=[
                ScheduledCapacity(
                    schedule=appscaling.Schedule.cron(hour="8", minute="0", week_day="MON-FRI"),
                    min_capacity=3,
                    max_capacity=8,
                    time_zone=cdk.TimeZone.EUROPE_BERLIN,
                ),
                ScheduledCapacity(schedule=appscaling.Schedule.cron(hour="20", minute="0"), min_capacity=1),
            ],
        ),
        "defaults": AutoScaledEndpoint(
            stack, "Defaults", endpoint_name="defaults", model_data=data, image=image
        ),
        "per_minute": AutoScaledEndpoint(
            stack,
            "PerMinute",
            endpoint_name="per-minute",
            model_data=data,
            image=image,
            initial_instance_count=3,
            min_capacity=2,
            target_invocations_per_instance=250,
        ),
        "payload": AutoScaledEndpoint.from_deployer_payload(stack, "Payload", PAYLOAD),
    }
    return Scaling(stack, Template.from_stack(stack), endpoints)


def targets_of(template: Template, endpoint_name: str) -> dict[str, dict[str, Any]]:
    """variant name -> (logical id, target) of the endpoint's scalable targets, found through ResourceId."""
    endpoint_ids = set(
        template.find_resources("AWS::SageMaker::Endpoint", {"Properties": {"EndpointName": endpoint_name}})
    )
    found = {}
    for target_id, target in template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").items():
        _, parts = target["Properties"]["ResourceId"]["Fn::Join"]
        if parts[1]["Fn::GetAtt"][0] in endpoint_ids:
            found[parts[2].removeprefix("/variant/")] = {"id": target_id, **target}
    return found


def policies_of(template: Template, endpoint_name: str, variant: str) -> list[dict[str, Any]]:
    target_id = targets_of(template, endpoint_name)[variant]["id"]
    return [
        p["Properties"]
        for p in template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    ]


def tracking(template: Template, endpoint_name: str, variant: str, kind: str) -> dict[str, Any]:
    (config,) = [
        p["TargetTrackingScalingPolicyConfiguration"]
        for p in policies_of(template, endpoint_name, variant)
        if kind in p["TargetTrackingScalingPolicyConfiguration"]
    ]
    return dict(config)


def test_every_variant_gets_a_scalable_target(scaling: Scaling) -> None:
    assert sorted(targets_of(scaling.template, "full")) == ["A", "B"]


def test_target_resource_id_references_the_endpoint_so_it_is_created_after_it(scaling: Scaling) -> None:
    target = targets_of(scaling.template, "full")["A"]
    _, parts = target["Properties"]["ResourceId"]["Fn::Join"]
    assert parts[0] == "endpoint/"
    assert parts[1]["Fn::GetAtt"][1] == "EndpointName"
    assert parts[2] == "/variant/A"


def test_target_scales_the_variant_instance_count(scaling: Scaling) -> None:
    properties = targets_of(scaling.template, "full")["A"]["Properties"]
    assert (properties["ServiceNamespace"], properties["ScalableDimension"]) == (
        "sagemaker",
        "sagemaker:variant:DesiredInstanceCount",
    )


def test_capacity_range_is_applied(scaling: Scaling) -> None:
    properties = targets_of(scaling.template, "full")["B"]["Properties"]
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == (1, 5)


def test_default_max_capacity_is_twice_the_larger_of_min_and_initial(scaling: Scaling) -> None:
    assert targets_of(scaling.template, "defaults")["AllTraffic"]["Properties"]["MaxCapacity"] == 2
    assert targets_of(scaling.template, "per-minute")["AllTraffic"]["Properties"]["MaxCapacity"] == 6


def test_targets_use_the_service_linked_role(scaling: Scaling) -> None:
    role = json.dumps(targets_of(scaling.template, "full")["A"]["Properties"]["RoleARN"])
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in role
    assert (
        len(
            scaling.template.find_resources(
                "AWS::IAM::Role",
                {
                    "Properties": {
                        "AssumeRolePolicyDocument": {
                            "Statement": [
                                Match.object_like(
                                    {"Principal": {"Service": "application-autoscaling.amazonaws.com"}}
                                )
                            ]
                        }
                    }
                },
            )
        )
        == 0
    )


def test_invocations_target_follows_the_aws_formula(scaling: Scaling) -> None:
    config = tracking(scaling.template, "full", "A", "PredefinedMetricSpecification")
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert config["TargetValue"] == 30 * 0.5 * 60


def test_default_target_is_twenty_requests_per_second_at_half_load(scaling: Scaling) -> None:
    assert (
        tracking(scaling.template, "defaults", "AllTraffic", "PredefinedMetricSpecification")["TargetValue"]
        == 600
    )


def test_per_minute_target_is_used_as_given(scaling: Scaling) -> None:
    assert (
        tracking(scaling.template, "per-minute", "AllTraffic", "PredefinedMetricSpecification")["TargetValue"]
        == 250
    )


def test_cpu_target_tracks_average_cpu_of_the_variant(scaling: Scaling) -> None:
    config = tracking(scaling.template, "full", "B", "CustomizedMetricSpecification")
    metric = config["CustomizedMetricSpecification"]
    assert (metric["Namespace"], metric["MetricName"], metric["Statistic"], config["TargetValue"]) == (
        "/aws/sagemaker/Endpoints",
        "CPUUtilization",
        "Average",
        60,
    )
    dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
    assert dimensions["VariantName"] == "B"
    assert dimensions["EndpointName"]["Fn::GetAtt"][1] == "EndpointName"


def test_without_cpu_target_there_is_one_policy_per_variant(scaling: Scaling) -> None:
    assert len(policies_of(scaling.template, "defaults", "AllTraffic")) == 1


def test_cooldowns_and_disable_scale_in_apply_to_every_policy(scaling: Scaling) -> None:
    for policy in policies_of(scaling.template, "full", "A"):
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        assert (config["ScaleInCooldown"], config["ScaleOutCooldown"], config["DisableScaleIn"]) == (
            600,
            60,
            True,
        )


def test_cooldowns_are_left_to_the_service_by_default(scaling: Scaling) -> None:
    config = tracking(scaling.template, "defaults", "AllTraffic", "PredefinedMetricSpecification")
    assert not {"ScaleInCooldown", "ScaleOutCooldown", "DisableScaleIn"} & set(config)


def test_scheduled_capacity_changes_every_variant(scaling: Scaling) -> None:
    for target in targets_of(scaling.template, "full").values():
        actions = target["Properties"]["ScheduledActions"]
        assert [a["Schedule"] for a in actions] == ["cron(0 8 ? * MON-FRI *)", "cron(0 20 * * ? *)"]
        assert actions[0]["ScalableTargetAction"] == {"MinCapacity": 3, "MaxCapacity": 8}
        assert actions[0]["Timezone"] == "Europe/Berlin"
        assert actions[1]["ScalableTargetAction"] == {"MinCapacity": 1}


def test_invocations_target_formula() -> None:
    assert invocations_target(10) == 300
    assert invocations_target(10, 1.0) == 600


def test_attributes_expose_endpoint_targets_and_policies(scaling: Scaling) -> None:
    full = scaling.endpoints["full"]
    assert isinstance(full.endpoint, ModelEndpoint)
    assert sorted(full.scalable_targets) == ["A", "B"]
    assert [len(p) for p in full.scaling_policies.values()] == [2, 2]
    assert full.target_invocations_per_instance == 900


# --- the deployer payload --------------------------------------------------------------------------------


def test_payload_endpoint_name_is_used(scaling: Scaling) -> None:
    scaling.template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "from-payload"})


def test_payload_variants_serve_the_named_models(scaling: Scaling) -> None:
    scaling.template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                {
                    "ModelName": "legacy-blue",
                    "VariantName": "Blue",
                    "InstanceType": "ml.m5.xlarge",
                    "InitialInstanceCount": 2,
                    "InitialVariantWeight": 0.75,
                },
                {
                    "ModelName": "legacy-green",
                    "VariantName": "Green",
                    "InstanceType": "ml.c5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1,
                },
            ],
            "KmsKeyId": Match.any_value(),
        },
    )


def test_payload_creates_no_model_and_no_execution_role(scaling: Scaling) -> None:
    endpoint = scaling.endpoints["payload"].endpoint
    assert endpoint.models == {}
    assert endpoint.role is None


def test_payload_capacity_is_applied_to_every_variant(scaling: Scaling) -> None:
    for target in targets_of(scaling.template, "from-payload").values():
        assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 7)


def test_payload_tracking_configuration_is_mapped(scaling: Scaling) -> None:
    config = tracking(scaling.template, "from-payload", "Green", "PredefinedMetricSpecification")
    assert config == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "TargetValue": 450,
        "ScaleOutCooldown": 45,
        "ScaleInCooldown": 900,
        "DisableScaleIn": True,
    }


def test_payload_accepts_extra_endpoint_props() -> None:
    stack = new_stack()
    endpoint = AutoScaledEndpoint.from_deployer_payload(stack, "P", PAYLOAD, tags={"team": "ml"})
    Template.from_stack(stack).has_resource_properties(
        "AWS::SageMaker::Endpoint", {"EndpointName": "from-payload", "Tags": [{"Key": "team", "Value": "ml"}]}
    )
    assert endpoint.endpoint_name == endpoint.endpoint.endpoint_name
