"""Model data sources: what each puts in the Model and what read access it grants."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from sagemaker_constructs import ModelData, ModelEndpoint
from tests.constructs.conftest import ecr_image, new_stack, policy_statements, write_model_dir

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def file_assets(outdir: Path) -> dict[str, Path]:
    """hash -> staged archive of every model archive asset in the assembly (templates are file assets too)."""
    manifest = json.loads(next(outdir.glob("*.assets.json")).read_text())
    return {
        h: outdir / a["source"]["path"]
        for h, a in manifest.get("files", {}).items()
        if a["source"]["path"].endswith(".tar.gz")
    }


def synth_folder(folder: Path, outdir: Path) -> dict[str, Path]:
    stack = new_stack(outdir)
    ModelEndpoint(stack, "Endpoint", model_data=ModelData.from_directory(folder), image=ecr_image(stack))
    stack.node.root.synth()  # type: ignore[attr-defined]
    return file_assets(outdir)


@pytest.fixture(scope="module")
def sources_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """One stack, one endpoint per remote/archive source."""
    stack = new_stack()
    key = kms.Key.from_key_arn(stack, "BucketKey", KEY_ARN)
    encrypted = s3.Bucket.from_bucket_attributes(
        stack, "Encrypted", bucket_name="encrypted-models", encryption_key=key
    )
    plain = s3.Bucket.from_bucket_name(stack, "Plain", "plain-models")
    image = ecr_image(stack)
    ModelEndpoint(
        stack, "FromBucket", model_data=ModelData.from_bucket(encrypted, "models/a/model.tar.gz"), image=image
    )
    ModelEndpoint(stack, "FromPrefix", model_data=ModelData.from_s3_prefix(plain, "models/big"), image=image)
    tarball = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(write_model_dir(tmp_path_factory.mktemp("m")), arcname=".")
    ModelEndpoint(stack, "FromArchive", model_data=ModelData.from_archive(tarball), image=image)
    return Template.from_stack(stack)


def statements_on(template: Template, fragment: str) -> list[dict[str, Any]]:
    """Policy statements whose resources mention `fragment`."""
    return [s for s in policy_statements(template) if fragment in json.dumps(s.get("Resource"))]


# --- from_directory --------------------------------------------------------------------------------------


def test_same_folder_synthesized_twice_gives_the_same_asset_hash(model_dir: Path, tmp_path: Path) -> None:
    assert synth_folder(model_dir, tmp_path / "a").keys() == synth_folder(model_dir, tmp_path / "b").keys()


def test_same_folder_synthesized_twice_gives_identical_archive_bytes(model_dir: Path, tmp_path: Path) -> None:
    (first,) = synth_folder(model_dir, tmp_path / "a").values()
    (second,) = synth_folder(model_dir, tmp_path / "b").values()
    assert first.read_bytes() == second.read_bytes()


def test_changed_file_changes_the_asset_hash(tmp_path: Path) -> None:
    folder = write_model_dir(tmp_path / "model")
    before = synth_folder(folder, tmp_path / "a").keys()
    (folder / "model.joblib").write_bytes(b"retrained")
    assert synth_folder(folder, tmp_path / "b").keys() != before


def test_staged_asset_is_the_packed_archive_of_the_folder(model_dir: Path, tmp_path: Path) -> None:
    (staged,) = synth_folder(model_dir, tmp_path / "out").values()
    with tarfile.open(staged) as tar:
        assert sorted(tar.getnames()) == ["code", "code/inference.py", "model.joblib"]


def test_folder_model_points_at_the_asset_object(model_dir: Path, tmp_path: Path) -> None:
    assets = synth_folder(model_dir, tmp_path / "out")
    (asset_hash,) = assets
    template = json.loads(next((tmp_path / "out").glob("*.template.json")).read_text())
    (model,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
    assert asset_hash in json.dumps(model["Properties"]["PrimaryContainer"]["ModelDataUrl"])


def test_folder_model_role_reads_only_the_asset_object(model_dir: Path, tmp_path: Path) -> None:
    (asset_hash,) = synth_folder(model_dir, tmp_path / "out")
    template = json.loads(next((tmp_path / "out").glob("*.template.json")).read_text())
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    s3_statements = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "s3:" in json.dumps(s["Action"])
    ]
    assert [s["Action"] for s in s3_statements] == ["s3:GetObject"]
    assert json.dumps(s3_statements[0]["Resource"]).endswith(f'/{asset_hash}.gz"]]}}')


def test_asset_hash_does_not_depend_on_the_cache_location(model_dir: Path, tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):
        stack = new_stack(tmp_path / f"out-{name}")
        data = ModelData.from_directory(model_dir, cache_dir=tmp_path / f"cache-{name}")
        ModelEndpoint(stack, "Endpoint", model_data=data, image=ecr_image(stack))
        stack.node.root.synth()  # type: ignore[attr-defined]
        hashes.append(set(file_assets(tmp_path / f"out-{name}")))
    assert hashes[0] == hashes[1]


def test_one_source_used_in_two_apps_gets_an_asset_in_each(model_dir: Path, tmp_path: Path) -> None:
    data = ModelData.from_directory(model_dir)
    for name in ("a", "b"):
        stack = new_stack(tmp_path / name)
        ModelEndpoint(stack, "Endpoint", model_data=data, image=ecr_image(stack))
        stack.node.root.synth()  # type: ignore[attr-defined]
        assert len(file_assets(tmp_path / name)) == 1


def test_unchanged_folder_is_not_packed_again_on_the_next_synth(tmp_path: Path) -> None:
    folder = write_model_dir(tmp_path / "model")
    results = []
    for name in ("first", "second"):
        stack = new_stack(tmp_path / name)
        data = ModelData.from_directory(folder, cache_dir=tmp_path / "cache")
        ModelEndpoint(stack, "Endpoint", model_data=data, image=ecr_image(stack))
        stack.node.root.synth()  # type: ignore[attr-defined]
        results.append(data.pack_result)  # type: ignore[attr-defined]
    assert [r.cache_hit for r in results] == [False, True]
    assert results[0].path == results[1].path


# --- from_bucket -----------------------------------------------------------------------------------------


def test_bucket_model_data_url_names_the_object(sources_template: Template) -> None:
    sources_template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {"ModelDataUrl": "s3://encrypted-models/models/a/model.tar.gz"}
            )
        },
    )


def test_bucket_source_grants_get_object_on_that_object_only(sources_template: Template) -> None:
    statements = statements_on(sources_template, "encrypted-models")
    assert [(s["Action"], json.dumps(s["Resource"])) for s in statements] == [
        (
            "s3:GetObject",
            json.dumps(
                {
                    "Fn::Join": [
                        "",
                        ["arn:", {"Ref": "AWS::Partition"}, ":s3:::encrypted-models/models/a/model.tar.gz"],
                    ]
                }
            ),
        )
    ]


def test_encrypted_bucket_source_may_decrypt_through_s3_only(sources_template: Template) -> None:
    (statement,) = statements_on(sources_template, KEY_ARN)
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }


# --- from_s3_prefix --------------------------------------------------------------------------------------


def test_prefix_source_is_an_uncompressed_s3_prefix_data_source(sources_template: Template) -> None:
    sources_template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {
                "Image": Match.any_value(),
                "ModelDataSource": {
                    "S3DataSource": {
                        "S3Uri": "s3://plain-models/models/big/",
                        "S3DataType": "S3Prefix",
                        "CompressionType": "None",
                    }
                },
            }
        },
    )


def test_prefix_source_reads_objects_under_the_prefix_only(sources_template: Template) -> None:
    reads = [s for s in statements_on(sources_template, "plain-models") if s["Action"] == "s3:GetObject"]
    assert [json.dumps(s["Resource"]) for s in reads] == [
        json.dumps({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::plain-models/models/big/*"]]})
    ]


def test_prefix_source_lists_the_bucket_under_the_prefix_only(sources_template: Template) -> None:
    (listing,) = [
        s for s in statements_on(sources_template, "plain-models") if s["Action"] == "s3:ListBucket"
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/big/*"]}}


def test_prefix_source_acknowledges_exactly_its_prefix_resource() -> None:
    stack = new_stack()
    endpoint = ModelEndpoint(
        stack,
        "E",
        model_data=ModelData.from_s3_prefix(
            s3.Bucket.from_bucket_name(stack, "B", "plain-models"), "models/big/"
        ),
        image=ecr_image(stack),
    )
    assert endpoint.execution_role is not None
    acknowledged = [
        key
        for entry in endpoint.execution_role.policy.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for key in entry.data
    ]
    assert sorted(acknowledged) == [
        "Annotation::AwsSolutions-IAM5[Resource::*]",
        "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::plain-models/models/big/*]",
    ]


# --- from_archive ----------------------------------------------------------------------------------------


def test_archive_source_is_published_as_is(sources_template: Template) -> None:
    sources_template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {"ModelDataUrl": {"Fn::Sub": Match.string_like_regexp(r"\.gz$")}}
            )
        },
    )
