"""Acknowledging one cdk-nag finding at a time, on the construct that raises it."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def flatten_reference(value: Any) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it in a finding ID.

    cdk-nag (utils/flatten-cfn-reference) turns `Ref` into `<Id>`, `Fn::GetAtt` into `<Id.Attr>`, joins
    `Fn::Join`, and rewrites `${...}` in strings to `<...>`. Acknowledging a finding on a token-built ARN
    needs exactly that string.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(flatten_reference(item) for item in items)
        if function in ("Fn::Sub", "Fn::ImportValue"):
            return flatten_reference(argument)
        if function in ("Fn::GetAtt", "Ref"):
            # <Id.Attribute> for an attribute, <Id> for a reference.
            parts = argument if function == "Fn::GetAtt" else [argument]
            return f"<{'.'.join(flatten_reference(part) for part in parts)}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_resource_finding(scope: IConstruct, resource: str) -> str:
    """The AwsSolutions-IAM5 finding ID for an Allow statement on `resource` in a policy under `scope`."""
    return f"AwsSolutions-IAM5[Resource::{flatten_reference(Stack.of(scope).resolve(resource))}]"


def acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))
