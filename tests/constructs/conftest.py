"""Fixtures for the construct tests.

jsii makes every synthesis cost seconds, so the two apps are synthesized once per session and tests that only
read a template share it. Packed model archives go to a per-session cache directory, never ~/.cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from app import STACK_ID as EXAMPLE_STACK_ID
from app import build_app as build_example_app
from sagemaker_constructs import ContainerImage, ModelData
from tests.apps.all_options import STACK_ID as ALL_OPTIONS_STACK_ID
from tests.apps.all_options import build_app as build_all_options_app


@pytest.fixture(scope="session", autouse=True)
def archive_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every archive packed during the tests lands here (the cache's environment variable)."""
    cache = tmp_path_factory.mktemp("archive-cache")
    previous = os.environ.get("SAGEMAKER_CONSTRUCTS_CACHE_DIR")
    os.environ["SAGEMAKER_CONSTRUCTS_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("SAGEMAKER_CONSTRUCTS_CACHE_DIR", None)
    else:
        os.environ["SAGEMAKER_CONSTRUCTS_CACHE_DIR"] = previous


def write_model_dir(root: Path, content: bytes = b"weights-v1") -> Path:
    """A small model folder: one artifact and an inference script."""
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / "model.joblib").write_bytes(content * 100)
    (root / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def docker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal Docker build context."""
    root = tmp_path_factory.mktemp("image")
    (root / "Dockerfile").write_text('FROM public.ecr.aws/docker/library/python:3.11-slim\nCMD ["serve"]\n')
    return root


def new_stack(outdir: Path | None = None, **context: Any) -> cdk.Stack:
    app = cdk.App(outdir=str(outdir) if outdir else None, context=context or None)
    return cdk.Stack(app, "TestStack")


def bucket(stack: cdk.Stack, name: str = "model-bucket") -> s3.IBucket:
    existing = stack.node.try_find_child(f"Bucket{name}")
    return existing or s3.Bucket.from_bucket_name(stack, f"Bucket{name}", name)  # type: ignore[return-value]


def repository(stack: cdk.Stack, name: str = "serving") -> ecr.IRepository:
    existing = stack.node.try_find_child(f"Repo{name}")
    return existing or ecr.Repository.from_repository_name(stack, f"Repo{name}", name)  # type: ignore[return-value]


def ecr_image(stack: cdk.Stack, name: str = "serving", tag: str = "1.0") -> ContainerImage:
    return ContainerImage.from_ecr_repository(repository(stack, name), tag)


def bucket_data(stack: cdk.Stack, key: str = "models/model.tar.gz") -> ModelData:
    return ModelData.from_bucket(bucket(stack), key)


def only(template: Template, resource_type: str) -> tuple[str, Mapping[str, Any]]:
    """The single resource of `resource_type` (its logical ID as found, never hard-coded)."""
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return next(iter(found.items()))


def policy_statements(template: Template) -> list[dict[str, Any]]:
    """Every statement of every customer-managed policy in the template."""
    statements = []
    for resource in template.find_resources("AWS::IAM::ManagedPolicy").values():
        statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


@pytest.fixture(scope="session")
def example_app(tmp_path_factory: pytest.TempPathFactory) -> cdk.App:
    """app.py's app, synthesized once (the compliance packs run during this synthesis)."""
    app = build_example_app(str(tmp_path_factory.mktemp("example-out")))
    app.synth()
    return app


@pytest.fixture(scope="session")
def example_template(example_app: cdk.App) -> Template:
    stack = example_app.node.find_child(EXAMPLE_STACK_ID)
    assert isinstance(stack, cdk.Stack)
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def all_options_app(tmp_path_factory: pytest.TempPathFactory) -> cdk.App:
    """tests/apps/all_options.py's app, synthesized once."""
    app = build_all_options_app(str(tmp_path_factory.mktemp("all-options-out")))
    app.synth()
    return app


@pytest.fixture(scope="session")
def all_options_template(all_options_app: cdk.App) -> Template:
    stack = all_options_app.node.find_child(ALL_OPTIONS_STACK_ID)
    assert isinstance(stack, cdk.Stack)
    return Template.from_stack(stack)
