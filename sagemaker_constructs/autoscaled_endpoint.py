"""AutoScaledEndpoint: a ModelEndpoint plus Application Auto Scaling for each of its variants."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from constructs import Construct

from ._private.validation import Problems, is_token
from .instance_type import InstanceType
from .model_endpoint import (
    DEFAULT_VARIANT_NAME,
    INSTANCE_NAMESPACE,
    ModelEndpoint,
    ModelEndpointProps,
    ProductionVariant,
    _Settings,
)

DEFAULT_MAX_REQUESTS_PER_SECOND = 20.0
DEFAULT_SAFETY_FACTOR = 0.5
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
_SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Application Auto Scaling creates this service-linked role on first use; naming it avoids a new role
# without permissions (CDK's default) and any inline policy.
_SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


def invocations_target(max_requests_per_second: float, safety_factor: float = DEFAULT_SAFETY_FACTOR) -> float:
    """AWS's formula for the invocations-per-instance target (per minute).

    ``SageMakerVariantInvocationsPerInstance = max_requests_per_second * safety_factor * 60``, where
    ``max_requests_per_second`` is what one instance sustains in a load test and ``safety_factor`` (AWS
    suggests 0.5) keeps headroom for bursts while new instances start (SageMaker Developer Guide,
    "Load testing your auto scaling configuration").
    """
    return max_requests_per_second * safety_factor * 60


@dataclass(frozen=True, kw_only=True)
class ScheduledCapacity:
    """A scheduled change of every variant's capacity range (e.g. more instances on weekday mornings).

    :param schedule: when, e.g. ``appscaling.Schedule.cron(hour="8", minute="0", week_day="MON-FRI")``.
    :param min_capacity: Default: unchanged.
    :param max_capacity: Default: unchanged.
    :param time_zone: for cron expressions. Default: UTC.
    :param start_time: Default: now. ``end_time``: Default: never.
    """

    schedule: appscaling.Schedule
    min_capacity: int | None = None
    max_capacity: int | None = None
    time_zone: TimeZone | None = None
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None


@dataclass(frozen=True)
class _Scaling:
    min_capacity: int
    max_capacity: int | None
    target_invocations_per_instance: float | None
    max_requests_per_second_per_instance: float | None
    safety_factor: float
    cpu_utilization_target: float | None
    scale_in_cooldown: Duration | None
    scale_out_cooldown: Duration | None
    disable_scale_in: bool
    scheduled_capacity: Sequence[ScheduledCapacity]

    def max_for(self, variants: Sequence[ProductionVariant]) -> int:
        if self.max_capacity is not None:
            return self.max_capacity
        # Tokens are left out: their values are unknown until deployment.
        known = [
            n
            for n in (self.min_capacity, *(v.initial_instance_count for v in variants))
            if isinstance(n, int) and not isinstance(n, bool) and not is_token(n)
        ]
        return 2 * max([1, *known])

    def target(self) -> float:
        if self.target_invocations_per_instance is not None:
            return self.target_invocations_per_instance
        rps = self.max_requests_per_second_per_instance or DEFAULT_MAX_REQUESTS_PER_SECOND
        return invocations_target(rps, self.safety_factor)

    def problems(self, variants: Sequence[ProductionVariant], *, per_variant_props: bool) -> Problems:
        p = Problems()
        p.integer("min_capacity", self.min_capacity, minimum=1)
        if self.max_capacity is not None:
            p.integer("max_capacity", self.max_capacity, minimum=1)
        maximum = self.max_for(variants)
        known = [x for x in (self.min_capacity, maximum) if isinstance(x, int) and not is_token(x)]
        if len(known) == 2 and self.min_capacity > maximum:
            p.add("max_capacity", maximum, f"must be at least min_capacity ({self.min_capacity})")
        for i, v in enumerate(variants):
            prefix = f"variants[{i}]." if per_variant_props else ""
            count = v.initial_instance_count
            if (
                len(known) == 2
                and isinstance(count, int)
                and not is_token(count)
                and not (self.min_capacity <= count <= maximum)
            ):
                p.add(
                    f"{prefix}initial_instance_count",
                    count,
                    f"must lie within min_capacity..max_capacity ({self.min_capacity}..{maximum})",
                )
            if isinstance(v.instance_type, InstanceType) and v.instance_type.is_burstable:
                p.add(
                    f"{prefix}instance_type",
                    v.instance_type.name,
                    "burstable ml.t* instances cannot be autoscaled reliably (CPU credits distort load); "
                    "use e.g. InstanceType.M5_LARGE or C6I_LARGE",
                )
        if (
            self.target_invocations_per_instance is not None
            and self.max_requests_per_second_per_instance is not None
        ):
            p.add(
                "target_invocations_per_instance",
                self.target_invocations_per_instance,
                "give either target_invocations_per_instance or max_requests_per_second_per_instance, "
                "not both",
            )
        if self.target_invocations_per_instance is not None:
            p.number(
                "target_invocations_per_instance",
                self.target_invocations_per_instance,
                minimum=0,
                exclusive=True,
            )
        if self.max_requests_per_second_per_instance is not None:
            p.number(
                "max_requests_per_second_per_instance",
                self.max_requests_per_second_per_instance,
                minimum=0,
                exclusive=True,
            )
        p.number("safety_factor", self.safety_factor, minimum=0, exclusive=True, maximum=1)
        if self.cpu_utilization_target is not None:
            p.number("cpu_utilization_target", self.cpu_utilization_target, minimum=0, exclusive=True)
        p.duration("scale_in_cooldown", self.scale_in_cooldown, minimum_s=0, maximum_s=None)
        p.duration("scale_out_cooldown", self.scale_out_cooldown, minimum_s=0, maximum_s=None)
        for i, s in enumerate(self.scheduled_capacity):
            prop = f"scheduled_capacity[{i}]"
            if not isinstance(s.schedule, appscaling.Schedule):
                p.add(f"{prop}.schedule", s.schedule, "an appscaling.Schedule (cron, rate or at)")
            if s.min_capacity is None and s.max_capacity is None:
                p.add(prop, "no capacity", "set min_capacity, max_capacity or both")
            if s.min_capacity is not None:
                p.integer(f"{prop}.min_capacity", s.min_capacity, minimum=1)
            if s.max_capacity is not None:
                p.integer(f"{prop}.max_capacity", s.max_capacity, minimum=1)
            if (
                isinstance(s.min_capacity, int)
                and isinstance(s.max_capacity, int)
                and not is_token(s.min_capacity)
                and not is_token(s.max_capacity)
                and s.min_capacity > s.max_capacity
            ):
                p.add(
                    f"{prop}.max_capacity",
                    s.max_capacity,
                    f"must be at least its min_capacity ({s.min_capacity})",
                )
        return p


class AutoScaledEndpoint(Construct):
    """A ``ModelEndpoint`` whose every variant scales with Application Auto Scaling.

    Composition: ``endpoint`` is the ModelEndpoint (all its props are accepted here), and each variant
    gets a scalable target (``scalable_targets``) with target tracking on
    ``SageMakerVariantInvocationsPerInstance``, an optional CPU-utilisation policy and optional scheduled
    capacity changes. The targets' resource IDs reference the Endpoint resource, so they are created after it.

    :param min_capacity: instances per variant, at least. Default: 1.
    :param max_capacity: instances per variant, at most. Default: twice the larger of ``min_capacity``
        and the largest initial instance count.
    :param target_invocations_per_instance: requests per instance per MINUTE to hold each variant at.
        Default: derived from ``max_requests_per_second_per_instance`` (see ``invocations_target``).
    :param max_requests_per_second_per_instance: what one instance sustains in a load test; the target
        becomes ``max_rps * safety_factor * 60``. Default: 20 requests/second — measure yours.
    :param safety_factor: headroom in (0, 1]. Default: 0.5, as AWS recommends.
    :param cpu_utilization_target: also track average ``CPUUtilization`` (/aws/sagemaker/Endpoints, percent
        summed over cores, so up to 100 x vCPUs) at this value. Default: no CPU policy.
    :param scale_in_cooldown: Default: Application Auto Scaling's default for SageMaker (300 s).
    :param scale_out_cooldown: Default: Application Auto Scaling's default for SageMaker (300 s).
    :param disable_scale_in: only ever scale out (scale in by hand or by schedule). Default: False.
    :param scheduled_capacity: scheduled capacity changes applied to every variant. Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        min_capacity: int = 1,
        max_capacity: int | None = None,
        target_invocations_per_instance: float | None = None,
        max_requests_per_second_per_instance: float | None = None,
        safety_factor: float = DEFAULT_SAFETY_FACTOR,
        cpu_utilization_target: float | None = None,
        scale_in_cooldown: Duration | None = None,
        scale_out_cooldown: Duration | None = None,
        disable_scale_in: bool = False,
        scheduled_capacity: Sequence[ScheduledCapacity] = (),
        **endpoint_props: Unpack[ModelEndpointProps],
    ) -> None:
        super().__init__(scope, id)
        scaling = _Scaling(
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            target_invocations_per_instance=target_invocations_per_instance,
            max_requests_per_second_per_instance=max_requests_per_second_per_instance,
            safety_factor=safety_factor,
            cpu_utilization_target=cpu_utilization_target,
            scale_in_cooldown=scale_in_cooldown,
            scale_out_cooldown=scale_out_cooldown,
            disable_scale_in=disable_scale_in,
            scheduled_capacity=tuple(scheduled_capacity),
        )
        # Validate scaling and endpoint props together, so one error lists every problem.
        _all_problems(endpoint_props, scaling).raise_if_any(self.node.path)
        self._endpoint = ModelEndpoint(self, "Endpoint", **endpoint_props)
        self._target_value = scaling.target()
        maximum = scaling.max_for(self._endpoint.variants)
        service_role = iam.Role.from_role_arn(
            self,
            "AutoScalingServiceLinkedRole",
            Stack.of(self).format_arn(
                service="iam", region="", resource="role", resource_name=_SERVICE_LINKED_ROLE
            ),
            mutable=False,
        )
        self._targets: dict[str, appscaling.ScalableTarget] = {}
        self._policies: dict[str, list[appscaling.TargetTrackingScalingPolicy]] = {}
        for variant in self._endpoint.variant_names:
            scope_ = Construct(self, f"Scaling{variant}")
            target = appscaling.ScalableTarget(
                scope_,
                "Target",
                service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
                # endpoint_name references the Endpoint resource: the target waits for it.
                resource_id=f"endpoint/{self._endpoint.endpoint_name}/variant/{variant}",
                scalable_dimension=_SCALABLE_DIMENSION,
                min_capacity=min_capacity,
                max_capacity=maximum,
                role=service_role,
            )
            policies = [
                target.scale_to_track_metric(
                    "InvocationsPerInstance",
                    target_value=self._target_value,
                    predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                    scale_in_cooldown=scale_in_cooldown,
                    scale_out_cooldown=scale_out_cooldown,
                    disable_scale_in=disable_scale_in or None,
                )
            ]
            if cpu_utilization_target is not None:
                policies.append(
                    target.scale_to_track_metric(
                        "CpuUtilization",
                        target_value=cpu_utilization_target,
                        custom_metric=cloudwatch.Metric(
                            namespace=INSTANCE_NAMESPACE,
                            metric_name="CPUUtilization",
                            dimensions_map={
                                "EndpointName": self._endpoint.endpoint_name,
                                "VariantName": variant,
                            },
                            statistic="Average",
                        ),
                        scale_in_cooldown=scale_in_cooldown,
                        scale_out_cooldown=scale_out_cooldown,
                        disable_scale_in=disable_scale_in or None,
                    )
                )
            for i, change in enumerate(scaling.scheduled_capacity):
                target.scale_on_schedule(
                    f"Schedule{i}",
                    schedule=change.schedule,
                    min_capacity=change.min_capacity,
                    max_capacity=change.max_capacity,
                    time_zone=change.time_zone,
                    start_time=change.start_time,
                    end_time=change.end_time,
                )
            self._targets[variant] = target
            self._policies[variant] = policies

    @classmethod
    def from_deployer_payload(
        cls,
        scope: Construct,
        id: str,
        payload: Mapping[str, Any],
        **endpoint_props: Unpack[ModelEndpointProps],
    ) -> AutoScaledEndpoint:
        """Build from the payload of the older Step-Functions endpoint deployer; every field is mapped.

        ``endpointName`` → ``endpoint_name``; ``productionVariants[]`` → variants serving existing models
        (``ModelName``, ``VariantName``, ``InstanceType``, ``InitialInstanceCount``,
        ``InitialVariantWeight``);
        ``autoscalingMinCapacity``/``autoscalingMaxCapacity`` → ``min_capacity``/``max_capacity``;
        ``targetTrackingScalingPolicyConfiguration`` → ``target_invocations_per_instance`` (``TargetValue``,
        with ``PredefinedMetricType`` ``SageMakerVariantInvocationsPerInstance``), cooldowns in seconds,
        ``DisableScaleIn``. ``AcceleratorType`` is refused: AWS discontinued Elastic Inference.
        ``endpoint_props`` adds ModelEndpoint props the payload cannot express (tags, key, VPC...).
        """
        mapped, problems = _map_payload(payload)
        for key in mapped:
            if key in endpoint_props:
                problems.add(key, endpoint_props[key], "already set by the payload; pass it in one place")  # type: ignore[literal-required]
        if problems:
            scaling_keys = set(_SCALING_ARGS)
            endpoint_args = {k: v for k, v in mapped.items() if k not in scaling_keys}
            scaling_args = {k: v for k, v in mapped.items() if k in scaling_keys}
            problems.extend(_all_problems({**endpoint_props, **endpoint_args}, _scaling_from(scaling_args)))  # type: ignore[typeddict-item]
            problems.raise_if_any(f"{scope.node.path}/{id}")
        return cls(scope, id, **mapped, **endpoint_props)

    @property
    def endpoint(self) -> ModelEndpoint:
        """The ModelEndpoint being scaled (models, config, endpoint, role, key, log group, metrics)."""
        return self._endpoint

    @property
    def endpoint_name(self) -> str:
        return self._endpoint.endpoint_name

    @property
    def endpoint_arn(self) -> str:
        return self._endpoint.endpoint_arn

    @property
    def scalable_targets(self) -> Mapping[str, appscaling.ScalableTarget]:
        """The scalable target of each variant, by variant name."""
        return dict(self._targets)

    @property
    def scaling_policies(self) -> Mapping[str, Sequence[appscaling.TargetTrackingScalingPolicy]]:
        """Each variant's target-tracking policies (invocations first, then CPU if configured)."""
        return {k: list(v) for k, v in self._policies.items()}

    @property
    def target_invocations_per_instance(self) -> float:
        """The per-minute target the invocations policy tracks."""
        return self._target_value

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """See ``ModelEndpoint.grant_invoke``."""
        return self._endpoint.grant_invoke(grantee)


