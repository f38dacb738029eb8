"""End-to-end fixtures: the synthesized example, its real image, and that image running as on SageMaker.

Every item under tests/e2e is marked `e2e` here, so `make test` (`-m "not e2e"`) leaves them to `make e2e`.
Tools are required through `require_tool`: outside CI a missing podman or debootstrap skips with a reason,
with CI=true it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.assembly import Stack, load_stack
from e2e.container import Container, build_image, remove_stale_images, served
from e2e.deploy import CDK, EXAMPLE_STACK
from e2e.workspace import REPO, WORKDIR, podman, run
from tests.conftest import IN_CI, require_tool

# The CA bundle of the TLS-inspecting proxy these machines reach PyPI through; wired into the image build as
# the `pip-ca` build secret by the app's `pipCaBundle` context, as a user behind such a proxy would.
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
# The directory whose cdk.json names the example app: the repository, or another app to check the same way.
APP_DIR = Path(os.environ.get("E2E_APP_DIR", REPO))
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def require_path(path: Path, how: str) -> Path:
    """Like `require_tool`, for a tool that lives at a path (skip outside CI, fail with CI=true)."""
    if path.exists():
        return path
    message = f"{path.relative_to(REPO)} is missing ({how})"
    if IN_CI:
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def synth(outdir: Path, *context: str) -> Path:
    """`cdk synth` of the repository's app into `outdir`, as `cdk deploy` would synthesize it."""
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    args = [a for c in context for a in ("--context", c)]
    shutil.rmtree(outdir, ignore_errors=True)  # no stale asset directories from an earlier synth
    argv = [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(outdir), *args]
    run(argv, env=env, cwd=APP_DIR)
    return outdir


@pytest.fixture(scope="session")
def example_assembly() -> Path:
    """The example app (`app.py`) synthesized with the CDK CLI into .e2e/assemblies/example."""
    outdir = WORKDIR / "assemblies" / "example"
    context = [f"pipCaBundle={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    return synth(outdir, *context)


@pytest.fixture(scope="session")
def example_stack(example_assembly: Path) -> Stack:
    return load_stack(example_assembly, EXAMPLE_STACK)


@pytest.fixture(scope="session")
def podman_ready() -> None:
    require_tool("podman")
    require_tool("runc")
    require_tool("debootstrap")  # makes the Dockerfile's base image locally (e2e/base_image.py)
    podman("info", "--format", "{{.Host.OCIRuntime.Name}}")


@pytest.fixture(scope="session")
def example_image(podman_ready: None, example_stack: Stack) -> str:
    """The example's Docker image asset built from cdk.out with podman; returns the image id."""
    asset = example_stack.model_image_asset()
    image = build_image(asset, f"localhost/e2e-example:{asset.image_tag[:16]}")
    remove_stale_images(asset.image_tag)
    return image


@pytest.fixture(scope="session")
def example_container(example_image: str, example_stack: Stack) -> Iterator[Container]:
    """The example image serving the synthesized model archive, run as SageMaker runs it, healthy."""
    archive = example_stack.model_data_asset().path
    with served(example_image, archive, example_stack.container_environment()) as (container, _startup):
        yield container
