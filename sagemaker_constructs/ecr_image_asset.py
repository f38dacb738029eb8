"""The bundled inference server (or any Dockerfile directory) as a linux/amd64 ECR image asset."""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import DockerBuildSecret
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

# Build argument and build secret agreed with the inference server's Dockerfile
# (`ARG MODEL_REQUIREMENTS`, `RUN --mount=type=secret,id=pip-ca ...`).
MODEL_REQUIREMENTS_BUILD_ARG = "MODEL_REQUIREMENTS"
PIP_CA_SECRET_ID = "pip-ca"

# Never part of an image build context: caches, tests and their litter.
DEFAULT_IMAGE_EXCLUDES: tuple[str, ...] = (
    "**/__pycache__",
    "**/*.pyc",
    "**/*.pyo",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.hypothesis",
    "**/*.egg-info",
    "**/.coverage",
    "**/.DS_Store",
    "tests",
    "build",
    "dist",
    ".venv",
)

_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?([<>=!~]=?[^\s;]*|===[^\s;]*)?$"
)


def bundled_server_directory() -> Path:
    """The inference server's Docker build context.

    An installed wheel carries it as ``sagemaker_constructs/_inference_image``; in a checkout it is the
    repository's ``inference_image/`` directory.
    """
    packaged = importlib.resources.files("sagemaker_constructs") / "_inference_image"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / "inference_image"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "the bundled inference server's build context is missing: expected the wheel's "
        f"sagemaker_constructs/_inference_image or a checkout's {checkout}"
    )


def requirements_from_file(path: str | os.PathLike[str]) -> list[str]:
    """Read pip requirement specifiers from a requirements file, dropping comments and blank lines.

    The image installs them with ``pip install $MODEL_REQUIREMENTS``, so only plain specifiers
    (``name[extras]<op>version``) fit: options, includes, URLs and environment markers are refused.
    """
    requirements: list[str] = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        compact = line.replace(" ", "")
        if not _REQUIREMENT.match(compact):
            raise ValueError(
                f"{path}:{number}: {line!r} is not a plain requirement specifier "
                "such as 'scikit-learn==1.9.1' "
                "(options, -r includes, URLs and environment markers cannot be passed as a build argument)"
            )
        requirements.append(compact)
    return requirements


def invalid_requirements(requirements: Sequence[str]) -> list[str]:
    """The entries that are not plain requirement specifiers (one word each, no markers or options)."""
    return [r for r in requirements if not _REQUIREMENT.match(r)]


class EcrImageAsset(Construct):
    """A Docker image built from a local directory at deploy time and pushed to the CDK assets repository.

    Synthesis needs no Docker: the directory is staged into the cloud assembly and built by ``cdk deploy``.

    :param directory: the Docker build context. Default: the bundled inference server.
    :param model_requirements: pip requirement specifiers of the model's framework (e.g.
        ``["scikit-learn==1.9.1"]``), passed space-separated as build argument ``MODEL_REQUIREMENTS`` and
        installed at build time, never at container start. Default: none.
    :param requirements_file: a requirements file to read them from instead (comments and blank lines
        dropped). Default: none.
    :param pip_ca_bundle: a CA bundle (PEM) for pip behind a TLS-inspecting proxy, passed as Docker build
        secret ``pip-ca`` so it never lands in an image layer. Default: none (pip's own CA store).
    :param build_args: further build arguments. Default: none.
    :param exclude: further glob patterns kept out of the build context. Default: caches, tests and
        build litter (``__pycache__``, ``*.pyc``, ``tests``, ``.pytest_cache``...).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        directory: str | os.PathLike[str] | None = None,
        model_requirements: Sequence[str] | None = None,
        requirements_file: str | os.PathLike[str] | None = None,
        pip_ca_bundle: str | os.PathLike[str] | None = None,
        build_args: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id)
        context = Path(directory) if directory is not None else bundled_server_directory()
        requirements = list(model_requirements or [])
        if requirements_file is not None:
            requirements += requirements_from_file(requirements_file)
        args = dict(build_args or {})
        if requirements:
            args[MODEL_REQUIREMENTS_BUILD_ARG] = " ".join(requirements)
        secrets = {}
        if pip_ca_bundle is not None:
            secrets[PIP_CA_SECRET_ID] = DockerBuildSecret.from_src(str(Path(pip_ca_bundle).resolve()))
        self._asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(context),
            # SageMaker hosting runs x86_64 instances for every type this library names (inf2 included).
            platform=ecr_assets.Platform.LINUX_AMD64,
            build_args=args or None,
            build_secrets=secrets or None,
            exclude=[*DEFAULT_IMAGE_EXCLUDES, *exclude],
        )
        self.model_requirements: tuple[str, ...] = tuple(requirements)

    @property
    def asset(self) -> ecr_assets.DockerImageAsset:
        return self._asset

    @property
    def image_uri(self) -> str:
        return self._asset.image_uri

    @property
    def repository(self) -> ecr.IRepository:
        return self._asset.repository