_SCALING_ARGS = (
    "min_capacity",
    "max_capacity",
    "target_invocations_per_instance",
    "max_requests_per_second_per_instance",
    "safety_factor",
    "cpu_utilization_target",
    "scale_in_cooldown",
    "scale_out_cooldown",
    "disable_scale_in",
    "scheduled_capacity",
)


def _scaling_from(args: Mapping[str, Any]) -> _Scaling:
    return _Scaling(
        min_capacity=args.get("min_capacity", 1),
        max_capacity=args.get("max_capacity"),
        target_invocations_per_instance=args.get("target_invocations_per_instance"),
        max_requests_per_second_per_instance=args.get("max_requests_per_second_per_instance"),
        safety_factor=args.get("safety_factor", DEFAULT_SAFETY_FACTOR),
        cpu_utilization_target=args.get("cpu_utilization_target"),
        scale_in_cooldown=args.get("scale_in_cooldown"),
        scale_out_cooldown=args.get("scale_out_cooldown"),
        disable_scale_in=args.get("disable_scale_in", False),
        scheduled_capacity=tuple(args.get("scheduled_capacity", ())),
    )


def _all_problems(endpoint_props: ModelEndpointProps, scaling: _Scaling) -> Problems:
    settings = _Settings(**endpoint_props)
    problems = settings.problems()
    problems.extend(
        scaling.problems(settings.resolved_variants(), per_variant_props=settings.variants is not None)
    )
    return problems


