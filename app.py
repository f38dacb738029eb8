#!/usr/bin/env python3
"""The example app: the iris model behind an autoscaled, encrypted SageMaker endpoint.

    npx cdk synth                                  # or: python app.py
    npx cdk synth -c instanceType=ml.c6i.large -c minCapacity=2 -c maxCapacity=6
    npx cdk synth -c pipCaBundle=/etc/ssl/certs/ca-certificates.crt   # pip behind a TLS-inspecting proxy

Synthesizes with no AWS credentials and no Docker: the stack is environment-agnostic, the model is
trained deterministically on first use (examples/iris/train.py) and the image is built by `cdk deploy`.
The four cdk-nag packs run on every synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from examples.iris.train import ensure_model
from sagemaker_constructs import (
    AutoScaledEndpoint,
    ContainerImage,
    InstanceType,
    ModelData,
    apply_compliance_packs,
)

HERE = Path(__file__).resolve().parent
IRIS_REQUIREMENTS = HERE / "examples" / "iris" / "requirements.txt"
STACK_ID = "IrisEndpointStack"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"  # small, non-burstable, available in every SageMaker region


class IrisEndpointStack(cdk.Stack):
    """The iris random forest, served by the bundled inference server and scaled on invocations."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        instance_type: InstanceType,
        min_capacity: int,
        max_capacity: int,
        pip_ca_bundle: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.endpoint = AutoScaledEndpoint(
            self,
            "Iris",
            model_data=ModelData.from_directory(ensure_model()),
            image=ContainerImage.from_bundled_server(
                requirements_file=IRIS_REQUIREMENTS, pip_ca_bundle=pip_ca_bundle
            ),
            instance_type=instance_type,
            initial_instance_count=min_capacity,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            tags={"project": "sagemaker-constructs-example"},
        )


def _int_context(app: cdk.App, key: str, default: int) -> int:
    value = app.node.try_get_context(key)
    return default if value is None else int(value)


def build_app(outdir: str | None = None, context: Mapping[str, Any] | None = None) -> cdk.App:
    """The example app, configured from CDK context (`-c key=value`, or `context` in tests)."""
    app = cdk.App(outdir=outdir, context=dict(context) if context else None)
    IrisEndpointStack(
        app,
        STACK_ID,
        instance_type=InstanceType.of(str(app.node.try_get_context("instanceType") or DEFAULT_INSTANCE_TYPE)),
        min_capacity=_int_context(app, "minCapacity", 1),
        max_capacity=_int_context(app, "maxCapacity", 4),
        pip_ca_bundle=app.node.try_get_context("pipCaBundle"),
        description="sagemaker-constructs example: the iris model on an autoscaled SageMaker endpoint",
    )
    apply_compliance_packs(app)
    return app


if __name__ == "__main__":
    build_app().synth()
