"""Read a synthesized cloud assembly (`cdk.out`) the way `cdk deploy` reads it.

Everything the e2e checks build, run or compare comes from here: the Docker image asset (its build context
directory, build args, build secrets, platform), the model archive file asset, and the SageMaker Model in the
template (container environment, image, model data). The assets are matched to the Model by the object key
and image tag its properties reference, so a Model that points at the wrong asset fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the pseudo parameters resolve to for a local run (moto's default account).
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


@dataclass(frozen=True)
class DockerImageAsset:
    asset_id: str
    directory: Path
    build_args: dict[str, str] = field(default_factory=dict)
    build_secrets: dict[str, str] = field(default_factory=dict)
    platform: str | None = None
    dockerfile: str | None = None
    target: str | None = None
    network_mode: str | None = None
    image_tag: str = ""
    repository_name: str = ""

    def build_options(self) -> list[str]:
        """`podman build` options equivalent to what cdk-assets passes `docker build` for this asset."""
        options: list[str] = []
        for key, value in self.build_args.items():
            options += ["--build-arg", f"{key}={value}"]
        for key, value in self.build_secrets.items():
            options += ["--secret", f"id={key},{value}"]
        if self.target:
            options += ["--target", self.target]
        if self.dockerfile:
            options += ["--file", str(self.directory / self.dockerfile)]
        if self.network_mode:
            options += ["--network", self.network_mode]
        if self.platform:
            options += ["--platform", self.platform]
        return options

    @property
    def dockerfile_path(self) -> Path:
        return self.directory / (self.dockerfile or "Dockerfile")


@dataclass(frozen=True)
class FileAsset:
    asset_id: str
    path: Path
    packaging: str
    object_key: str


@dataclass(frozen=True)
class SageMakerModel:
    logical_id: str
    container: dict[str, Any]
    network_isolation: bool = False

    @property
    def environment(self) -> dict[str, Any]:
        return dict(self.container.get("Environment") or {})


@dataclass(frozen=True)
class Stack:
    name: str
    assembly_dir: Path
    template: dict[str, Any]
    assets: dict[str, Any]

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template.get("Resources", {}).items() if v.get("Type") == resource_type}

    def docker_images(self) -> list[DockerImageAsset]:
        images = []
        for asset_id, entry in self.assets.get("dockerImages", {}).items():
            source = entry["source"]
            if "directory" not in source:
                raise ValueError(f"docker image asset {asset_id} is not built from a directory: {source}")
            destination = next(iter(entry.get("destinations", {}).values()), {})
            images.append(
                DockerImageAsset(
                    asset_id=asset_id,
                    directory=self.assembly_dir / source["directory"],
                    build_args=dict(source.get("dockerBuildArgs") or {}),
                    build_secrets=dict(source.get("dockerBuildSecrets") or {}),
                    platform=source.get("platform"),
                    dockerfile=source.get("dockerFile"),
                    target=source.get("dockerBuildTarget"),
                    network_mode=source.get("networkMode"),
                    image_tag=destination.get("imageTag", ""),
                    repository_name=destination.get("repositoryName", ""),
                )
            )
        return images

    def file_assets(self) -> list[FileAsset]:
        files = []
        for asset_id, entry in self.assets.get("files", {}).items():
            source = entry["source"]
            if "path" not in source:
                continue  # produced by an executable; nothing on disk to read
            destination = next(iter(entry.get("destinations", {}).values()), {})
            files.append(
                FileAsset(
                    asset_id=asset_id,
                    path=self.assembly_dir / source["path"],
                    packaging=source.get("packaging", "file"),
                    object_key=destination.get("objectKey", ""),
                )
            )
        return files

    def sagemaker_model(self) -> SageMakerModel:
        """The stack's single `AWS::SageMaker::Model` and its (single) container definition."""
        models = self.resources("AWS::SageMaker::Model")
        if len(models) != 1:
            raise ValueError(f"{self.name}: expected one AWS::SageMaker::Model, found {sorted(models)}")
        logical_id, resource = next(iter(models.items()))
        props = resource["Properties"]
        container = props.get("PrimaryContainer") or (props.get("Containers") or [None])[0]
        if not container:
            raise ValueError(f"{self.name}/{logical_id}: the Model has no container definition")
        return SageMakerModel(logical_id, container, props.get("EnableNetworkIsolation") is True)

    def model_image_asset(self) -> DockerImageAsset:
        """The Docker image asset the Model's `Image` references (by its image tag)."""
        image = json.dumps(self.sagemaker_model().container.get("Image"))
        matches = [a for a in self.docker_images() if a.image_tag and a.image_tag in image]
        if len(matches) != 1:
            raise ValueError(f"{self.name}: the Model's Image {image} references {len(matches)} image assets")
        return matches[0]

    def model_data_asset(self) -> FileAsset:
        """The file asset the Model's `ModelDataUrl` references (by its S3 object key)."""
        url = json.dumps(self.sagemaker_model().container.get("ModelDataUrl"))
        matches = [a for a in self.file_assets() if a.object_key and a.object_key in url]
        if len(matches) != 1:
            raise ValueError(
                f"{self.name}: the Model's ModelDataUrl {url} references {len(matches)} file assets"
            )
        return matches[0]

    def container_environment(self) -> dict[str, str]:
        """The Model container's environment, with pseudo parameters resolved for a local run."""
        model = self.sagemaker_model()
        return {
            key: resolve(value, f"{model.logical_id}.Environment.{key}")
            for key, value in model.environment.items()
        }


