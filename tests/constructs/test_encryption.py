"""The endpoint key: rotation, an explicit key policy without kms:*, CloudWatch Logs access, supplied keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from sagemaker_constructs import EndpointEncryptionKey, ModelEndpoint
from sagemaker_constructs.encryption import KEY_ADMINISTRATION_ACTIONS, KEY_USAGE_ACTIONS, allow_log_group
from tests.constructs.conftest import bucket_data, ecr_image, new_stack

IMPORTED_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@dataclass
class Keys:
    stack: cdk.Stack
    template: Template
    endpoints: dict[str, ModelEndpoint]
    in_app_key: kms.Key


@pytest.fixture(scope="module")
def keys() -> Keys:
    stack = new_stack()
    data, image = bucket_data(stack), ecr_image(stack)
    in_app_key = kms.Key(stack, "TeamKey", enable_key_rotation=True)
    endpoints = {
        "created": ModelEndpoint(stack, "Created", endpoint_name="created", model_data=data, image=image),
        "in_app": ModelEndpoint(
            stack, "InApp", endpoint_name="in-app", model_data=data, image=image, encryption_key=in_app_key
        ),
        "imported": ModelEndpoint(
            stack,
            "Imported",
            endpoint_name="imported",
            model_data=data,
            image=image,
            encryption_key=kms.Key.from_key_arn(stack, "ImportedKey", IMPORTED_KEY_ARN),
        ),
    }
    return Keys(stack, Template.from_stack(stack), endpoints, in_app_key)


def key_for(template: Template, endpoint_name: str) -> tuple[str, Mapping[str, Any]]:
    """The KMS key whose policy lets CloudWatch Logs encrypt `endpoint_name`'s log group."""
    log_group = f'/aws/sagemaker/Endpoints/{endpoint_name}"'
    (found,) = [
        (k, r)
        for k, r in template.find_resources("AWS::KMS::Key").items()
        if log_group in json.dumps(r["Properties"]["KeyPolicy"])
    ]
    return found


def created_key(keys: Keys) -> Mapping[str, Any]:
    return key_for(keys.template, "created")[1]


def key_statements(key: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(key["Properties"]["KeyPolicy"]["Statement"])


def test_created_key_rotates(keys: Keys) -> None:
    assert created_key(keys)["Properties"]["EnableKeyRotation"] is True


def test_created_key_is_retained_by_default(keys: Keys) -> None:
    assert created_key(keys)["DeletionPolicy"] == "Retain"


def test_key_policy_has_no_wildcard_action(keys: Keys) -> None:
    for statement in key_statements(created_key(keys)):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a]


def test_account_administers_the_key(keys: Keys) -> None:
    (admin,) = [s for s in key_statements(created_key(keys)) if s.get("Sid") == "AccountAdministersKey"]
    assert admin["Action"] == list(KEY_ADMINISTRATION_ACTIONS)
    assert json.dumps(admin["Principal"]).endswith(':root"]]}}')


def test_account_may_delegate_key_use_to_iam_policies(keys: Keys) -> None:
    (usage,) = [s for s in key_statements(created_key(keys)) if s.get("Sid") == "IamPoliciesMayDelegateUse"]
    assert usage["Action"] == list(KEY_USAGE_ACTIONS)
    assert "kms:PutKeyPolicy" not in usage["Action"]


def test_cloudwatch_logs_may_use_the_key_for_this_log_group_only(keys: Keys) -> None:
    (logs,) = [s for s in key_statements(created_key(keys)) if "Service" in s["Principal"]]
    assert logs["Principal"]["Service"] == {
        "Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }
    context = json.dumps(logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    assert context.endswith(':log-group:/aws/sagemaker/Endpoints/created"]]}')


def test_endpoint_config_and_log_group_use_the_created_key(keys: Keys) -> None:
    key_id, _ = key_for(keys.template, "created")
    reference = {"Fn::GetAtt": [key_id, "Arn"]}
    keys.template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": reference})
    keys.template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": reference})


def test_supplied_key_is_used_and_no_key_is_created_for_it(keys: Keys) -> None:
    assert keys.endpoints["in_app"].key is keys.in_app_key
    assert len(keys.template.find_resources("AWS::KMS::Key")) == 2  # TeamKey and the "created" endpoint's


def test_key_in_the_app_gets_the_logs_statement(keys: Keys) -> None:
    key_id, key = key_for(keys.template, "in-app")
    # It is the team's own key (CDK's default policy, with kms:* for the account), now also open to Logs.
    assert '"kms:*"' in json.dumps(key_statements(key))
    keys.template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig", {"KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    )


def test_imported_key_is_referenced_by_arn(keys: Keys) -> None:
    keys.template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"KmsKeyId": IMPORTED_KEY_ARN})
    keys.template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": IMPORTED_KEY_ARN})


def test_imported_key_policy_cannot_be_changed_from_here() -> None:
    stack = new_stack()
    assert (
        allow_log_group(kms.Key.from_key_arn(stack, "K", IMPORTED_KEY_ARN), "/aws/sagemaker/Endpoints/x")
        is False
    )


def test_removal_policy_applies_to_the_key() -> None:
    stack = new_stack()
    EndpointEncryptionKey(stack, "Key", removal_policy=cdk.RemovalPolicy.DESTROY)
    (key,) = Template.from_stack(stack).find_resources("AWS::KMS::Key").values()
    assert key["DeletionPolicy"] == "Delete"
