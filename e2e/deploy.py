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

from moto.server import ThreadedMotoServer

from e2e.container import free_port
from e2e.workspace import REPO, podman_env, run

CDK = REPO / "node_modules" / ".bin" / "cdk"
CDK_DOCKER = REPO / "e2e" / "cdk_docker.py"
ACCOUNT, REGION = "123456789012", "us-east-1"
# The example app's stack (app.py).
EXAMPLE_STACK = "IrisEndpointStack"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port for the duration; yields its endpoint URL."""
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