def load_stack(assembly_dir: Path, stack_name: str) -> Stack:
    """Find `stack_name` (artifact id or stack name) in the assembly, with its template and asset manifest."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    artifacts = manifest.get("artifacts", {})
    stacks = {
        artifact_id: artifact
        for artifact_id, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
        and stack_name
        in {artifact_id, artifact.get("displayName"), artifact.get("properties", {}).get("stackName")}
    }
    if len(stacks) != 1:
        names = [a for a, v in artifacts.items() if v.get("type") == "aws:cloudformation:stack"]
        raise ValueError(f"{assembly_dir}: stack {stack_name!r} not found once among {names}")
    artifact_id, artifact = next(iter(stacks.items()))
    template = json.loads((assembly_dir / artifact["properties"]["templateFile"]).read_text())
    asset_manifests = [
        assembly_dir / artifacts[dep]["properties"]["file"]
        for dep in artifact.get("dependencies", [])
        if artifacts.get(dep, {}).get("type") == "cdk:asset-manifest"
    ]
    assets: dict[str, Any] = {"files": {}, "dockerImages": {}}
    for path in asset_manifests:
        content = json.loads(path.read_text())
        assets["files"].update(content.get("files", {}))
        assets["dockerImages"].update(content.get("dockerImages", {}))
    name = artifact.get("properties", {}).get("stackName") or artifact.get("displayName") or artifact_id
    return Stack(name=name, assembly_dir=assembly_dir, template=template, assets=assets)


def templates(assembly_dir: Path) -> list[Path]:
    """Every stack template in an assembly, nested assemblies (stages) included."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    found = []
    for artifact in manifest.get("artifacts", {}).values():
        props = artifact.get("properties", {})
        if artifact.get("type") == "aws:cloudformation:stack":
            found.append(assembly_dir / props["templateFile"])
        elif artifact.get("type") == "cdk:cloud-assembly":
            found += templates(assembly_dir / props["directoryName"])
    return found


def resolve(value: Any, where: str) -> str:
    """A literal string, or a `Ref`/`Fn::Sub`/`Fn::Join` over pseudo parameters; anything else is an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and argument in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[argument]
        if function == "Fn::Sub" and isinstance(argument, str):
            text = argument
            for name, replacement in PSEUDO_PARAMETERS.items():
                text = text.replace("${" + name + "}", replacement)
            if "${" not in text:
                return text
        if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            separator, parts = argument
            return separator.join(resolve(part, where) for part in parts)
    raise ValueError(
        f"{where}: {json.dumps(value)} is only known at deploy time; the local run can resolve literal "
        f"strings and the pseudo parameters {sorted(PSEUDO_PARAMETERS)}"
    )