_PAYLOAD_KEYS = {
    "endpointName",
    "productionVariants",
    "autoscalingMinCapacity",
    "autoscalingMaxCapacity",
    "targetTrackingScalingPolicyConfiguration",
}
_VARIANT_KEYS = {
    "ModelName",
    "VariantName",
    "InstanceType",
    "InitialInstanceCount",
    "InitialVariantWeight",
    "AcceleratorType",
}
_TRACKING_KEYS = {
    "TargetValue",
    "PredefinedMetricSpecification",
    "ScaleOutCooldown",
    "ScaleInCooldown",
    "DisableScaleIn",
}


def _map_payload(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Problems]:
    p = Problems()
    mapped: dict[str, Any] = {}
    for key in sorted(set(payload) - _PAYLOAD_KEYS):
        p.add(
            key,
            payload[key],
            f"not a field of the deployer payload (known: {', '.join(sorted(_PAYLOAD_KEYS))})",
        )
    if "endpointName" in payload:
        mapped["endpoint_name"] = payload["endpointName"]
    raw_variants = payload.get("productionVariants")
    if not isinstance(raw_variants, list) or not raw_variants:
        p.add("productionVariants", raw_variants, "a non-empty list of production variants is required")
        raw_variants = []
    variants = []
    for i, raw in enumerate(raw_variants):
        prop = f"productionVariants[{i}]"
        if not isinstance(raw, Mapping):
            p.add(prop, raw, "an object with ModelName, VariantName, InstanceType...")
            continue
        for key in sorted(set(raw) - _VARIANT_KEYS):
            p.add(
                f"{prop}.{key}",
                raw[key],
                f"not a production-variant field (known: {', '.join(sorted(_VARIANT_KEYS))})",
            )
        if raw.get("AcceleratorType"):
            p.add(
                f"{prop}.AcceleratorType",
                raw["AcceleratorType"],
                "Amazon Elastic Inference is discontinued by AWS and SageMaker no longer accepts "
                "accelerators; remove AcceleratorType and choose a GPU or Inferentia instance type "
                "(e.g. ml.g5.xlarge, ml.inf2.xlarge)",
            )
        for required in ("ModelName", "VariantName", "InstanceType"):
            if not isinstance(raw.get(required), str) or not raw.get(required):
                p.add(f"{prop}.{required}", raw.get(required), "a non-empty string is required")
        variants.append(
            ProductionVariant(
                variant_name=str(raw.get("VariantName") or f"Variant{i}"),
                model_name=str(raw.get("ModelName") or DEFAULT_VARIANT_NAME),
                instance_type=InstanceType.of(str(raw.get("InstanceType") or "")),
                initial_instance_count=raw.get("InitialInstanceCount", 1),
                initial_weight=raw.get("InitialVariantWeight", 1.0),
            )
        )
    mapped["variants"] = variants
    if "autoscalingMinCapacity" in payload:
        mapped["min_capacity"] = payload["autoscalingMinCapacity"]
    if "autoscalingMaxCapacity" in payload:
        mapped["max_capacity"] = payload["autoscalingMaxCapacity"]
    tracking = payload.get("targetTrackingScalingPolicyConfiguration")
    if tracking is not None:
        _map_tracking(tracking, mapped, p)
    return mapped, p


