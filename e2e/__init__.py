"""End-to-end checks of what `cdk deploy` ships (issue #4).

The modules here drive real tools, each isolated under `.e2e/` so nothing global changes:

- `workspace`: the scratch directory, podman's configuration and the environment every podman call gets.
- `base_image`: a local stand-in for the Dockerfile's `FROM` image, built with debootstrap and cached.
- `assembly`: reads a synthesized cloud assembly (asset manifest, template) the way `cdk deploy` does.
- `container`: builds the Docker image asset with podman and runs it as SageMaker hosting does.
- `cdk_docker`: the `CDK_DOCKER` program that lets `cdk deploy` build with podman and push to moto's ECR.
- `deploy`: runs moto in server mode and the pinned CDK CLI against it.
"""
