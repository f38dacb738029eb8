"""Deploy a synthesized assembly to moto in server mode with the pinned CDK CLI.

moto (../shared/ENVIRONMENT.md) runs CloudFormation for S3, IAM, KMS, ECR and SageMaker Model /
EndpointConfig / Endpoint. It silently skips `AWS::ApplicationAutoScaling::*` and `AWS::S3::BucketPolicy`
(template assertions cover those), ignores given physical names (read names back from the stack), and cannot
update a stack (deploy fresh). `AWS_ENDPOINT_URL` names `localhost`, not 127.0.0.1: moto takes the bucket from
the path only for localhost.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moto.kms.models import Key
from moto.server import ThreadedMotoServer

from e2e.container import free_port
from e2e.workspace import REPO, podman_env, run

CDK = REPO / "node_modules" / ".bin" / "cdk"
CDK_DOCKER = REPO / "e2e" / "cdk_docker.py"
ACCOUNT, REGION = "123456789012", "us-east-1"
# The example app's stack (app.py).
EXAMPLE_STACK = "IrisEndpointStack"


def _kms_key_accepts_cloudformation_tags() -> None:
    """Work around moto 5.2.5: `AWS::KMS::Key` passes CloudFormation's `Tags` ([{Key, Value}]) to the KMS
    tagger, which wants [{TagKey, TagValue}], so a tagged key fails to create (and `DescribeStackResources`
    answers 500). Translate the tags; the server runs in this process, so patching its class is enough."""
    original = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    if getattr(original, "_e2e_patched", False):
        return

    def create(
        cls: type[Key], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Key:
        properties = cloudformation_json.get("Properties", {})
        tags = properties.get("Tags") or []
        if tags and "Key" in tags[0]:
            translated = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags]
            cloudformation_json = {**cloudformation_json, "Properties": {**properties, "Tags": translated}}
        return original(cls, resource_name, cloudformation_json, *args, **kwargs)  # type: ignore[no-any-return]

    create._e2e_patched = True  # type: ignore[attr-defined]
    Key.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign, assignment]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port for the duration; yields its endpoint URL."""
    _kms_key_accepts_cloudformation_tags()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment for the CDK CLI, its CDK_DOCKER program and boto3: moto, dummy credentials, podman."""
    env = podman_env()
    for key in list(env):
        if key.startswith("AWS_") and key != "AWS_CA_BUNDLE":
            del env[key]
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        CDK_DOCKER=str(CDK_DOCKER),
        # The wrapper's `#!/usr/bin/env python3` must find this interpreter (it has boto3).
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    return env


def cdk(*args: str, assembly: Path, env: dict[str, str], timeout: float = 900) -> str:
    """Run the pinned CDK CLI on an already synthesized assembly; return its output, raise on failure."""
    argv = [str(CDK), *args, "--app", str(assembly), "--no-notices", "--no-version-reporting", "--ci"]
    result = run(argv, env=env, cwd=REPO, timeout=timeout)
    return result.stdout + result.stderr
