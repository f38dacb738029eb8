"""ModelEndpoint: SageMaker Model(s) + EndpointConfig + Endpoint, encrypted, logged and least-privilege."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypedDict

from aws_cdk import (
    CfnOutput,
    Duration,
    Names,
    RemovalPolicy,
    Resource,
    Size,
    SizeRoundingBehavior,
    Stack,
    Tags,
    Token,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ._private import nag
from ._private.validation import ENV_KEY_PATTERN, Problems, is_token
from .container_image import ContainerImage
from .encryption import EndpointEncryptionKey, allow_log_group, log_group_arn
from .execution_role import ExecutionRole, subnet_arn, vpc_arn
from .instance_type import InstanceType
from .model_data import ModelData

DEFAULT_VARIANT_NAME = "AllTraffic"  # SageMaker's own name for a single-variant endpoint
DEFAULT_INSTANCE_TYPE = InstanceType.M5_LARGE
INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
MAX_VARIANTS = 10  # CreateEndpointConfig: ProductionVariants has 1-10 items
_LOCAL_STORAGE_KMS_REASON = (
    "{types} carr{y} NVMe instance storage, which SageMaker encrypts in hardware; CreateEndpointConfig "
    "refuses a KmsKeyId for such instance types, so there is no KMS option to set. The endpoint's log group "
    "is still encrypted with the KMS key."
)


@dataclass(frozen=True, kw_only=True)
class ProductionVariant:
    """One production variant of an endpoint: a model, the instances serving it and its traffic weight.

    Every field except ``variant_name`` falls back to the endpoint's own prop of the same name, so a
    variant only states what differs. A variant serves either a model this construct creates
    (``model_data`` + ``image``) or an existing SageMaker model (``model_name``).

    :param variant_name: 1-63 letters, digits and hyphens; unique within the endpoint.
    :param model_data: the model's artifacts. Default: the endpoint's ``model_data``.
    :param image: the serving image. Default: the endpoint's ``image``.
    :param model_name: an existing SageMaker model to serve instead of creating one. Default: none.
    :param instance_type: Default: the endpoint's ``instance_type``.
    :param initial_instance_count: Default: the endpoint's ``initial_instance_count``.
    :param initial_weight: the variant's share of traffic relative to the others' weights. Default: 1.
    :param environment: extra container environment, merged over the endpoint's. Default: none.
    """

    variant_name: str
    model_data: ModelData | None = None
    image: ContainerImage | None = None
    model_name: str | None = None
    instance_type: InstanceType | None = None
    initial_instance_count: int | None = None
    initial_weight: float = 1.0
    environment: Mapping[str, str] = field(default_factory=dict)


class ModelEndpointProps(TypedDict, total=False):
    """The keyword arguments of ``ModelEndpoint`` (see its docstring for each default)."""

    model_data: ModelData | None
    image: ContainerImage | None
    instance_type: InstanceType
    initial_instance_count: int
    variants: Sequence[ProductionVariant] | None
    environment: Mapping[str, str] | None
    vpc: ec2.IVpc | None
    vpc_subnets: ec2.SubnetSelection | None
    security_groups: Sequence[ec2.ISecurityGroup] | None
    network_isolation: bool | None
    volume_size: Size | None
    model_download_timeout: Duration | None
    container_startup_health_check_timeout: Duration | None
    endpoint_name: str | None
    tags: Mapping[str, str] | None
    role: iam.IRole | None
    permissions_boundary: iam.IManagedPolicy | None
    encryption_key: kms.IKey | None
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy


class ModelEndpointBase(Resource):
    """What every endpoint offers, created here or imported: name, ARN, invoke grants and metrics."""

    @property
    def endpoint_name(self) -> str:
        raise NotImplementedError

    @property
    def endpoint_arn(self) -> str:
        raise NotImplementedError

    @property
    def variant_names(self) -> Sequence[str]:
        raise NotImplementedError

    def invoke_policy_statement(self) -> iam.PolicyStatement:
        """``sagemaker:InvokeEndpoint`` on this endpoint only, for a policy of your own (e.g. managed)."""
        return iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn])

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow `grantee` to call ``sagemaker:InvokeEndpoint`` on this endpoint's ARN, nothing else.

        For a role this adds to its default (inline) policy, as every CDK ``grant_*`` does; where the
        HIPAA/NIST/PCI packs apply, put ``invoke_policy_statement()`` into an ``iam.ManagedPolicy`` instead.
        """
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )

    def metric(
        self,
        metric_name: str,
        *,
        namespace: str = INVOCATION_NAMESPACE,
        variant_name: str | None = None,
        statistic: str = "Sum",
        period: Duration | None = None,
    ) -> cloudwatch.Metric:
        """A metric of one variant (default: the first) of this endpoint."""
        return cloudwatch.Metric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions_map={
                "EndpointName": self.endpoint_name,
                "VariantName": variant_name or self.variant_names[0],
            },
            statistic=statistic,
            period=period,
        )

    def metric_invocations(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Requests sent to the variant (Sum)."""
        return self.metric("Invocations", variant_name=variant_name, period=period)

    def metric_invocations_per_instance(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Requests per instance (Sum): the metric target tracking scales on."""
        return self.metric("InvocationsPerInstance", variant_name=variant_name, period=period)

    def metric_invocation_4xx_errors(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Requests the model answered with a 4xx status (Sum)."""
        return self.metric("Invocation4XXErrors", variant_name=variant_name, period=period)

    def metric_invocation_5xx_errors(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Requests the model answered with a 5xx status (Sum)."""
        return self.metric("Invocation5XXErrors", variant_name=variant_name, period=period)

    def metric_model_latency(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Time the container took to answer, in microseconds (Average)."""
        return self.metric("ModelLatency", variant_name=variant_name, statistic="Average", period=period)

    def metric_overhead_latency(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Time SageMaker added on top of the model, in microseconds (Average)."""
        return self.metric("OverheadLatency", variant_name=variant_name, statistic="Average", period=period)

    def metric_cpu_utilization(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """CPU use in percent, summed over cores (up to 100 x vCPUs) (Average)."""
        return self.metric(
            "CPUUtilization",
            namespace=INSTANCE_NAMESPACE,
            variant_name=variant_name,
            statistic="Average",
            period=period,
        )

    def metric_memory_utilization(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Memory use in percent (Average)."""
        return self.metric(
            "MemoryUtilization",
            namespace=INSTANCE_NAMESPACE,
            variant_name=variant_name,
            statistic="Average",
            period=period,
        )

    def metric_disk_utilization(
        self, *, variant_name: str | None = None, period: Duration | None = None
    ) -> cloudwatch.Metric:
        """Disk use of the ML storage volume in percent (Average)."""
        return self.metric(
            "DiskUtilization",
            namespace=INSTANCE_NAMESPACE,
            variant_name=variant_name,
            statistic="Average",
            period=period,
        )


class _ImportedModelEndpoint(ModelEndpointBase):
    def __init__(self, scope: Construct, id: str, name: str, variant_names: Sequence[str]) -> None:
        super().__init__(scope, id)
        self._name = name
        self._variant_names = tuple(variant_names)
        # SageMaker lower-cases endpoint names in ARNs; a token name is used as is.
        arn_name = name if Token.is_unresolved(name) else name.lower()
        self._arn = Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=arn_name
        )

    @property
    def endpoint_name(self) -> str:
        return self._name

    @property
    def endpoint_arn(self) -> str:
        return self._arn

    @property
    def variant_names(self) -> Sequence[str]:
        return self._variant_names


@dataclass(frozen=True)
class _Settings:
    """ModelEndpoint's props with defaults applied; also used by AutoScaledEndpoint to validate first."""

    model_data: ModelData | None = None
    image: ContainerImage | None = None
    instance_type: InstanceType = DEFAULT_INSTANCE_TYPE
    initial_instance_count: int = 1
    variants: Sequence[ProductionVariant] | None = None
    environment: Mapping[str, str] | None = None
    vpc: ec2.IVpc | None = None
    vpc_subnets: ec2.SubnetSelection | None = None
    security_groups: Sequence[ec2.ISecurityGroup] | None = None
    network_isolation: bool | None = None
    volume_size: Size | None = None
    model_download_timeout: Duration | None = None
    container_startup_health_check_timeout: Duration | None = None
    endpoint_name: str | None = None
    tags: Mapping[str, str] | None = None
    role: iam.IRole | None = None
    permissions_boundary: iam.IManagedPolicy | None = None
    encryption_key: kms.IKey | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN

    def resolved_variants(self) -> list[ProductionVariant]:
        """Each variant with the endpoint-level defaults filled in."""
        given = (
            list(self.variants)
            if self.variants is not None
            else [ProductionVariant(variant_name=DEFAULT_VARIANT_NAME)]
        )
        resolved = []
        for v in given:
            uses_existing = v.model_name is not None
            resolved.append(
                replace(
                    v,
                    model_data=v.model_data if uses_existing else v.model_data or self.model_data,
                    image=v.image if uses_existing else v.image or self.image,
                    instance_type=v.instance_type or self.instance_type,
                    initial_instance_count=(
                        v.initial_instance_count
                        if v.initial_instance_count is not None
                        else self.initial_instance_count
                    ),
                    environment={**(self.environment or {}), **v.environment},
                )
            )
        return resolved

    def problems(self) -> Problems:
        """Every problem with these props (none are raised here)."""
        p = Problems()
        variants = self.resolved_variants()
        if not variants:
            p.add("variants", [], "at least one ProductionVariant is required")
        if len(variants) > MAX_VARIANTS:
            p.add(
                "variants",
                [v.variant_name for v in variants],
                f"an endpoint has at most {MAX_VARIANTS} variants",
            )
        seen: set[str] = set()
        for i, v in enumerate(variants):
            _variant_problems(p, f"variants[{i}]" if self.variants is not None else None, v, seen)
        weights = [v.initial_weight for v in variants]
        if (
            weights
            and all(isinstance(w, int | float) and not is_token(w) for w in weights)
            and sum(weights) <= 0
        ):
            p.add("variants[*].initial_weight", weights, "at least one variant needs a weight greater than 0")
        p.name("endpoint_name", self.endpoint_name, "endpoint name")
        _environment_problems(p, "environment", self.environment or {})
        self._storage_problems(p, variants)
        p.duration("model_download_timeout", self.model_download_timeout, minimum_s=60, maximum_s=3600)
        p.duration(
            "container_startup_health_check_timeout",
            self.container_startup_health_check_timeout,
            minimum_s=60,
            maximum_s=3600,
        )
        self._network_problems(p)
        if self.role is not None and self.permissions_boundary is not None:
            p.add(
                "permissions_boundary",
                "given with role",
                "a permissions boundary applies only to the role this construct creates; set it on your role",
            )
        for key, value in (self.tags or {}).items():
            if is_token(key):
                continue
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                p.add("tags", key, "tag keys have 1-128 characters and must not start with 'aws:'")
            if not is_token(value) and len(value) > 256:
                p.add(f"tags[{key!r}]", value, "tag values have at most 256 characters")
        return p

    def _storage_problems(self, p: Problems, variants: Sequence[ProductionVariant]) -> None:
        if self.volume_size is None or is_token(self.volume_size):
            return
        gib = self.volume_size.to_gibibytes(rounding=SizeRoundingBehavior.NONE)
        if gib != int(gib) or not 1 <= gib <= 512:
            p.add("volume_size", self.volume_size, "a whole number of GiB from 1 to 512 (Size.gibibytes(n))")
        local = sorted(
            {str(v.instance_type) for v in variants if v.instance_type and v.instance_type.has_local_storage}
        )
        if local:
            p.add(
                "volume_size",
                self.volume_size,
                f"{', '.join(local)} use NVMe instance storage; SageMaker accepts volume_size only for "
                "EBS-backed types",
            )

    def _network_problems(self, p: Problems) -> None:
        if self.vpc is None:
            if self.vpc_subnets is not None:
                p.add(
                    "vpc_subnets", "given without vpc", "vpc_subnets selects subnets of `vpc`: pass vpc too"
                )
            if self.security_groups:
                p.add("security_groups", "given without vpc", "security groups apply only with `vpc`")
            return
        try:
            subnet_ids = select_subnet_ids(self.vpc, self.vpc_subnets)
        except Exception as error:  # jsii surfaces CDK's selection errors as RuntimeError
            p.add("vpc_subnets", self.vpc_subnets, f"no subnets could be selected: {error}")
        else:
            if not Token.is_unresolved(subnet_ids) and not 1 <= len(subnet_ids) <= 16:
                p.add("vpc_subnets", subnet_ids, "SageMaker accepts 1-16 subnets")
        if self.security_groups is not None and not 1 <= len(self.security_groups) <= 5:
            p.add("security_groups", len(self.security_groups), "SageMaker accepts 1-5 security groups")


def _gibibytes(size: Size | None) -> float | None:
    if size is None:
        return None
    value = size.to_gibibytes(rounding=SizeRoundingBehavior.NONE)
    # int() of a token number would destroy the token; a resolved value is a validated whole number.
    return value if is_token(value) else int(value)


def _seconds(duration: Duration | None) -> float | None:
    if duration is None:
        return None
    value = duration.to_seconds(integral=False)
    return value if is_token(value) else int(value)


def select_subnet_ids(vpc: ec2.IVpc, selection: ec2.SubnetSelection | None) -> list[str]:
    """The IDs of `vpc`'s subnets that `selection` picks (CDK's default selection when None)."""
    if selection is None:
        return list(vpc.select_subnets().subnet_ids)
    return list(
        vpc.select_subnets(
            availability_zones=selection.availability_zones,
            one_per_az=selection.one_per_az,
            subnet_filters=selection.subnet_filters,
            subnet_group_name=selection.subnet_group_name,
            subnets=selection.subnets,
            subnet_type=selection.subnet_type,
        ).subnet_ids
    )


def _variant_problems(p: Problems, prefix: str | None, v: ProductionVariant, seen: set[str]) -> None:
    def prop(name: str) -> str:
        # Single-variant endpoints are configured through the endpoint's own props: name those.
        return f"{prefix}.{name}" if prefix else name

    p.name(prop("variant_name"), v.variant_name, "variant name")
    if isinstance(v.variant_name, str) and not is_token(v.variant_name):
        if v.variant_name in seen:
            p.add(prop("variant_name"), v.variant_name, "variant names must be unique within an endpoint")
        seen.add(v.variant_name)
    instance_type = v.instance_type
    if not isinstance(instance_type, InstanceType):
        p.add(
            prop("instance_type"),
            instance_type,
            "an InstanceType, e.g. InstanceType.M5_LARGE or InstanceType.of('ml.g6e.xlarge')",
        )
    elif not instance_type.is_token and instance_type.family is None:
        p.add(
            prop("instance_type"),
            instance_type.name,
            "a SageMaker instance type shaped 'ml.<family>.<size>', e.g. 'ml.m5.large'",
        )
    p.integer(prop("initial_instance_count"), v.initial_instance_count, minimum=1)
    p.number(prop("initial_weight"), v.initial_weight, minimum=0, exclusive=False)
    _environment_problems(p, prop("environment"), v.environment)
    if v.model_name is not None:
        p.name(prop("model_name"), v.model_name, "SageMaker model name")
        if v.model_data is not None or v.image is not None:
            p.add(
                prop("model_name"),
                v.model_name,
                "a variant serves either an existing model (model_name) or a new one "
                "(model_data and image), not both",
            )
        return
    if v.model_data is None:
        p.add(
            prop("model_data"), None, "required: a ModelData (e.g. ModelData.from_directory), or a model_name"
        )
    else:
        for name, value, allowed in v.model_data._validate():
            p.add(prop(name), value, allowed)
    if v.image is None:
        p.add(
            prop("image"),
            None,
            "required: a ContainerImage (e.g. ContainerImage.from_bundled_server()), or a model_name",
        )
    else:
        for name, value, allowed in v.image._validate():
            p.add(prop(name), value, allowed)


def _environment_problems(p: Problems, prop: str, environment: Mapping[str, str]) -> None:
    if len(environment) > 100:
        p.add(prop, f"{len(environment)} variables", "a container takes at most 100 environment variables")
    for key, value in environment.items():
        if not is_token(key) and (len(key) > 1024 or not ENV_KEY_PATTERN.match(key)):
            p.add(
                prop,
                key,
                "variable names are letters, digits and underscores, not starting with a digit, "
                "<= 1024 chars",
            )
        if not isinstance(value, str):
            p.add(f"{prop}[{key!r}]", value, "environment values are strings")
        elif not is_token(value) and len(value) > 1024:
            p.add(
                f"{prop}[{key!r}]",
                f"{len(value)} characters",
                "environment values have at most 1024 characters",
            )


class ModelEndpoint(ModelEndpointBase):
    """A real-time SageMaker endpoint serving one or more models, secure by default.

    Creates a SageMaker Model per production variant (unless the variant names an existing model), an
    EndpointConfig whose storage volumes are encrypted with a KMS key, the Endpoint, and the endpoint's
    CloudWatch log group (``/aws/sagemaker/Endpoints/<endpoint name>``, KMS-encrypted, created before the
    endpoint). The execution role gets only what the sources and the endpoint need (see ``ExecutionRole``).

    Model and EndpointConfig have generated names, so changing the model replaces them and CloudFormation
    updates the Endpoint in place (a blue/green deployment by SageMaker, no downtime).

    :param model_data: the model's artifacts. Default: none — then every variant must bring its own
        ``model_data`` or ``model_name``.
    :param image: the serving image. Default: none — as for ``model_data``.
    :param instance_type: Default: ``InstanceType.M5_LARGE``, a small non-burstable type. Types with NVMe
        instance storage (``ml.g5``, ``ml.g4dn``, ``ml.m5d``...) get no ``KmsKeyId``: AWS refuses one for
        them and encrypts that storage in hardware; the matching cdk-nag finding is acknowledged with
        this reason on the EndpointConfig.
    :param initial_instance_count: instances per variant at creation. Default: 1.
    :param variants: the production variants, weighted against each other (A/B testing). Default: one
        variant named ``AllTraffic`` built from the props above.
    :param environment: container environment variables for every model. Default: none.
    :param vpc: run the models' network interfaces in this VPC. Default: none (SageMaker's own network).
    :param vpc_subnets: Default: CDK's default selection of ``vpc`` (its private subnets).
    :param security_groups: Default (with ``vpc``): a new group allowing only outbound HTTPS (S3, ECR and
        CloudWatch through your VPC endpoints or NAT) and no inbound traffic.
    :param network_isolation: ``EnableNetworkIsolation`` of each model: the container can make no network
        calls. Default: on for images that declare they need no network at run time (the bundled server;
        ``from_directory``/``from_ecr_repository`` unless ``needs_network=True``), off otherwise.
    :param volume_size: the ML storage volume per instance (1-512 GiB). Default: SageMaker's default for the
        instance type. Refused for instance types with NVMe instance storage.
    :param model_download_timeout: how long SageMaker may take to download the model (60-3600 s). Default:
        SageMaker's default.
    :param container_startup_health_check_timeout: how long the container may take to pass ``/ping`` after
        start (60-3600 s). Default: SageMaker's default (8 minutes).
    :param endpoint_name: Default: a name derived from the construct path (lower case, at most 63
        characters, unique per stack and path), fixed at synth time because the log group and the role's
        log permission need it before the endpoint exists.
    :param tags: tags for every resource created here. Default: none.
    :param role: an execution role to use. Default: a new least-privilege role (see ``ExecutionRole``).
    :param permissions_boundary: for the role created here. Default: none.
    :param encryption_key: the key for the storage volumes and the log group. Default: a new
        ``EndpointEncryptionKey`` (rotated yearly). A key created in the same app gets the CloudWatch Logs
        statement added to its policy; an imported key's policy must already allow the ``logs.<region>``
        service principal for this log group.
    :param log_retention: how long endpoint logs are kept. Default: one year (PCI DSS 10.7).
    :param removal_policy: for the log group and the key created here. Default: RETAIN.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        model_data: ModelData | None = None,
        image: ContainerImage | None = None,
        instance_type: InstanceType = DEFAULT_INSTANCE_TYPE,
        initial_instance_count: int = 1,
        variants: Sequence[ProductionVariant] | None = None,
        environment: Mapping[str, str] | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        network_isolation: bool | None = None,
        volume_size: Size | None = None,
        model_download_timeout: Duration | None = None,
        container_startup_health_check_timeout: Duration | None = None,
        endpoint_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        role: iam.IRole | None = None,
        permissions_boundary: iam.IManagedPolicy | None = None,
        encryption_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        settings = _Settings(
            model_data=model_data,
            image=image,
            instance_type=instance_type,
            initial_instance_count=initial_instance_count,
            variants=variants,
            environment=environment,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=security_groups,
            network_isolation=network_isolation,
            volume_size=volume_size,
            model_download_timeout=model_download_timeout,
            container_startup_health_check_timeout=container_startup_health_check_timeout,
            endpoint_name=endpoint_name,
            tags=tags,
            role=role,
            permissions_boundary=permissions_boundary,
            encryption_key=encryption_key,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        settings.problems().raise_if_any(self.node.path)
        self._variants = settings.resolved_variants()
        self._name = endpoint_name if endpoint_name is not None else self._generated_name()

        self._created_key: EndpointEncryptionKey | None = None
        if encryption_key is None:
            self._created_key = EndpointEncryptionKey(self, "EncryptionKey", removal_policy=removal_policy)
            encryption_key = self._created_key.key
        self._key = encryption_key
        log_group_name = f"{LOG_GROUP_PREFIX}{self._name}"
        # False for an imported key: its policy must already let CloudWatch Logs use it (documented above).
        allow_log_group(encryption_key, log_group_name)
        self._log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=log_group_name,
            encryption_key=encryption_key,
            retention=log_retention,
            removal_policy=removal_policy,
        )

        local_storage = sorted(
            {
                str(v.instance_type)
                for v in self._variants
                if v.instance_type and v.instance_type.has_local_storage
            }
        )
        creates_models = any(v.model_name is None for v in self._variants)
        self._execution_role: ExecutionRole | None = None
        if creates_models:
            self._execution_role = ExecutionRole(
                self, "ExecutionRole", role=role, permissions_boundary=permissions_boundary
            )
            self._grant_endpoint_resources(self._execution_role, log_group_name, volume_key=not local_storage)

        self._security_groups: list[ec2.ISecurityGroup] = []
        vpc_config = self._vpc_config(settings) if creates_models else None

        self._models: dict[str, sagemaker.CfnModel] = {}
        production_variants = []
        for v in self._variants:
            model_name = v.model_name
            if model_name is None:
                model = self._create_model(v, settings, vpc_config)
                self._models[v.variant_name] = model
                model_name = model.attr_model_name
            production_variants.append(
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=v.variant_name,
                    model_name=model_name,
                    instance_type=str(v.instance_type),
                    initial_instance_count=v.initial_instance_count,
                    initial_variant_weight=v.initial_weight,
                    volume_size_in_gb=_gibibytes(volume_size),
                    model_data_download_timeout_in_seconds=_seconds(model_download_timeout),
                    container_startup_health_check_timeout_in_seconds=_seconds(
                        container_startup_health_check_timeout
                    ),
                )
            )

        self._endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=production_variants,
            # AWS refuses KmsKeyId when any variant's instance type has NVMe instance storage.
            kms_key_id=None if local_storage else encryption_key.key_arn,
        )
        if local_storage:
            self._acknowledge_local_storage(local_storage)

        self._endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self._name,
            endpoint_config_name=self._endpoint_config.attr_endpoint_config_name,
        )
        # SageMaker writes to the log group from the first instance start: it must exist, with its key policy.
        self._endpoint.node.add_dependency(self._log_group)
        if self._execution_role is not None:
            self._endpoint.node.add_dependency(self._execution_role.policy)

        for key, value in (tags or {}).items():
            Tags.of(self).add(key, value)

        CfnOutput(
            self,
            "EndpointName",
            value=self._endpoint.attr_endpoint_name,
            description="SageMaker endpoint name",
        )
        CfnOutput(
            self, "EndpointArn", value=self._endpoint.attr_endpoint_arn, description="SageMaker endpoint ARN"
        )

    @classmethod
    def from_endpoint_name(
        cls,
        scope: Construct,
        id: str,
        endpoint_name: str,
        *,
        variant_names: Sequence[str] = (DEFAULT_VARIANT_NAME,),
    ) -> ModelEndpointBase:
        """An existing endpoint, for ``grant_invoke`` and the ``metric_*`` helpers.

        :param variant_names: its variants; the first is the default of the metric helpers.
            Default: ``AllTraffic`` only.
        """
        return _ImportedModelEndpoint(scope, id, endpoint_name, variant_names)

    def _generated_name(self) -> str:
        # Lower case: SageMaker lower-cases names in ARNs, so IAM resources and log group names stay exact.
        return Names.unique_resource_name(self, max_length=63, separator="-").lower()

    def _grant_endpoint_resources(
        self, role: ExecutionRole, log_group_name: str, *, volume_key: bool
    ) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=[
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                    "logs:CreateLogGroup",
                ],
                # The log group's Arn attribute ends in ':*' (its streams); CreateLogGroup names the group.
                resources=[self._log_group.log_group_arn, log_group_arn(self, log_group_name)],
            )
        )
        if not volume_key:
            return
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeVolumeKey", actions=["kms:DescribeKey"], resources=[self._key.key_arn]
            )
        )
        # SageMaker creates a grant on the volume key for the instance's EBS volume, never for a person.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GrantVolumeKeyToEbs",
                actions=["kms:CreateGrant"],
                resources=[self._key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

    def _vpc_config(self, settings: _Settings) -> sagemaker.CfnModel.VpcConfigProperty | None:
        vpc = settings.vpc
        if vpc is None:
            return None
        subnet_ids = select_subnet_ids(vpc, settings.vpc_subnets)
        if settings.security_groups:
            self._security_groups = list(settings.security_groups)
        else:
            group = ec2.SecurityGroup(
                self,
                "SecurityGroup",
                vpc=vpc,
                description="SageMaker endpoint instances: outbound HTTPS only, no inbound",
                allow_all_outbound=False,
            )
            group.add_egress_rule(
                ec2.Peer.any_ipv4(),
                ec2.Port.tcp(443),
                "HTTPS to S3, ECR and CloudWatch (VPC endpoints or NAT)",
            )
            self._security_groups = [group]
        assert self._execution_role is not None
        self._execution_role.allow_vpc_access(
            vpc_arn=vpc_arn(self, vpc.vpc_id), subnet_arns=[subnet_arn(self, s) for s in subnet_ids]
        )
        return sagemaker.CfnModel.VpcConfigProperty(
            subnets=subnet_ids, security_group_ids=[g.security_group_id for g in self._security_groups]
        )

    def _create_model(
        self,
        variant: ProductionVariant,
        settings: _Settings,
        vpc_config: sagemaker.CfnModel.VpcConfigProperty | None,
    ) -> sagemaker.CfnModel:
        assert self._execution_role is not None
        assert variant.model_data
        assert variant.image
        scope = Construct(self, f"Variant{variant.variant_name}")
        data = variant.model_data.bind(scope, self._execution_role)
        image = variant.image.bind(scope, self._execution_role)
        isolation = (
            settings.network_isolation if settings.network_isolation is not None else not image.needs_network
        )
        model = sagemaker.CfnModel(
            scope,
            "Model",
            execution_role_arn=self._execution_role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri,
                model_data_url=data.model_data_url,
                model_data_source=data.model_data_source,
                environment=dict(variant.environment) or None,
            ),
            enable_network_isolation=isolation,
            vpc_config=vpc_config,
        )
        # CreateModel checks that SageMaker can use the role; its permissions must be attached first.
        model.node.add_dependency(self._execution_role.policy)
        return model

    def _acknowledge_local_storage(self, types: Sequence[str]) -> None:
        reason = _LOCAL_STORAGE_KMS_REASON.format(types=", ".join(types), y="ies" if len(types) == 1 else "y")
        for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
            nag.acknowledge(
                self._endpoint_config, f"{pack}-SageMakerEndpointConfigurationKMSKeyConfigured", reason
            )

    # Read-only attributes

    @property
    def endpoint_name(self) -> str:
        """The endpoint's name (a reference to the Endpoint resource, so users depend on it)."""
        return self._endpoint.attr_endpoint_name

    @property
    def endpoint_arn(self) -> str:
        return self._endpoint.attr_endpoint_arn

    @property
    def physical_endpoint_name(self) -> str:
        """The name as fixed at synth time (no dependency on the Endpoint resource)."""
        return self._name

    @property
    def variant_names(self) -> Sequence[str]:
        return [v.variant_name for v in self._variants]

    @property
    def variants(self) -> Sequence[ProductionVariant]:
        """The production variants with the endpoint's defaults filled in."""
        return list(self._variants)

    @property
    def models(self) -> Mapping[str, sagemaker.CfnModel]:
        """The models created here, by variant name (variants serving an existing model have none)."""
        return dict(self._models)

    @property
    def endpoint_config(self) -> sagemaker.CfnEndpointConfig:
        return self._endpoint_config

    @property
    def endpoint(self) -> sagemaker.CfnEndpoint:
        return self._endpoint

    @property
    def execution_role(self) -> ExecutionRole | None:
        """The execution role construct, or None when every variant serves an existing model."""
        return self._execution_role

    @property
    def role(self) -> iam.IRole | None:
        """The role SageMaker assumes for the models created here (None if no model is created)."""
        return self._execution_role.role if self._execution_role else None

    @property
    def key(self) -> kms.IKey:
        """The KMS key for storage volumes and logs (created or supplied)."""
        return self._key

    @property
    def log_group(self) -> logs.LogGroup:
        return self._log_group

    @property
    def security_groups(self) -> Sequence[ec2.ISecurityGroup]:
        """The models' security groups (supplied or created); empty without a VPC."""
        return list(self._security_groups)
