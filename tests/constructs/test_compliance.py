"""cdk-nag: both apps pass all four packs, and every acknowledgment is one the library can justify."""

from __future__ import annotations

from collections import Counter

import aws_cdk as cdk
import cdk_nag
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from sagemaker_constructs import COMPLIANCE_PACKS, ExecutionRole, apply_compliance_packs, compliance_findings
from tests.constructs.conftest import new_stack

PREFIX_FINDING = (
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::example-corp-ml-models/models/iris/"
    "v3-uncompressed/*]"
)


def acknowledgments(root: IConstruct) -> list[tuple[str, str]]:
    """(construct path, finding id) of every acknowledgment in the tree."""
    found = []
    for construct in root.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found += [(construct.node.path, key.removeprefix("Annotation::")) for key in entry.data]
    return found


def test_the_four_packs_are_applied() -> None:
    assert [p.__name__ for p in COMPLIANCE_PACKS] == [
        "AwsSolutionsChecks",
        "HIPAASecurityChecks",
        "NIST80053R5Checks",
        "PCIDSS321Checks",
    ]


def test_example_app_has_no_unacknowledged_finding(example_app: cdk.App) -> None:
    assert compliance_findings(example_app) == []


def test_all_options_app_has_no_unacknowledged_finding(all_options_app: cdk.App) -> None:
    assert compliance_findings(all_options_app) == []


def test_example_app_acknowledges_only_the_any_resource_statement(example_app: cdk.App) -> None:
    assert acknowledgments(example_app) == [
        ("IrisEndpointStack/Iris/Endpoint/ExecutionRole/Policy", "AwsSolutions-IAM5[Resource::*]")
    ]


def test_all_options_app_acknowledges_the_any_resource_statement_and_the_s3_prefix(
    all_options_app: cdk.App,
) -> None:
    found = acknowledgments(all_options_app)
    assert Counter(finding for _, finding in found) == {
        "AwsSolutions-IAM5[Resource::*]": 2,
        PREFIX_FINDING: 1,
    }
    assert {path.rsplit("/", 2)[-2:] == ["ExecutionRole", "Policy"] for path, _ in found} == {True}


def test_every_acknowledgment_gives_a_reason(example_app: cdk.App, all_options_app: cdk.App) -> None:
    for app in (example_app, all_options_app):
        for construct in app.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    assert all(len(reason) > 80 for reason in entry.data.values())


def test_the_acknowledged_statement_would_be_a_finding_without_it() -> None:
    source = new_stack()
    document = source.resolve(ExecutionRole(source, "Role").policy.document.to_json())
    copy = new_stack()
    iam.CfnManagedPolicy(copy, "Copy", policy_document=document)
    assert "AwsSolutions-IAM5[Resource::*]" in {f.rule for f in compliance_findings(copy)}


def test_findings_helper_reports_a_non_compliant_resource() -> None:
    stack = new_stack()
    s3.Bucket(stack, "Bare")
    rules = {f.rule for f in compliance_findings(stack)}
    assert {
        "AwsSolutions-S1",
        "HIPAA.Security-S3BucketLoggingEnabled",
        "PCI.DSS.321-S3DefaultEncryptionKMS",
    } <= rules


def test_applied_packs_make_synthesis_fail_on_a_finding() -> None:
    stack = new_stack()
    s3.Bucket(stack, "Bare")
    app = stack.node.root
    assert isinstance(app, cdk.App)
    apply_compliance_packs(app)
    with pytest.raises(RuntimeError, match=r"ValidationFailed: .*\(AwsSolutions\)"):
        app.synth()


def test_pack_objects_are_validation_plugins() -> None:
    app = cdk.App()
    packs = apply_compliance_packs(app)
    assert [type(p) for p in packs] == list(COMPLIANCE_PACKS)
    assert all(isinstance(p, cdk_nag.NagPack) for p in packs)