def _map_tracking(tracking: Any, mapped: dict[str, Any], p: Problems) -> None:
    prop = "targetTrackingScalingPolicyConfiguration"
    if not isinstance(tracking, Mapping):
        p.add(prop, tracking, "an object with TargetValue and PredefinedMetricSpecification")
        return
    for key in sorted(set(tracking) - _TRACKING_KEYS):
        p.add(
            f"{prop}.{key}",
            tracking[key],
            f"not a target-tracking field (known: {', '.join(sorted(_TRACKING_KEYS))})",
        )
    if "TargetValue" in tracking:
        mapped["target_invocations_per_instance"] = tracking["TargetValue"]
    spec = tracking.get("PredefinedMetricSpecification") or {}
    metric = spec.get("PredefinedMetricType", INVOCATIONS_METRIC) if isinstance(spec, Mapping) else spec
    if metric != INVOCATIONS_METRIC:
        p.add(
            f"{prop}.PredefinedMetricSpecification.PredefinedMetricType",
            metric,
            f"only {INVOCATIONS_METRIC} is supported (for CPU, use cpu_utilization_target)",
        )
    for key, arg in (("ScaleOutCooldown", "scale_out_cooldown"), ("ScaleInCooldown", "scale_in_cooldown")):
        if key not in tracking:
            continue
        seconds = tracking[key]
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            p.add(f"{prop}.{key}", seconds, "a whole number of seconds, 0 or more")
        else:
            mapped[arg] = Duration.seconds(seconds)
    if "DisableScaleIn" in tracking:
        if not isinstance(tracking["DisableScaleIn"], bool):
            p.add(f"{prop}.DisableScaleIn", tracking["DisableScaleIn"], "true or false")
        else:
            mapped["disable_scale_in"] = tracking["DisableScaleIn"]
