"""The execution role: trust, one customer-managed policy, least privilege, supplied roles, boundaries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from sagemaker_constructs import ExecutionRole, ModelEndpoint
from tests.constructs.conftest import bucket_data, ecr_image, new_stack

SUPPLIED_ROLE_ARN = "arn:aws:iam::111122223333:role/platform-sagemaker"
IMMUTABLE_ROLE_ARN = "arn:aws:iam::111122223333:role/central-sagemaker"


@dataclass
class Roles:
    stack: cdk.Stack
    template: Template
    endpoints: dict[str, ModelEndpoint]


@pytest.fixture(scope="module")
def roles() -> Roles:
    stack = new_stack()
    data, image = bucket_data(stack), ecr_image(stack)
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123", availability_zones=["us-east-1a"], private_subnet_ids=["subnet-0aaa"]
    )
    endpoints = {
        "default": ModelEndpoint(stack, "Default", endpoint_name="default", model_data=data, image=image),
        "supplied": ModelEndpoint(
            stack,
            "Supplied",
            endpoint_name="supplied",
            model_data=data,
            image=image,
            role=iam.Role.from_role_arn(stack, "SuppliedRole", SUPPLIED_ROLE_ARN),
        ),
        "immutable": ModelEndpoint(
            stack,
            "Immutable",
            endpoint_name="immutable",
            model_data=data,
            image=image,
            role=iam.Role.from_role_arn(stack, "ImmutableRole", IMMUTABLE_ROLE_ARN, mutable=False),
        ),
        "bounded": ModelEndpoint(
            stack,
            "Bounded",
            endpoint_name="bounded",
            model_data=data,
            image=image,
            permissions_boundary=iam.ManagedPolicy.from_managed_policy_name(stack, "Boundary", "ml-boundary"),
        ),
        "vpc": ModelEndpoint(
            stack, "Networked", endpoint_name="networked", model_data=data, image=image, vpc=vpc
        ),
    }
    return Roles(stack, Template.from_stack(stack), endpoints)


def policy_of(roles: Roles, key: str) -> dict[str, Any]:
    """The managed policy of one endpoint's execution role, found through the endpoint's attribute."""
    role = roles.endpoints[key].execution_role
    assert role is not None
    document = roles.stack.resolve(role.policy.document.to_json())
    (found,) = [
        r["Properties"]
        for r in roles.template.find_resources("AWS::IAM::ManagedPolicy").values()
        if r["Properties"]["PolicyDocument"] == document
    ]
    return dict(found)


def statements(roles: Roles, key: str) -> list[dict[str, Any]]:
    return list(policy_of(roles, key)["PolicyDocument"]["Statement"])


def any_resource_statement(roles: Roles, key: str) -> dict[str, Any]:
    (statement,) = [s for s in statements(roles, key) if s["Resource"] == "*"]
    return statement


def test_role_trusts_sagemaker_for_this_account_only(roles: Roles) -> None:
    roles.template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ],
                "Version": "2012-10-17",
            }
        },
    )


def test_created_roles_have_no_inline_policies(roles: Roles) -> None:
    assert all(
        "Policies" not in r["Properties"] for r in roles.template.find_resources("AWS::IAM::Role").values()
    )
    roles.template.resource_count_is("AWS::IAM::Policy", 0)


def test_created_roles_attach_only_customer_managed_policies(roles: Roles) -> None:
    managed = set(roles.template.find_resources("AWS::IAM::ManagedPolicy"))
    for role in roles.template.find_resources("AWS::IAM::Role").values():
        assert [ref["Ref"] in managed for ref in role["Properties"]["ManagedPolicyArns"]] == [True]


def test_permissions_live_in_one_managed_policy_per_endpoint(roles: Roles) -> None:
    roles.template.resource_count_is("AWS::IAM::ManagedPolicy", len(roles.endpoints))


def test_supplied_role_gets_the_policy_attached(roles: Roles) -> None:
    assert policy_of(roles, "supplied")["Roles"] == ["platform-sagemaker"]


def test_supplied_role_is_not_recreated(roles: Roles) -> None:
    endpoint = roles.endpoints["supplied"]
    assert endpoint.execution_role is not None
    assert endpoint.execution_role.created_role is None
    assert roles.stack.resolve(endpoint.role.role_arn) == SUPPLIED_ROLE_ARN  # type: ignore[union-attr]


def test_immutable_role_opts_out_of_the_attachment(roles: Roles) -> None:
    assert "Roles" not in policy_of(roles, "immutable")


def test_models_use_the_supplied_role(roles: Roles) -> None:
    roles.template.has_resource_properties("AWS::SageMaker::Model", {"ExecutionRoleArn": SUPPLIED_ROLE_ARN})


def test_permissions_boundary_is_set_on_the_created_role(roles: Roles) -> None:
    roles.template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "PermissionsBoundary": {
                "Fn::Join": ["", Match.array_with([Match.string_like_regexp("policy/ml-boundary")])]
            }
        },
    )


def test_only_the_bounded_role_has_a_boundary(roles: Roles) -> None:
    bounded = [
        r
        for r in roles.template.find_resources("AWS::IAM::Role").values()
        if "PermissionsBoundary" in r["Properties"]
    ]
    assert len(bounded) == 1


def test_one_statement_on_any_resource_holds_token_and_metrics(roles: Roles) -> None:
    statement = any_resource_statement(roles, "default")
    assert statement["Action"] == ["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"]


def test_metrics_are_limited_to_the_endpoint_namespace(roles: Roles) -> None:
    condition = any_resource_statement(roles, "default")["Condition"]
    assert condition == {"StringEqualsIfExists": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints"]}}


def test_logs_are_writable_only_in_the_endpoint_log_group(roles: Roles) -> None:
    (logs_statement,) = [s for s in statements(roles, "default") if "logs:PutLogEvents" in s["Action"]]
    resources = json.dumps(logs_statement["Resource"])
    assert resources.count("/aws/sagemaker/Endpoints/default") == 1
    assert '"Arn"]' in resources
    assert len(logs_statement["Resource"]) == 2


def test_volume_key_grants_are_for_aws_resources_only(roles: Roles) -> None:
    (grant,) = [s for s in statements(roles, "default") if s["Action"] == "kms:CreateGrant"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert grant["Resource"]["Fn::GetAtt"][1] == "Arn"


def test_no_statement_uses_a_wildcard_action(roles: Roles) -> None:
    for key in roles.endpoints:
        for statement in statements(roles, key):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [a for a in actions if "*" in a], (key, statement)


def test_vpc_adds_network_interface_actions_to_the_any_resource_statement(roles: Roles) -> None:
    actions = any_resource_statement(roles, "vpc")["Action"]
    assert set(actions) >= {
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeVpcs",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    }


def test_network_interfaces_are_confined_to_the_vpc_and_subnets(roles: Roles) -> None:
    condition = any_resource_statement(roles, "vpc")["Condition"]["ArnEqualsIfExists"]
    assert json.dumps(condition["ec2:Vpc"]).endswith(':vpc/vpc-0123"]]}]')
    assert json.dumps(condition["ec2:Subnet"]).endswith(':subnet/subnet-0aaa"]]}]')


def test_without_vpc_there_is_no_ec2_permission(roles: Roles) -> None:
    assert "ec2:" not in json.dumps(statements(roles, "default"))


def test_any_resource_statement_is_acknowledged_once_with_the_aws_reason(roles: Roles) -> None:
    role = roles.endpoints["default"].execution_role
    assert role is not None
    (entry,) = [
        e for e in role.policy.node.metadata if e.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    ]
    (reason,) = entry.data.values()
    assert list(entry.data) == ["Annotation::AwsSolutions-IAM5[Resource::*]"]
    assert "ecr:GetAuthorizationToken" in reason
    assert "no resource types" in reason


def test_statement_on_any_resource_cannot_be_added_directly() -> None:
    role = ExecutionRole(new_stack(), "Role")
    with pytest.raises(ValueError, match="allow_on_any_resource"):
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListAllMyBuckets"], resources=["*"]))


def test_any_resource_conditions_must_use_if_exists_operators() -> None:
    role = ExecutionRole(new_stack(), "Role")
    with pytest.raises(ValueError, match=r"\.\.\.IfExists operators, got StringEquals"):
        role.allow_on_any_resource(["ec2:DescribeVpcs"], {"StringEquals": {"ec2:Region": ["us-east-1"]}})


def test_any_resource_conditions_accumulate_per_key() -> None:
    stack = new_stack()
    role = ExecutionRole(stack, "Role", metric_namespaces=["A"])
    role.allow_on_any_resource([], {"StringEqualsIfExists": {"cloudwatch:namespace": ["B"]}})
    statement = stack.resolve(role.policy.document.to_json())["Statement"][0]
    assert statement["Condition"] == {"StringEqualsIfExists": {"cloudwatch:namespace": ["A", "B"]}}
