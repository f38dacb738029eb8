"""Container images: the bundled server's build contract, local Dockerfiles, ECR images and their grants."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from sagemaker_constructs import ContainerImage, ModelEndpoint, ProductionVariant, bundled_server_directory
from sagemaker_constructs import ecr_image_asset as ecr_image_asset_module
from tests.constructs.conftest import bucket_data, ecr_image, new_stack, policy_statements

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "corporate-ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    return path


@pytest.fixture(scope="module")
def context_with_litter(docker_dir: Path) -> Path:
    (docker_dir / "serve.py").write_text("print('serve')\n")
    (docker_dir / "__pycache__").mkdir(exist_ok=True)
    (docker_dir / "__pycache__" / "serve.cpython-311.pyc").write_bytes(b"\0")
    (docker_dir / "tests").mkdir(exist_ok=True)
    (docker_dir / "tests" / "test_serve.py").write_text("def test(): pass\n")
    (docker_dir / ".pytest_cache").mkdir(exist_ok=True)
    return docker_dir


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory, ca_bundle: Path, context_with_litter: Path) -> Path:
    """One stack: the bundled server (requirements, CA bundle), a local Dockerfile and an ECR image."""
    outdir = tmp_path_factory.mktemp("images-out")
    requirements = tmp_path_factory.mktemp("req") / "requirements.txt"
    requirements.write_text("# framework\njoblib==1.6.0  # pinned\n\nnumpy == 2.4.6\n")
    stack = new_stack(outdir)
    ModelEndpoint(
        stack,
        "Bundled",
        model_data=bucket_data(stack),
        image=ContainerImage.from_bundled_server(
            model_requirements=["scikit-learn==1.9.1"],
            requirements_file=requirements,
            pip_ca_bundle=ca_bundle,
        ),
    )
    ModelEndpoint(
        stack,
        "Local",
        model_data=bucket_data(stack),
        image=ContainerImage.from_directory(
            context_with_litter, build_args={"FLAVOUR": "cpu"}, needs_network=True
        ),
    )
    ModelEndpoint(
        stack, "Ecr", model_data=bucket_data(stack), image=ecr_image(stack, tag="sha256:" + "a" * 64)
    )
    ModelEndpoint(
        stack, "Override", model_data=bucket_data(stack), image=ecr_image(stack), network_isolation=False
    )
    stack.node.root.synth()  # type: ignore[attr-defined]
    return outdir


@pytest.fixture(scope="module")
def template(assembly: Path) -> Template:
    return Template.from_json(json.loads((assembly / "TestStack.template.json").read_text()))


@pytest.fixture(scope="module")
def docker_assets(assembly: Path) -> list[dict[str, Any]]:
    manifest = json.loads((assembly / "TestStack.assets.json").read_text())
    return [asset["source"] for asset in manifest["dockerImages"].values()]


def bundled(docker_assets: list[dict[str, Any]]) -> dict[str, Any]:
    (source,) = [s for s in docker_assets if "MODEL_REQUIREMENTS" in s.get("dockerBuildArgs", {})]
    return source


def local(docker_assets: list[dict[str, Any]]) -> dict[str, Any]:
    (source,) = [s for s in docker_assets if "FLAVOUR" in s.get("dockerBuildArgs", {})]
    return source


def test_bundled_server_passes_requirements_space_separated(docker_assets: list[dict[str, Any]]) -> None:
    assert bundled(docker_assets)["dockerBuildArgs"]["MODEL_REQUIREMENTS"] == (
        "scikit-learn==1.9.1 joblib==1.6.0 numpy==2.4.6"
    )


def test_ca_bundle_is_a_build_secret_named_pip_ca(
    docker_assets: list[dict[str, Any]], ca_bundle: Path
) -> None:
    assert bundled(docker_assets)["dockerBuildSecrets"] == {"pip-ca": f"src={ca_bundle.resolve()}"}


def test_images_are_built_for_linux_amd64(docker_assets: list[dict[str, Any]]) -> None:
    assert {source["platform"] for source in docker_assets} == {"linux/amd64"}


def test_bundled_server_build_context_is_the_inference_image(
    docker_assets: list[dict[str, Any]], assembly: Path
) -> None:
    staged = assembly / bundled(docker_assets)["directory"]
    assert (staged / "Dockerfile").read_bytes() == (REPO / "inference_image" / "Dockerfile").read_bytes()


def test_bundled_server_context_leaves_out_caches_and_tests(
    docker_assets: list[dict[str, Any]], assembly: Path
) -> None:
    staged = assembly / bundled(docker_assets)["directory"]
    assert not [
        p
        for p in staged.rglob("*")
        if p.name in {"__pycache__", "tests", ".pytest_cache"} or p.suffix == ".pyc"
    ]


def test_local_context_keeps_sources_and_drops_litter(
    docker_assets: list[dict[str, Any]], assembly: Path
) -> None:
    staged = assembly / local(docker_assets)["directory"]
    assert sorted(p.name for p in staged.iterdir()) == ["Dockerfile", "serve.py"]


def test_local_directory_passes_its_build_args(docker_assets: list[dict[str, Any]]) -> None:
    assert local(docker_assets)["dockerBuildArgs"] == {"FLAVOUR": "cpu"}


def test_bundled_server_model_is_network_isolated(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "PrimaryContainer": Match.object_like({"Image": Match.object_like({})}),
        },
    )


def test_image_that_needs_network_is_not_isolated_by_default(template: Template) -> None:
    assert (
        len(
            template.find_resources(
                "AWS::SageMaker::Model", {"Properties": {"EnableNetworkIsolation": False}}
            )
        )
        == 2
    )


def test_ecr_image_by_digest_uses_the_digest_uri(template: Template) -> None:
    images = [
        json.dumps(m["Properties"]["PrimaryContainer"]["Image"])
        for m in template.find_resources("AWS::SageMaker::Model").values()
    ]
    assert len([i for i in images if "/serving@sha256:" + "a" * 64 in i]) == 1


def test_ecr_pull_is_granted_on_the_repository_only(template: Template) -> None:
    pulls = [s for s in policy_statements(template) if "ecr:BatchGetImage" in s["Action"]]
    repository_arns = {json.dumps(s["Resource"]) for s in pulls}
    assert all(isinstance(s["Resource"], dict) for s in pulls)
    assert any("repository/serving" in arn for arn in repository_arns)
    assert sorted(pulls[0]["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]


def test_registry_token_is_only_in_the_any_resource_statement(template: Template) -> None:
    holders = [s for s in policy_statements(template) if "ecr:GetAuthorizationToken" in s["Action"]]
    assert holders
    assert all(s["Resource"] == "*" and s["Sid"] == "OnlyAuthorisableOnAnyResource" for s in holders)


def test_bundled_server_directory_is_the_checkout_in_a_source_tree() -> None:
    assert bundled_server_directory() == REPO / "inference_image"


def test_bundled_server_directory_prefers_the_copy_inside_a_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "_inference_image").mkdir()
    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)
    assert bundled_server_directory() == tmp_path / "_inference_image"


def test_requirements_file_drops_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nscikit-learn==1.9.1  # why\ntorch[cpu]>=2.3\n")
    assert ecr_image_asset_module.requirements_from_file(path) == ["scikit-learn==1.9.1", "torch[cpu]>=2.3"]


def test_the_same_image_for_two_variants_is_one_asset() -> None:
    stack = new_stack()
    image = ContainerImage.from_bundled_server(model_requirements=["scikit-learn==1.9.1"])
    ModelEndpoint(
        stack,
        "E",
        model_data=bucket_data(stack),
        image=image,
        variants=[ProductionVariant(variant_name="A"), ProductionVariant(variant_name="B")],
    )
    assert len([c for c in stack.node.find_all() if c.node.id == "ModelImage"]) == 1
