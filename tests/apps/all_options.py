"""A test app that uses every option of the constructs, as a team with existing infrastructure would.

Existing infrastructure is imported, the way a platform team hands it over: a VPC with two private subnets,
a model bucket encrypted with its own KMS key, an ECR repository of serving images, the legacy SageMaker
models of an older Step-Functions deployer, and a permissions boundary. IDs come from CDK context with
realistic defaults (`-c vpcId=vpc-... -c subnetIds=subnet-a,subnet-b -c modelBucket=...`).

Three endpoints:
  AbTest  AutoScaledEndpoint, four weighted variants: the iris folder with the bundled server, a bucket
          object and an uncompressed S3 prefix with an ECR image, and a legacy model by name; VPC with a
          supplied security group, supplied role and key, environment, volume size, timeouts, tags,
          explicit network isolation, CPU target, cooldowns and scheduled capacity.
  Legacy  AutoScaledEndpoint.from_deployer_payload: the older deployer's payload, every field set.
  Canary  ModelEndpoint: a local archive and a local Dockerfile directory, a created role with a
          permissions boundary, the created key, log retention and removal policy.

The four cdk-nag packs are applied, so synthesis itself fails on any unacknowledged finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from examples.iris.train import ensure_model
from sagemaker_constructs import (
    AutoScaledEndpoint,
    ContainerImage,
    InstanceType,
    ModelData,
    ModelEndpoint,
    ProductionVariant,
    ScheduledCapacity,
    apply_compliance_packs,
    bundled_server_directory,
)
from sagemaker_constructs._private.archive import pack_directory

REPO = Path(__file__).resolve().parents[2]
IRIS_REQUIREMENTS = REPO / "examples" / "iris" / "requirements.txt"
STACK_ID = "AllOptionsStack"

DEFAULTS = {
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": "subnet-0a1b2c3d4e5f60718,subnet-0b1c2d3e4f5a60718",
    "availabilityZones": "us-east-1a,us-east-1b",
    "modelBucket": "example-corp-ml-models",
    "modelBucketKeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "servingRepository": "ml/serving-sklearn",
    "servingImageTag": "1.4.2",
    "permissionsBoundary": "ml-workload-boundary",
}

LEGACY_PAYLOAD: dict[str, Any] = {
    "endpointName": "iris-legacy-deployer",
    "productionVariants": [
        {
            "ModelName": "iris-legacy-blue",
            "VariantName": "Blue",
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 0.9,
            "AcceleratorType": None,
        },
        {
            "ModelName": "iris-legacy-green",
            "VariantName": "Green",
            "InstanceType": "ml.c5.large",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 0.1,
        },
    ],
    "autoscalingMinCapacity": 1,
    "autoscalingMaxCapacity": 4,
    "targetTrackingScalingPolicyConfiguration": {
        "TargetValue": 450.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleOutCooldown": 60,
        "ScaleInCooldown": 600,
        "DisableScaleIn": False,
    },
}


class AllOptionsStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, settings: dict[str, str], **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        subnet_ids = settings["subnetIds"].split(",")
        zones = settings["availabilityZones"].split(",")
        vpc = ec2.Vpc.from_vpc_attributes(self, "Vpc", vpc_id=settings["vpcId"], availability_zones=zones)
        subnets = [
            ec2.Subnet.from_subnet_attributes(self, f"Subnet{i}", subnet_id=subnet, availability_zone=zone)
            for i, (subnet, zone) in enumerate(zip(subnet_ids, zones, strict=True))
        ]
        security_group = ec2.SecurityGroup(
            self,
            "ModelSecurityGroup",
            vpc=vpc,
            description="SageMaker models: HTTPS out to the VPC endpoints, nothing in",
            allow_all_outbound=False,
        )
        security_group.add_egress_rule(
            ec2.Peer.ipv4("10.0.0.0/16"), ec2.Port.tcp(443), "VPC interface endpoints"
        )

        bucket = s3.Bucket.from_bucket_attributes(
            self,
            "ModelBucket",
            bucket_name=settings["modelBucket"],
            encryption_key=kms.Key.from_key_arn(self, "ModelBucketKey", settings["modelBucketKeyArn"]),
        )
        repository = ecr.Repository.from_repository_name(
            self, "ServingRepository", settings["servingRepository"]
        )
        serving_image = ContainerImage.from_ecr_repository(repository, settings["servingImageTag"])
        role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            ),
            description="Execution role the platform team hands to the A/B endpoint",
        )
        key = kms.Key(
            self, "EndpointKey", enable_key_rotation=True, description="A/B endpoint volumes and logs"
        )

        self.ab_test = AutoScaledEndpoint(
            self,
            "AbTest",
            image=ContainerImage.from_bundled_server(requirements_file=IRIS_REQUIREMENTS),
            instance_type=InstanceType.C6I_LARGE,
            initial_instance_count=2,
            variants=[
                ProductionVariant(
                    variant_name="Folder",
                    model_data=ModelData.from_directory(ensure_model()),
                    initial_weight=0.6,
                    environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
                ),
                ProductionVariant(
                    variant_name="BucketObject",
                    model_data=ModelData.from_bucket(bucket, "models/iris/v2/model.tar.gz"),
                    image=serving_image,
                    instance_type=InstanceType.M6I_LARGE,
                    initial_weight=0.2,
                ),
                ProductionVariant(
                    variant_name="Uncompressed",
                    model_data=ModelData.from_s3_prefix(bucket, "models/iris/v3-uncompressed"),
                    image=serving_image,
                    initial_instance_count=1,
                    initial_weight=0.1,
                ),
                ProductionVariant(variant_name="Legacy", model_name="iris-legacy-blue", initial_weight=0.1),
            ],
            environment={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"},
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=subnets),
            security_groups=[security_group],
            network_isolation=True,
            volume_size=cdk.Size.gibibytes(20),
            model_download_timeout=cdk.Duration.minutes(10),
            container_startup_health_check_timeout=cdk.Duration.minutes(5),
            endpoint_name="iris-ab-test",
            tags={"team": "ml-platform", "cost-center": "1234"},
            role=role,
            encryption_key=key,
            log_retention=logs.RetentionDays.TWO_YEARS,
            min_capacity=1,
            max_capacity=6,
            max_requests_per_second_per_instance=40,
            safety_factor=0.5,
            cpu_utilization_target=70,
            scale_in_cooldown=cdk.Duration.minutes(10),
            scale_out_cooldown=cdk.Duration.minutes(1),
            disable_scale_in=False,
            scheduled_capacity=[
                ScheduledCapacity(
                    schedule=appscaling.Schedule.cron(hour="7", minute="30", week_day="MON-FRI"),
                    min_capacity=2,
                    max_capacity=8,
                    time_zone=cdk.TimeZone.EUROPE_BERLIN,
                ),
                ScheduledCapacity(
                    schedule=appscaling.Schedule.cron(hour="20", minute="0", week_day="MON-FRI"),
                    min_capacity=1,
                    max_capacity=6,
                    time_zone=cdk.TimeZone.EUROPE_BERLIN,
                ),
            ],
        )

        self.legacy = AutoScaledEndpoint.from_deployer_payload(
            self,
            "Legacy",
            LEGACY_PAYLOAD,
            tags={"team": "ml-platform"},
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

        self.canary = ModelEndpoint(
            self,
            "Canary",
            model_data=ModelData.from_archive(pack_directory(ensure_model()).path),
            image=ContainerImage.from_directory(
                bundled_server_directory(), build_args={"MODEL_REQUIREMENTS": "scikit-learn==1.9.1"}
            ),
            instance_type=InstanceType.M5_LARGE,
            permissions_boundary=iam.ManagedPolicy.from_managed_policy_name(
                self, "Boundary", settings["permissionsBoundary"]
            ),
            log_retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

        # A client of the A/B endpoint, with invoke rights through a managed (not inline) policy.
        client = iam.Role(
            self,
            "InvokerRole",
            assumed_by=iam.AccountPrincipal(cdk.Aws.ACCOUNT_ID),
            description="Application role that calls the A/B endpoint",
        )
        iam.ManagedPolicy(
            self,
            "InvokePolicy",
            description="Invoke the A/B endpoint only",
            statements=[self.ab_test.endpoint.invoke_policy_statement()],
            roles=[client],
        )


def build_app(outdir: str | None = None) -> cdk.App:
    """The all-options app, with the four compliance packs applied."""
    app = cdk.App(outdir=outdir)
    settings = {key: str(app.node.try_get_context(key) or default) for key, default in DEFAULTS.items()}
    AllOptionsStack(app, STACK_ID, settings=settings, description="sagemaker-constructs: every option")
    apply_compliance_packs(app)
    return app


if __name__ == "__main__":
    build_app().synth()
