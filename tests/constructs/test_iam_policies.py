"""Every IAM policy of both apps: no wildcard action, '*' only in the one statement, no AWS managed policy.

Scanned: inline policies of roles, AWS::IAM::Policy and AWS::IAM::ManagedPolicy documents. The single
exception to "no wildcard in a resource" is the objects under the uncompressed model prefix, which IAM
cannot name otherwise (see ModelData.from_s3_prefix) and which carries its own acknowledgment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from sagemaker_constructs._private.nag import flatten_reference

ANY_RESOURCE_SID = "OnlyAuthorisableOnAnyResource"
PREFIX_OBJECTS = "arn:<AWS::Partition>:s3:::example-corp-ml-models/models/iris/v3-uncompressed/*"


@pytest.fixture(params=["example", "all_options"])
def template(request: pytest.FixtureRequest) -> Template:
    fixture: Template = request.getfixturevalue(f"{request.param}_template")
    return fixture


def policy_documents(template: Template) -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, resource in template.find_resources(type_).items():
            documents.append((logical_id, resource["Properties"]["PolicyDocument"]))
    for logical_id, role in template.find_resources("AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            documents.append((f"{logical_id}/{inline['PolicyName']}", inline["PolicyDocument"]))
    return documents


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_there_are_policies_to_scan(template: Template) -> None:
    assert policy_documents(template)


def test_no_statement_has_a_wildcard_action(template: Template) -> None:
    wildcards = [
        (where, action)
        for where, document in policy_documents(template)
        for statement in document["Statement"]
        for action in as_list(statement.get("Action", [])) + as_list(statement.get("NotAction", []))
        if "*" in action
    ]
    assert wildcards == []


def test_any_resource_appears_only_in_the_one_statement_per_policy(template: Template) -> None:
    for where, document in policy_documents(template):
        holders = [s for s in document["Statement"] if "*" in as_list(s.get("Resource", []))]
        assert [s.get("Sid") for s in holders] in ([], [ANY_RESOURCE_SID]), where
        assert not [s for s in document["Statement"] if "NotResource" in s], where


def test_the_any_resource_statement_is_an_allow_with_conditions(template: Template) -> None:
    for _, document in policy_documents(template):
        for statement in document["Statement"]:
            if statement.get("Sid") == ANY_RESOURCE_SID:
                assert statement["Effect"] == "Allow"
                assert "StringEqualsIfExists" in statement["Condition"]


def test_no_other_resource_contains_a_wildcard(template: Template) -> None:
    wildcards = {
        flatten_reference(resource)
        for _, document in policy_documents(template)
        for statement in document["Statement"]
        if statement.get("Sid") != ANY_RESOURCE_SID
        for resource in as_list(statement.get("Resource", []))
        if "*" in flatten_reference(resource)
    }
    assert wildcards <= {PREFIX_OBJECTS}


def test_no_aws_managed_policy_is_attached(template: Template) -> None:
    assert ":iam::aws:policy/" not in json.dumps(template.to_json())


def test_every_role_uses_only_customer_managed_policies(template: Template) -> None:
    managed = set(template.find_resources("AWS::IAM::ManagedPolicy"))
    for role in template.find_resources("AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert isinstance(arn, dict)
            assert arn.get("Ref") in managed
