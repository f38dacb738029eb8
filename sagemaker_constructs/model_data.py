"""Where a model's artifacts come from: a local folder, a local archive, an S3 object or an S3 prefix."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ._private import archive, nag
from .execution_role import ExecutionRole


@dataclass(frozen=True)
class ModelDataConfig:
    """What a bound model-data source puts into the container definition: a URL or a data source."""

    model_data_url: str | None = None
    model_data_source: sagemaker.CfnModel.ModelDataSourceProperty | None = None


class ModelData(abc.ABC):
    """A model's artifacts. ``bind`` publishes them if needed and grants the execution role read access."""

    @staticmethod
    def from_directory(
        path: str | os.PathLike[str],
        *,
        exclude: Sequence[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> ModelData:
        """A local model folder, packed into a deterministic ``model.tar.gz`` and published as a file asset.

        The archive's bytes depend only on the folder's contents (sorted entries, fixed mtime, uid/gid 0,
        normalised modes, gzip header without time or name), so the asset hash changes exactly when the
        model does. Excluded: ``__pycache__``, ``*.pyc``, VCS folders (``.git``...), ``.DS_Store``, editor
        litter (``*~``, ``.*.swp``, ``.idea/``, ``.vscode/``...), plus ``exclude`` (glob patterns matched
        against names, or against relative paths when they contain ``/``). A symlink that resolves outside
        the folder is refused; one inside is stored as a relative link.

        :param cache_dir: where packed archives are kept. Default: ``$SAGEMAKER_CONSTRUCTS_CACHE_DIR``, else
            ``~/.cache/sagemaker-constructs``. The cache key is a fingerprint of every entry's relative path,
            size, mtime_ns and mode, so an unchanged folder is not packed again on the next synth.
        """
        return _DirectoryModelData(Path(path), tuple(exclude), Path(cache_dir) if cache_dir else None)

    @staticmethod
    def from_archive(path: str | os.PathLike[str]) -> ModelData:
        """An existing local ``.tar.gz``, published as is (its bytes are its asset hash)."""
        return _ArchiveModelData(Path(path))

    @staticmethod
    def from_bucket(bucket: s3.IBucket, key: str) -> ModelData:
        """A ``model.tar.gz`` already in S3. The role may read that one object and nothing else.

        If the bucket has an ``encryption_key``, the role may also decrypt with it, through S3 only.
        """
        return _BucketModelData(bucket, key)

    @staticmethod
    def from_s3_prefix(bucket: s3.IBucket, prefix: str) -> ModelData:
        """Uncompressed model files under an S3 prefix (``ModelDataSource``, ``S3Prefix``, no compression).

        For large models: SageMaker copies the files as they are, with no archive to download and unpack.
        The role may list the bucket under that prefix and read objects under it. IAM can name objects
        under a prefix only with a wildcard (``bucket/prefix/*``), so that one resource carries an
        ``AwsSolutions-IAM5`` acknowledgment naming exactly it.
        """
        return _PrefixModelData(bucket, prefix)

    @abc.abstractmethod
    def bind(self, scope: Construct, role: ExecutionRole) -> ModelDataConfig:
        """Create what is needed under `scope` (once per stack) and grant `role` read access."""

    def _validate(self) -> list[tuple[str, object, str]]:
        """Problems known before binding, as (prop, value, allowed)."""
        return []


def _read_object_statement(bucket: s3.IBucket, key_pattern: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(key_pattern)])


def _bucket_key_statement(bucket: s3.IBucket) -> iam.PolicyStatement | None:
    if bucket.encryption_key is None:
        return None
    # Only through S3: the role cannot call KMS directly with this key.
    return iam.PolicyStatement(
        actions=["kms:Decrypt"],
        resources=[bucket.encryption_key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
    )


class _AssetModelData(ModelData):
    """Shared by the folder and archive sources: one S3 file asset per stack."""

    def __init__(self) -> None:
        # One asset per stack; matched by identity, since equal paths can exist in different apps.
        self._assets: list[tuple[Stack, s3_assets.Asset]] = []

    @abc.abstractmethod
    def _archive_path(self) -> Path: ...

    def bind(self, scope: Construct, role: ExecutionRole) -> ModelDataConfig:
        stack = Stack.of(scope)
        asset = next((a for s, a in self._assets if s is stack), None)
        if asset is None:
            # A single file, so CDK's asset hash is the hash of the archive's bytes.
            asset = s3_assets.Asset(scope, "ModelData", path=str(self._archive_path()))
            self._assets.append((stack, asset))
        role.add_to_policy(_read_object_statement(asset.bucket, asset.s3_object_key))
        return ModelDataConfig(model_data_url=asset.s3_object_url)


class _DirectoryModelData(_AssetModelData):
    def __init__(self, path: Path, exclude: tuple[str, ...], cache_dir: Path | None) -> None:
        super().__init__()
        self.path = path
        self._excludes = archive.DEFAULT_EXCLUDES + exclude
        self._cache_dir = cache_dir
        self.pack_result: archive.PackResult | None = None

    def _archive_path(self) -> Path:
        if self.pack_result is None:
            self.pack_result = archive.pack_directory(
                self.path, excludes=self._excludes, cache=self._cache_dir
            )
        return self.pack_result.path

    def _validate(self) -> list[tuple[str, object, str]]:
        if not self.path.is_dir():
            return [("model_data", str(self.path), "ModelData.from_directory needs an existing directory")]
        return []


class _ArchiveModelData(_AssetModelData):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _archive_path(self) -> Path:
        return self.path

    def _validate(self) -> list[tuple[str, object, str]]:
        if not self.path.is_file() or not self.path.name.endswith((".tar.gz", ".tgz")):
            return [("model_data", str(self.path), "ModelData.from_archive needs an existing .tar.gz file")]
        return []


class _BucketModelData(ModelData):
    def __init__(self, bucket: s3.IBucket, key: str) -> None:
        self.bucket = bucket
        self.key = key

    def bind(self, scope: Construct, role: ExecutionRole) -> ModelDataConfig:
        role.add_to_policy(_read_object_statement(self.bucket, self.key))
        key_statement = _bucket_key_statement(self.bucket)
        if key_statement is not None:
            role.add_to_policy(key_statement)
        return ModelDataConfig(model_data_url=self.bucket.s3_url_for_object(self.key))

    def _validate(self) -> list[tuple[str, object, str]]:
        if Token.is_unresolved(self.key):
            return []
        if not self.key or self.key.startswith("/") or self.key.endswith("/") or "*" in self.key:
            return [
                (
                    "model_data",
                    self.key,
                    "ModelData.from_bucket needs the key of one object, e.g. models/model.tar.gz",
                )
            ]
        return []


class _PrefixModelData(ModelData):
    def __init__(self, bucket: s3.IBucket, prefix: str) -> None:
        self.bucket = bucket
        # SageMaker treats the URI as a key prefix: a trailing slash keeps "models/a" from matching
        # "models/ab".
        self.prefix = prefix if Token.is_unresolved(prefix) or prefix.endswith("/") else f"{prefix}/"

    def bind(self, scope: Construct, role: ExecutionRole) -> ModelDataConfig:
        objects = self.bucket.arn_for_objects(f"{self.prefix}*")
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self.prefix}*"]}},
            )
        )
        key_statement = _bucket_key_statement(self.bucket)
        if key_statement is not None:
            role.add_to_policy(key_statement)
        nag.acknowledge(
            role.policy,
            nag.wildcard_resource_finding(role.policy, objects),
            "Uncompressed model data (ModelDataSource S3DataType=S3Prefix): SageMaker reads every object "
            "under the prefix, whose keys are unknown at synth time, and IAM can name the objects under a "
            "prefix only "
            "with a trailing wildcard. The wildcard is confined to this bucket and prefix.",
        )
        return ModelDataConfig(
            model_data_source=sagemaker.CfnModel.ModelDataSourceProperty(
                s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                    s3_uri=self.bucket.s3_url_for_object(self.prefix),
                    s3_data_type="S3Prefix",
                    compression_type="None",
                )
            )
        )

    def _validate(self) -> list[tuple[str, object, str]]:
        if Token.is_unresolved(self.prefix):
            return []
        if self.prefix in ("", "/") or self.prefix.startswith("/") or "*" in self.prefix:
            return [
                ("model_data", self.prefix, "ModelData.from_s3_prefix needs a key prefix such as models/llm/")
            ]
        return []
