"""The KMS key that encrypts an endpoint's storage volume and its log group."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct, IConstruct

# Written out instead of kms:* (or kms:Create*-style wildcards), so a reviewer sees what the account may do.
KEY_ADMINISTRATION_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)
# What IAM policies in the account may then grant: SageMaker (through the caller of CreateEndpoint and
# the execution role) creates grants for the EBS volume; nothing here lets anyone use the key by default.
KEY_USAGE_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)
# CloudWatch Logs' needs, per "Encrypt log data in CloudWatch Logs using AWS KMS" (AWS docs).
LOGS_SERVICE_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


class EndpointEncryptionKey(Construct):
    """A customer-managed KMS key with yearly automatic rotation and an explicit key policy.

    The key policy has no ``kms:*``: the account root gets key administration and the usage actions,
    which IAM policies in the account may then delegate (the root statement is what makes IAM policies
    count for this key). ``allow_log_group`` adds the CloudWatch Logs service principal, limited by an
    encryption-context condition to one log group.

    :param removal_policy: what happens to the key when it leaves the stack. Default: RETAIN, because
        a deleted key makes everything it encrypted unreadable (KMS still waits 7-30 days).
    """

    def __init__(
        self, scope: Construct, id: str, *, removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    ) -> None:
        super().__init__(scope, id)
        account = iam.AccountRootPrincipal()
        self._key = kms.Key(
            self,
            "Key",
            description="Encrypts a SageMaker endpoint's storage volume and its CloudWatch log group",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            policy=iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="AccountAdministersKey",
                        principals=[account],
                        actions=list(KEY_ADMINISTRATION_ACTIONS),
                        # In a key policy, "*" means this key.
                        resources=["*"],
                    ),
                    iam.PolicyStatement(
                        sid="IamPoliciesMayDelegateUse",
                        principals=[account],
                        actions=list(KEY_USAGE_ACTIONS),
                        resources=["*"],
                    ),
                ]
            ),
        )

    @property
    def key(self) -> kms.Key:
        return self._key

    def allow_log_group(self, log_group_name: str) -> None:
        allow_log_group(self._key, log_group_name)


def log_group_arn(scope: IConstruct, log_group_name: str) -> str:
    """The log group's ARN without the trailing ``:*`` (the form CloudWatch Logs puts in the context)."""
    return Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=log_group_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def allow_log_group(key: kms.IKey, log_group_name: str) -> bool:
    """Let CloudWatch Logs use `key` for one log group; returns False when `key`'s policy is not ours to edit.

    An imported key's policy cannot be changed from here: it must already allow the ``logs.<region>``
    principal (see AWS's "Encrypt log data in CloudWatch Logs using AWS KMS").
    """
    result = key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            actions=list(LOGS_SERVICE_ACTIONS),
            resources=["*"],
            conditions={
                "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn(key, log_group_name)}
            },
        )
    )
    return bool(result.statement_added)
