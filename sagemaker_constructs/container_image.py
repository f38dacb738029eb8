"""Which container image serves the model: the bundled server, any local Dockerfile, or an ECR image."""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stack, Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from .ecr_image_asset import EcrImageAsset, invalid_requirements, requirements_from_file
from .execution_role import ExecutionRole

ECR_PULL_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


@dataclass(frozen=True)
class ContainerImageConfig:
    """A bound image: its URI, and whether the container needs network access at run time."""

    image_uri: str
    needs_network: bool


class ContainerImage(abc.ABC):
    """A container image for a model. ``bind`` builds the asset if needed and grants pull on its repository.

    ``needs_network`` feeds the endpoint's network-isolation default: an image that needs no network at
    run time gets ``EnableNetworkIsolation``, so the container can make no outbound calls at all
    (SageMaker still downloads the model and pulls the image itself).
    """

    def __init__(self, *, needs_network: bool) -> None:
        self.needs_network = needs_network

    @staticmethod
    def from_bundled_server(
        *,
        model_requirements: Sequence[str] | None = None,
        requirements_file: str | os.PathLike[str] | None = None,
        pip_ca_bundle: str | os.PathLike[str] | None = None,
    ) -> ContainerImage:
        """This library's inference server with the model's framework installed at build time.

        It loads the model from ``/opt/ml/model`` and needs no network at run time, so endpoints serving it
        are network-isolated by default. See ``EcrImageAsset`` for the parameters.
        """
        return _AssetImage(
            directory=None,
            model_requirements=model_requirements,
            requirements_file=requirements_file,
            pip_ca_bundle=pip_ca_bundle,
            build_args=None,
            needs_network=False,
        )

    @staticmethod
    def from_directory(
        path: str | os.PathLike[str],
        *,
        build_args: Mapping[str, str] | None = None,
        pip_ca_bundle: str | os.PathLike[str] | None = None,
        needs_network: bool = False,
    ) -> ContainerImage:
        """Any local directory with a Dockerfile, built for linux/amd64 at deploy time.

        :param needs_network: whether the container calls out at run time (downloads weights, calls
            other AWS APIs). Default: False — serving containers normally only read ``/opt/ml/model``, and
            the secure default is network isolation. Set True to turn isolation off by default.
        """
        return _AssetImage(
            directory=Path(path),
            model_requirements=None,
            requirements_file=None,
            pip_ca_bundle=pip_ca_bundle,
            build_args=build_args,
            needs_network=needs_network,
        )

    @staticmethod
    def from_ecr_repository(
        repository: ecr.IRepository, tag: str, *, needs_network: bool = False
    ) -> ContainerImage:
        """An image already in ECR, by tag or by digest (``sha256:...``).

        Pull is granted on that repository only.

        :param needs_network: as for ``from_directory``. Default: False.
        """
        return _RepositoryImage(repository, tag, needs_network=needs_network)

    @abc.abstractmethod
    def bind(self, scope: Construct, role: ExecutionRole) -> ContainerImageConfig:
        """Create what is needed under `scope` (once per stack) and grant `role` pull access."""

    def _validate(self) -> list[tuple[str, object, str]]:
        return []


def _grant_pull(role: ExecutionRole, repository: ecr.IRepository) -> None:
    role.add_to_policy(
        iam.PolicyStatement(actions=list(ECR_PULL_ACTIONS), resources=[repository.repository_arn])
    )
    # The registry login token exists only on '*'.
    role.allow_on_any_resource(["ecr:GetAuthorizationToken"])


class _AssetImage(ContainerImage):
    def __init__(
        self,
        *,
        directory: Path | None,
        model_requirements: Sequence[str] | None,
        requirements_file: str | os.PathLike[str] | None,
        pip_ca_bundle: str | os.PathLike[str] | None,
        build_args: Mapping[str, str] | None,
        needs_network: bool,
    ) -> None:
        super().__init__(needs_network=needs_network)
        self.directory = directory
        self.model_requirements = list(model_requirements or [])
        self.requirements_file = requirements_file
        self.pip_ca_bundle = pip_ca_bundle
        self.build_args = dict(build_args or {})
        # One asset per stack; matched by identity, since equal paths can exist in different apps.
        self._assets: list[tuple[Stack, EcrImageAsset]] = []

    def bind(self, scope: Construct, role: ExecutionRole) -> ContainerImageConfig:
        stack = Stack.of(scope)
        asset = next((a for s, a in self._assets if s is stack), None)
        if asset is None:
            asset = EcrImageAsset(
                scope,
                "ModelImage",
                directory=self.directory,
                model_requirements=self.model_requirements,
                requirements_file=self.requirements_file,
                pip_ca_bundle=self.pip_ca_bundle,
                build_args=self.build_args,
            )
            self._assets.append((stack, asset))
        _grant_pull(role, asset.repository)
        return ContainerImageConfig(image_uri=asset.image_uri, needs_network=self.needs_network)

    def _validate(self) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        if self.directory is not None and not (self.directory / "Dockerfile").is_file():
            problems.append(
                (
                    "image",
                    str(self.directory),
                    "ContainerImage.from_directory needs a directory with a Dockerfile",
                )
            )
        bad = invalid_requirements(self.model_requirements)
        if bad:
            problems.append(
                (
                    "model_requirements",
                    bad,
                    "plain pip requirement specifiers without spaces, e.g. 'scikit-learn==1.9.1'",
                )
            )
        if self.requirements_file is not None:
            if not Path(self.requirements_file).is_file():
                problems.append(
                    ("requirements_file", str(self.requirements_file), "an existing requirements file")
                )
            else:
                try:
                    requirements_from_file(self.requirements_file)
                except ValueError as error:
                    problems.append(("requirements_file", str(self.requirements_file), str(error)))
        if self.pip_ca_bundle is not None and not Path(self.pip_ca_bundle).is_file():
            problems.append(
                ("pip_ca_bundle", str(self.pip_ca_bundle), "an existing PEM file with the CA certificates")
            )
        return problems


class _RepositoryImage(ContainerImage):
    def __init__(self, repository: ecr.IRepository, tag: str, *, needs_network: bool) -> None:
        super().__init__(needs_network=needs_network)
        self.repository = repository
        self.tag = tag

    def bind(self, scope: Construct, role: ExecutionRole) -> ContainerImageConfig:
        _grant_pull(role, self.repository)
        if not Token.is_unresolved(self.tag) and self.tag.startswith("sha256:"):
            uri = self.repository.repository_uri_for_digest(self.tag)
        else:
            uri = self.repository.repository_uri_for_tag(self.tag)
        return ContainerImageConfig(image_uri=uri, needs_network=self.needs_network)

    def _validate(self) -> list[tuple[str, object, str]]:
        if Token.is_unresolved(self.tag):
            return []
        if (
            not self.tag
            or len(self.tag) > 128
            or any(c.isspace() or c in "/:@" for c in self.tag.removeprefix("sha256:"))
        ):
            return [
                (
                    "image",
                    self.tag,
                    "an image tag (letters, digits, '.', '_', '-', at most 128 characters) "
                    "or a digest 'sha256:...'",
                )
            ]
        return []
