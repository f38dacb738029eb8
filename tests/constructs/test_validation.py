"""Invalid configurations raise one ConfigurationError that names each prop, its value and what is allowed.

Every test here changes one prop of an otherwise valid endpoint and matches the prop's name in the message.
Nothing is synthesized: validation runs in the constructor, before any resource or asset is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam

from sagemaker_constructs import (
    AutoScaledEndpoint,
    ConfigurationError,
    ContainerImage,
    InstanceType,
    ModelData,
    ModelEndpoint,
    ProductionVariant,
    ScheduledCapacity,
)
from tests.constructs.conftest import bucket, bucket_data, ecr_image, new_stack


def endpoint(**props: Any) -> ModelEndpoint:
    """A ModelEndpoint with valid defaults, overridden by `props`."""
    stack = props.pop("stack", None) or new_stack()
    defaults: dict[str, Any] = {"model_data": bucket_data(stack), "image": ecr_image(stack)}
    return ModelEndpoint(stack, "Endpoint", **{**defaults, **props})


def scaled(**props: Any) -> AutoScaledEndpoint:
    stack = props.pop("stack", None) or new_stack()
    defaults: dict[str, Any] = {"model_data": bucket_data(stack), "image": ecr_image(stack)}
    return AutoScaledEndpoint(stack, "Scaled", **{**defaults, **props})


def variant(name: str = "A", **props: Any) -> ProductionVariant:
    return ProductionVariant(variant_name=name, **props)


VALID_PAYLOAD: dict[str, Any] = {
    "endpointName": "legacy",
    "productionVariants": [
        {"ModelName": "m", "VariantName": "Blue", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    ],
    "autoscalingMinCapacity": 1,
    "autoscalingMaxCapacity": 2,
    "targetTrackingScalingPolicyConfiguration": {
        "TargetValue": 100.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    },
}


def from_payload(**changes: Any) -> AutoScaledEndpoint:
    payload = {**VALID_PAYLOAD, **changes}
    return AutoScaledEndpoint.from_deployer_payload(new_stack(), "Legacy", payload)


def with_variant(**changes: Any) -> AutoScaledEndpoint:
    variant_ = {**VALID_PAYLOAD["productionVariants"][0], **changes}
    return from_payload(productionVariants=[variant_])


def with_tracking(**changes: Any) -> AutoScaledEndpoint:
    tracking = {**VALID_PAYLOAD["targetTrackingScalingPolicyConfiguration"], **changes}
    return from_payload(targetTrackingScalingPolicyConfiguration=tracking)


# --- endpoint name -----------------------------------------------------------------------------------


def test_endpoint_name_longer_than_63_characters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"endpoint_name='a{64}': .*1-63 characters"):
        endpoint(endpoint_name="a" * 64)


def test_endpoint_name_with_an_underscore_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"endpoint_name='my_endpoint': .*letters, digits and hyphens"
    ):
        endpoint(endpoint_name="my_endpoint")


def test_endpoint_name_starting_with_a_hyphen_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"endpoint_name='-endpoint'"):
        endpoint(endpoint_name="-endpoint")


# --- instances -----------------------------------------------------------------------------------------


def test_zero_initial_instances_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"initial_instance_count=0: must be at least 1"):
        endpoint(initial_instance_count=0)


def test_fractional_initial_instances_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"initial_instance_count=1.5: a whole number"):
        endpoint(initial_instance_count=1.5)


def test_instance_type_without_ml_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"instance_type='m5.large': .*'ml.<family>.<size>'"):
        endpoint(instance_type=InstanceType.of("m5.large"))


def test_instance_type_given_as_a_plain_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"instance_type='ml.m5.large': an InstanceType"):
        endpoint(instance_type="ml.m5.large")


# --- variants ------------------------------------------------------------------------------------------


def test_empty_variant_list_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants=\[\]: at least one ProductionVariant"):
        endpoint(variants=[])


def test_more_than_ten_variants_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants=.*at most 10 variants"):
        endpoint(variants=[variant(f"V{i}") for i in range(11)])


def test_duplicate_variant_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[1\]\.variant_name='A': .*unique"):
        endpoint(variants=[variant("A"), variant("A")])


def test_variant_name_with_a_space_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.variant_name='blue green'"):
        endpoint(variants=[variant("blue green")])


def test_negative_variant_weight_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.initial_weight=-1: must be at least 0"):
        endpoint(variants=[variant("A", initial_weight=-1)])


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"initial_weight=\[0, 0\]: at least one variant"):
        endpoint(variants=[variant("A", initial_weight=0), variant("B", initial_weight=0)])


def test_variant_with_both_model_name_and_model_data_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.model_name='existing': .*not both"):
        endpoint(stack=stack, variants=[variant("A", model_name="existing", model_data=bucket_data(stack))])


def test_variant_without_model_data_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.model_data=None: required"):
        ModelEndpoint(stack, "E", image=ecr_image(stack), variants=[variant("A")])


def test_endpoint_without_image_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"\bimage=None: required"):
        ModelEndpoint(stack, "E", model_data=bucket_data(stack))


def test_endpoint_without_model_data_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"\bmodel_data=None: required"):
        ModelEndpoint(stack, "E", image=ecr_image(stack))


def test_invalid_existing_model_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.model_name='my_model'"):
        endpoint(model_data=None, image=None, variants=[variant("A", model_name="my_model")])


# --- storage and timeouts ----------------------------------------------------------------------------


def test_zero_volume_size_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"volume_size=0 GiB: a whole number of GiB from 1 to 512"):
        endpoint(volume_size=cdk.Size.gibibytes(0))


def test_volume_size_above_512_gib_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"volume_size=513 GiB"):
        endpoint(volume_size=cdk.Size.gibibytes(513))


def test_fractional_volume_size_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"volume_size=1.5 GiB"):
        endpoint(volume_size=cdk.Size.mebibytes(1536))


def test_volume_size_with_an_instance_storage_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"volume_size=.*ml.g5.xlarge use NVMe instance storage"):
        endpoint(volume_size=cdk.Size.gibibytes(30), instance_type=InstanceType.G5_XLARGE)


def test_model_download_timeout_below_a_minute_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"model_download_timeout=30 seconds: must be at least 60"):
        endpoint(model_download_timeout=cdk.Duration.seconds(30))


def test_model_download_timeout_above_an_hour_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"model_download_timeout=2 hours: .*at most 3600 seconds"):
        endpoint(model_download_timeout=cdk.Duration.hours(2))


def test_health_check_timeout_below_60_seconds_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"container_startup_health_check_timeout=59 seconds"):
        endpoint(container_startup_health_check_timeout=cdk.Duration.seconds(59))


def test_health_check_timeout_above_3600_seconds_is_refused() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"container_startup_health_check_timeout=1 hour 1 second: .*at most 3600 seconds",
    ):
        endpoint(container_startup_health_check_timeout=cdk.Duration.seconds(3601))


# --- environment, network, role, tags ------------------------------------------------------------------


def test_environment_name_starting_with_a_digit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"environment='1BAD': variable names"):
        endpoint(environment={"1BAD": "x"})


def test_environment_value_over_1024_characters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"environment\['KEY'\]='1025 characters'"):
        endpoint(environment={"KEY": "x" * 1025})


def test_more_than_100_environment_variables_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"environment='101 variables'"):
        endpoint(environment={f"V{i}": "x" for i in range(101)})


def test_invalid_variant_environment_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.environment='BAD-NAME'"):
        endpoint(variants=[variant("A", environment={"BAD-NAME": "x"})])


def test_subnet_selection_without_a_vpc_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"vpc_subnets='given without vpc'"):
        endpoint(vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))


def test_security_groups_without_a_vpc_are_refused() -> None:
    stack = new_stack()
    group = ec2.SecurityGroup.from_security_group_id(stack, "Sg", "sg-0123456789abcdef0")
    with pytest.raises(ConfigurationError, match=r"security_groups='given without vpc'"):
        endpoint(stack=stack, security_groups=[group])


def test_more_than_five_security_groups_are_refused() -> None:
    stack = new_stack()
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-1", availability_zones=["a"], private_subnet_ids=["subnet-1"]
    )
    groups = [ec2.SecurityGroup.from_security_group_id(stack, f"Sg{i}", f"sg-{i}") for i in range(6)]
    with pytest.raises(ConfigurationError, match=r"security_groups=6: SageMaker accepts 1-5"):
        endpoint(stack=stack, vpc=vpc, security_groups=groups)


def test_permissions_boundary_with_a_supplied_role_is_refused() -> None:
    stack = new_stack()
    role = iam.Role.from_role_name(stack, "Role", "existing")
    boundary = iam.ManagedPolicy.from_managed_policy_name(stack, "Boundary", "boundary")
    with pytest.raises(ConfigurationError, match=r"permissions_boundary='given with role'"):
        endpoint(stack=stack, role=role, permissions_boundary=boundary)


def test_tag_key_with_aws_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"tags='aws:team': .*must not start with 'aws:'"):
        endpoint(tags={"aws:team": "x"})


def test_tag_value_over_256_characters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"tags\['team'\]=.*at most 256"):
        endpoint(tags={"team": "x" * 257})


# --- sources ---------------------------------------------------------------------------------------------


def test_bucket_key_with_a_wildcard_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"model_data='models/\*': .*key of one object"):
        endpoint(stack=stack, model_data=ModelData.from_bucket(bucket(stack), "models/*"))


def test_empty_s3_prefix_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"model_data='/': .*key prefix"):
        endpoint(stack=stack, model_data=ModelData.from_s3_prefix(bucket(stack), ""))


def test_missing_model_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"model_data='.*nope': .*existing directory"):
        endpoint(model_data=ModelData.from_directory(tmp_path / "nope"))


def test_archive_that_is_not_a_tar_gz_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.zip").write_bytes(b"zip")
    with pytest.raises(ConfigurationError, match=r"model_data='.*model.zip': .*\.tar\.gz"):
        endpoint(model_data=ModelData.from_archive(tmp_path / "model.zip"))


def test_image_directory_without_a_dockerfile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"image='.*': .*directory with a Dockerfile"):
        endpoint(image=ContainerImage.from_directory(tmp_path))


def test_requirement_with_an_environment_marker_is_refused() -> None:
    image = ContainerImage.from_bundled_server(model_requirements=['numpy; python_version < "3.12"'])
    with pytest.raises(ConfigurationError, match=r"model_requirements=\['numpy; .*plain pip requirement"):
        endpoint(image=image)


def test_missing_requirements_file_is_refused(tmp_path: Path) -> None:
    image = ContainerImage.from_bundled_server(requirements_file=tmp_path / "missing.txt")
    with pytest.raises(ConfigurationError, match=r"requirements_file='.*missing.txt': an existing"):
        endpoint(image=image)


def test_requirements_file_with_an_include_is_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.9.1\n-r other.txt\n")
    image = ContainerImage.from_bundled_server(requirements_file=tmp_path / "requirements.txt")
    with pytest.raises(ConfigurationError, match=r"requirements_file=.*requirements.txt:2: '-r other.txt'"):
        endpoint(image=image)


def test_missing_pip_ca_bundle_is_refused(tmp_path: Path) -> None:
    image = ContainerImage.from_bundled_server(pip_ca_bundle=tmp_path / "ca.pem")
    with pytest.raises(ConfigurationError, match=r"pip_ca_bundle='.*ca.pem'"):
        endpoint(image=image)


def test_image_tag_with_a_space_is_refused() -> None:
    stack = new_stack()
    with pytest.raises(ConfigurationError, match=r"image='bad tag': an image tag"):
        endpoint(stack=stack, image=ecr_image(stack, tag="bad tag"))


# --- autoscaling ---------------------------------------------------------------------------------------


def test_zero_min_capacity_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"min_capacity=0: must be at least 1"):
        scaled(min_capacity=0)


def test_max_capacity_below_min_capacity_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"max_capacity=2: must be at least min_capacity \(3\)"):
        scaled(min_capacity=3, max_capacity=2, initial_instance_count=3)


def test_initial_count_outside_the_capacity_range_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"initial_instance_count=5: must lie within .*\(1\.\.4\)"):
        scaled(initial_instance_count=5, max_capacity=4)


def test_burstable_instance_type_with_autoscaling_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"instance_type='ml.t3.medium': burstable"):
        scaled(instance_type=InstanceType.T3_MEDIUM)


def test_burstable_variant_with_autoscaling_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"variants\[0\]\.instance_type='ml.t2.medium': burstable"):
        scaled(variants=[variant("A", instance_type=InstanceType.T2_MEDIUM)])


def test_zero_invocations_target_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"target_invocations_per_instance=0: must be greater than 0"
    ):
        scaled(target_invocations_per_instance=0)


def test_target_and_requests_per_second_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"target_invocations_per_instance=100: give either"):
        scaled(target_invocations_per_instance=100, max_requests_per_second_per_instance=10)


def test_negative_requests_per_second_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"max_requests_per_second_per_instance=-5"):
        scaled(max_requests_per_second_per_instance=-5)


def test_safety_factor_above_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"safety_factor=1.5: must be greater than 0 and at most 1"):
        scaled(safety_factor=1.5)


def test_zero_cpu_target_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"cpu_utilization_target=0: must be greater than 0"):
        scaled(cpu_utilization_target=0)


def test_scheduled_change_without_capacity_is_refused() -> None:
    change = ScheduledCapacity(schedule=appscaling.Schedule.rate(cdk.Duration.hours(1)))
    with pytest.raises(ConfigurationError, match=r"scheduled_capacity\[0\]='no capacity'"):
        scaled(scheduled_capacity=[change])


def test_scheduled_min_above_max_is_refused() -> None:
    change = ScheduledCapacity(
        schedule=appscaling.Schedule.rate(cdk.Duration.hours(1)), min_capacity=4, max_capacity=2
    )
    with pytest.raises(
        ConfigurationError, match=r"scheduled_capacity\[0\]\.max_capacity=2: must be at least its"
    ):
        scaled(scheduled_capacity=[change])


def test_scheduled_min_of_zero_is_refused() -> None:
    change = ScheduledCapacity(schedule=appscaling.Schedule.rate(cdk.Duration.hours(1)), min_capacity=0)
    with pytest.raises(ConfigurationError, match=r"scheduled_capacity\[0\]\.min_capacity=0"):
        scaled(scheduled_capacity=[change])


# --- the older deployer's payload ------------------------------------------------------------------------


def test_elastic_inference_accelerator_is_refused_as_discontinued() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"productionVariants\[0\]\.AcceleratorType='ml.eia2.medium': Amazon Elastic Inference is "
        r"discontinued",
    ):
        with_variant(AcceleratorType="ml.eia2.medium")


def test_unknown_payload_field_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"endpointConfigName='x': not a field of the deployer payload"
    ):
        from_payload(endpointConfigName="x")


def test_unknown_variant_field_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"productionVariants\[0\]\.ServerlessConfig=.*not a production-variant"
    ):
        with_variant(ServerlessConfig={})


def test_variant_without_model_name_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"productionVariants\[0\]\.ModelName=None: a non-empty string"
    ):
        with_variant(ModelName=None)


def test_missing_production_variants_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"productionVariants=None: a non-empty list"):
        from_payload(productionVariants=None)


def test_other_predefined_metric_is_refused() -> None:
    spec = {"PredefinedMetricType": "SageMakerVariantProvisionedConcurrencyUtilization"}
    with pytest.raises(
        ConfigurationError, match=r"PredefinedMetricType='SageMakerVariantProvisionedConcurrency"
    ):
        with_tracking(PredefinedMetricSpecification=spec)


def test_negative_scale_in_cooldown_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"ScaleInCooldown=-1: a whole number of seconds, 0 or more"):
        with_tracking(ScaleInCooldown=-1)


def test_negative_scale_out_cooldown_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"ScaleOutCooldown=-60"):
        with_tracking(ScaleOutCooldown=-60)


def test_non_boolean_disable_scale_in_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"DisableScaleIn='yes': true or false"):
        with_tracking(DisableScaleIn="yes")


def test_payload_target_value_of_zero_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r"target_invocations_per_instance=0.0: must be greater than 0"
    ):
        with_tracking(TargetValue=0.0)


# --- one error for many problems; tokens pass ------------------------------------------------------------


def test_one_error_lists_every_problem() -> None:
    with pytest.raises(ConfigurationError) as caught:
        endpoint(
            endpoint_name="bad_name",
            initial_instance_count=0,
            volume_size=cdk.Size.gibibytes(0),
            model_download_timeout=cdk.Duration.seconds(1),
        )
    props = [p.prop for p in caught.value.problems]
    assert props == ["initial_instance_count", "endpoint_name", "volume_size", "model_download_timeout"]
    assert "4 configuration problems" in str(caught.value)


def test_scaling_and_endpoint_problems_come_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        scaled(endpoint_name="bad_name", min_capacity=0, safety_factor=2)
    assert {p.prop for p in caught.value.problems} == {"endpoint_name", "min_capacity", "safety_factor"}


def test_payload_problems_and_endpoint_problems_come_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        from_payload(
            endpointName="bad_name",
            productionVariants=[
                {**VALID_PAYLOAD["productionVariants"][0], "AcceleratorType": "ml.eia1.medium"}
            ],
        )
    assert {p.prop for p in caught.value.problems} == {
        "endpoint_name",
        "productionVariants[0].AcceleratorType",
    }


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="endpoint_name"):
        endpoint(endpoint_name="bad_name")


def test_unresolved_tokens_pass_validation() -> None:
    stack = new_stack()
    count = cdk.CfnParameter(stack, "Count", type="Number").value_as_number
    name = cdk.CfnParameter(stack, "Name").value_as_string
    seconds = cdk.CfnParameter(stack, "Seconds", type="Number").value_as_number
    gib = cdk.CfnParameter(stack, "Gib", type="Number").value_as_number
    kind = cdk.CfnParameter(stack, "Kind").value_as_string
    scaled(
        stack=stack,
        endpoint_name=name,
        initial_instance_count=count,
        min_capacity=count,
        max_capacity=count,
        instance_type=InstanceType.of(kind),
        volume_size=cdk.Size.gibibytes(gib),
        model_download_timeout=cdk.Duration.seconds(seconds),
        container_startup_health_check_timeout=cdk.Duration.seconds(seconds),
        target_invocations_per_instance=count,
        environment={"KEY": name},
        tags={"team": name},
    )
