"""The README's sample of using the constructs from another CDK app, run exactly as printed there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.constructs.conftest import write_model_dir

README_SAMPLE = """\
import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from sagemaker_constructs import (
    AutoScaledEndpoint,
    ContainerImage,
    InstanceType,
    ModelData,
    apply_compliance_packs,
)

app = cdk.App()
stack = cdk.Stack(app, "ChurnModelStack")

churn = AutoScaledEndpoint(
    stack,
    "Churn",
    model_data=ModelData.from_directory("model/"),  # packed into a deterministic model.tar.gz
    image=ContainerImage.from_bundled_server(model_requirements=["scikit-learn==1.9.1"]),
    instance_type=InstanceType.C6I_LARGE,
    min_capacity=1,
    max_capacity=4,
    max_requests_per_second_per_instance=50,  # from your load test; target = 50 * 0.5 * 60 per minute
)

# Who may call it: a managed (not inline) policy, so the HIPAA/NIST/PCI packs stay green.
caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
iam.ManagedPolicy(stack, "InvokeChurn", statements=[churn.endpoint.invoke_policy_statement()], roles=[caller])

apply_compliance_packs(app)  # synthesis fails on any unacknowledged cdk-nag finding
app.synth()
"""


def test_readme_sample_synthesizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model_dir(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDK_OUTDIR", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(README_SAMPLE, "README.md", "exec"), namespace)
    outdir = Path(namespace["app"].outdir)  # type: ignore[attr-defined]
    template = json.loads((outdir / "ChurnModelStack.template.json").read_text())
    types = sorted(r["Type"] for r in template["Resources"].values())
    assert types.count("AWS::SageMaker::Endpoint") == 1
    assert types.count("AWS::ApplicationAutoScaling::ScalingPolicy") == 1
