"""The IAM role SageMaker assumes to pull the image, read the model and write logs and metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from ._private import nag

# The CloudWatch namespace SageMaker publishes endpoint instance metrics to with the execution role.
ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"

_ANY_RESOURCE_REASON = (
    "AWS authorises these actions on no resource narrower than '*': ecr:GetAuthorizationToken and "
    "cloudwatch:PutMetricData have no resource types, and the ec2:Describe* calls SageMaker makes for a "
    "VPC endpoint do not support resource-level permissions. Where a VPC is used, the ENI create/delete "
    "actions are here too because EC2 assigns the network-interface ID only when SageMaker creates it. "
    "The statement is narrowed by conditions instead: cloudwatch:namespace for metrics, and ec2:Vpc / "
    "ec2:Subnet for network interfaces (the ...IfExists operators leave the other actions unaffected)."
)


class ExecutionRole(Construct):
    """The SageMaker execution role and the one customer-managed policy that holds its permissions.

    Least privilege: sources (model data, container image) and the endpoint add statements scoped to the
    exact resources they use. Everything AWS authorises only on ``*`` goes into ONE statement, narrowed by
    conditions, and that statement carries the library's single ``AwsSolutions-IAM5[Resource::*]``
    acknowledgment. No AWS managed policies, no inline policies (HIPAA/NIST/PCI flag inline policies,
    including the ``DefaultPolicy`` that ``grant_*`` methods create), so permissions live in a
    ``iam.ManagedPolicy`` attached to the role.

    :param role: an existing role to use. Default: a new role that only ``sagemaker.amazonaws.com`` can
        assume, and only on behalf of this account (``aws:SourceAccount``, confused-deputy protection).
        A supplied role gets the same managed policy attached (imported roles included, through the
        policy's ``Roles``). To opt out — e.g. a centrally managed role whose permissions you grant
        yourself — pass ``iam.Role.from_role_arn(..., mutable=False)``: the policy is still synthesized
        (read it from ``policy``) but attached to nothing.
    :param permissions_boundary: a boundary for the role this construct creates. Default: none.
        Ignored for a supplied role, which keeps whatever boundary it has.
    :param metric_namespaces: CloudWatch namespaces the role may publish to. Default: only
        ``/aws/sagemaker/Endpoints``, where SageMaker puts endpoint instance metrics.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        role: iam.IRole | None = None,
        permissions_boundary: iam.IManagedPolicy | None = None,
        metric_namespaces: Sequence[str] = (ENDPOINT_METRICS_NAMESPACE,),
    ) -> None:
        super().__init__(scope, id)
        self._created_role: iam.Role | None = None
        if role is None:
            self._created_role = iam.Role(
                self,
                "Role",
                assumed_by=iam.ServicePrincipal(
                    "sagemaker.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                ),
                description="SageMaker execution role: pulls the model image, reads the model, writes logs",
                permissions_boundary=permissions_boundary,
            )
            role = self._created_role
        self._role = role

        # The only statement with a '*' resource. Actions and conditions are added as sources bind.
        self._any_resource = iam.PolicyStatement(
            sid="OnlyAuthorisableOnAnyResource",
            actions=["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"],
            resources=["*"],
        )
        self._any_resource_conditions: dict[str, dict[str, list[Any]]] = {}
        self.allow_on_any_resource(
            [], {"StringEqualsIfExists": {"cloudwatch:namespace": list(metric_namespaces)}}
        )
        self._policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="Least-privilege permissions of a SageMaker model execution role",
            statements=[self._any_resource],
        )
        # Through the role, so an immutable imported role (mutable=False) is left untouched.
        role.add_managed_policy(self._policy)
        nag.acknowledge(self._policy, "AwsSolutions-IAM5[Resource::*]", _ANY_RESOURCE_REASON)

    @property
    def role(self) -> iam.IRole:
        """The role SageMaker assumes (created or supplied)."""
        return self._role

    @property
    def created_role(self) -> iam.Role | None:
        """The role this construct created, or None when one was supplied."""
        return self._created_role

    @property
    def policy(self) -> iam.ManagedPolicy:
        """The customer-managed policy holding every permission the role receives from this library."""
        return self._policy

    @property
    def role_arn(self) -> str:
        return self._role.role_arn

    def add_to_policy(self, statement: iam.PolicyStatement) -> None:
        """Add a statement scoped to named resources.

        A statement on ``*`` is refused: use ``allow_on_any_resource`` so that it joins the one statement
        the library acknowledges, with a condition that narrows it.
        """
        if "*" in statement.resources or statement.not_resources:
            raise ValueError(
                "ExecutionRole.add_to_policy takes statements on named resources; "
                "use allow_on_any_resource for actions AWS authorises only on '*'"
            )
        self._policy.add_statements(statement)

    def allow_on_any_resource(
        self, actions: Sequence[str], conditions: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Add actions that AWS authorises only on ``*`` to the single ``*`` statement.

        Conditions must use ``...IfExists`` operators: the statement holds unrelated actions, and an
        ``IfExists`` condition constrains only requests whose context carries its key (IAM User Guide,
        "Condition operators", ...IfExists). Anything else would deny the other actions.
        """
        for operator, keys in (conditions or {}).items():
            if not operator.endswith("IfExists"):
                raise ValueError(
                    f"conditions on the '*' statement must use ...IfExists operators, got {operator}"
                )
            merged = self._any_resource_conditions.setdefault(operator, {})
            for key, values in keys.items():
                known = merged.setdefault(key, [])
                known.extend(v for v in values if v not in known)
            # add_condition merges by key, so re-adding the operator's full map keeps earlier keys.
            self._any_resource.add_condition(operator, merged)
        self._any_resource.add_actions(*[a for a in actions if a not in self._any_resource.actions])

    def allow_vpc_access(self, *, vpc_arn: str, subnet_arns: Sequence[str]) -> None:
        """Let SageMaker manage the endpoint's network interfaces in this VPC and these subnets only."""
        self.allow_on_any_resource(
            [
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ],
            {"ArnEqualsIfExists": {"ec2:Vpc": [vpc_arn], "ec2:Subnet": list(subnet_arns)}},
        )


def subnet_arn(scope: Construct, subnet_id: str) -> str:
    return Stack.of(scope).format_arn(service="ec2", resource="subnet", resource_name=subnet_id)


def vpc_arn(scope: Construct, vpc_id: str) -> str:
    return Stack.of(scope).format_arn(service="ec2", resource="vpc", resource_name=vpc_id)
