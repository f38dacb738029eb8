#!/usr/bin/env python3
"""`CDK_DOCKER` program: the `docker` subcommands cdk-assets calls, done with podman and moto's ECR.

`cdk deploy` publishes a Docker image asset with `docker inspect`, `login`, `build`, `tag` and `push` (and
sometimes `images`); it runs whatever `CDK_DOCKER` names instead of `docker`. Here:

- `login`: a no-op (moto's ECR takes no registry credentials; the password on stdin is read and dropped).
- `inspect`, `images`, `tag`: podman, same arguments.
- `build`: `podman build` with the same options, after making the Dockerfile's base image locally
  (e2e.base_image) and with `--network=host` unless the asset sets a network mode.
- `push REGISTRY/REPO:TAG`: writes the image with `podman push ... dir:` (uncompressed, so only file copies)
  and registers its real manifest under TAG in the ECR endpoint of `AWS_ENDPOINT_URL` (`ecr.put_image`).
  No layer is uploaded: moto stores manifests only.

Podman runs with the `.e2e/` configuration (e2e.workspace), whatever the caller's environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a program (by the CDK CLI), so the repository root must be put on the path for `e2e`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json
import os
import shutil
import subprocess
import tempfile

import boto3

from e2e.base_image import base_images, ensure_base_image
from e2e.workspace import WORKDIR, podman_env


def main(argv: list[str]) -> int:
    # cdk-assets may put `--config DIR` (a docker credential-helper config) before the subcommand.
    while argv and argv[0] == "--config":
        argv = argv[2:]
    if not argv:
        print("usage: cdk_docker.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "login":
        sys.stdin.read()
        return 0
    if command == "build":
        return build(args)
    if command == "push":
        return push(args)
    if command in {"inspect", "images", "tag", "version", "info"}:
        return subprocess.call(["podman", command, *args], env=podman_env())
    print(f"cdk_docker.py: unsupported docker command {command!r}", file=sys.stderr)
    return 2


def build(args: list[str]) -> int:
    context = Path(args[-1]) if args else Path(".")
    dockerfile = context / "Dockerfile"
    if "--file" in args:
        dockerfile = Path(args[args.index("--file") + 1])
    for base in base_images(dockerfile):
        ensure_base_image(base)
    extra = [] if "--network" in args else ["--network", "host"]
    return subprocess.call(["podman", "build", "--pull=never", *extra, *args], env=podman_env())


def push(args: list[str]) -> int:
    reference = args[-1]
    registry, _, repository_and_tag = reference.partition("/")
    repository, _, tag = repository_and_tag.rpartition(":")
    scratch = Path(tempfile.mkdtemp(prefix="push-", dir=WORKDIR / "tmp"))
    try:
        # The Docker v2 schema 2 manifest `docker push` would send (`dir:` keeps layers uncompressed).
        pushed = subprocess.call(
            ["podman", "push", "--format", "v2s2", reference, f"dir:{scratch / 'image'}"], env=podman_env()
        )
        if pushed != 0:
            return pushed
        manifest = (scratch / "image" / "manifest.json").read_text()
        media_type = json.loads(manifest)["mediaType"]
        ecr = boto3.client("ecr", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        image = ecr.put_image(
            registryId=registry.split(".", 1)[0],
            repositoryName=repository,
            imageTag=tag,
            imageManifest=manifest,
            imageManifestMediaType=media_type,
        )["image"]
        print(f"{tag}: digest: {image['imageId']['imageDigest']} (registered in {repository})")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
