"""Build the inference image from its Docker asset and run it the way SageMaker hosting runs it.

SageMaker's side of the contract (../shared/CONTRACT.md): `docker run IMAGE serve`; the model archive
extracted to /opt/ml/model, read-only; the environment from the Model's container definition; port 8080, or
`SAGEMAKER_BIND_TO_PORT` when the image declares `com.amazonaws.sagemaker.capabilities.accept-bind-to-port`;
`GET /ping` must answer 200 before the endpoint takes traffic.

Containers run with `--network=host` (a bridge would make podman's CNI change the host's iptables and IP
forwarding), so the port is a host port: 8080 when it is free, otherwise a free port passed as
`SAGEMAKER_BIND_TO_PORT`, which only an image with the bind-to-port label is asked to honour. A Model with
`EnableNetworkIsolation` can also be run with `--network=none`, as SageMaker isolates it: then /ping is probed
from inside the container (`podman exec`), on port 8080.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from e2e.assembly import DockerImageAsset
from e2e.base_image import base_images, ensure_base_image
from e2e.workspace import WORKDIR, CommandFailed, podman, tail

SAGEMAKER_PORT = 8080
BIND_TO_PORT_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
# SageMaker probes /ping with a 2 s timeout.
PING_TIMEOUT_S = 2.0


class ContainerNotHealthy(AssertionError):
    """The container exited or never answered /ping with 200; the message ends with its log tail."""


def build_image(asset: DockerImageAsset, tag: str, *, context: Path | None = None) -> str:
    """Build `asset` (or the same asset from another `context` directory) as `tag`; return the image id.

    The options are the ones cdk-assets passes `docker build` (build args, secrets, platform, ...). The base
    image named in the Dockerfile's FROM is made locally first (e2e.base_image). `--network=host` lets the
    build's `pip install` reach the package index, as the default `docker build` network does.
    """
    directory = context or asset.directory
    for base in base_images(directory / (asset.dockerfile or "Dockerfile")):
        ensure_base_image(base)
    options = asset.build_options()
    if asset.dockerfile:
        options[options.index("--file") + 1] = str(directory / asset.dockerfile)
    if not asset.network_mode:
        options += ["--network", "host"]
    podman("build", "--pull=never", "--layers", "--tag", tag, *options, str(directory), timeout=1800)
    return podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


# Images the e2e checks and the CDK_DOCKER program tag; one set per asset hash.
_OUR_REFERENCES = ("localhost/e2e-", "localhost/cdkasset-", ".dkr.ecr.")


def remove_stale_images(asset_tag: str) -> list[str]:
    """Untag images of earlier runs (other asset hashes), so `.e2e/` does not grow with every change.

    Layers the current images share stay; so do the build cache's unnamed intermediate images.
    """
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stale = [ref for ref in listed if any(p in ref for p in _OUR_REFERENCES) and asset_tag[:16] not in ref]
    if stale:
        podman("rmi", *stale, check=False)
    return stale


def extract_model(archive: Path, into: Path) -> Path:
    """Extract a model.tar.gz as SageMaker does before the container starts; return the directory."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    # The container's user need not be root: make the tree readable by anyone, as SageMaker's mount is.
    for path in [into, *into.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o444))
    return into


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


@dataclass
class Container:
    name: str
    image: str
    port: int
    network: str = "host"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self, lines: int = 80) -> str:
        result = podman("logs", "--tail", str(lines), self.name, check=False)
        return tail(result.stdout + result.stderr, lines)

    def state(self) -> dict[str, object]:
        result = podman("container", "inspect", "--format", "{{json .State}}", self.name, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def wait_healthy(self, timeout_s: float) -> float:
        """Poll /ping as SageMaker does until it answers 200; return the seconds it took.

        Raises ContainerNotHealthy, with the container's log tail, when the container exits or the
        deadline passes.
        """
        started = time.monotonic()
        last = "no answer"
        while time.monotonic() - started < timeout_s:
            state = self.state()
            if state and not state.get("Running"):
                raise ContainerNotHealthy(
                    f"container {self.name} ({self.image}) exited with code {state.get('ExitCode')} before "
                    f"/ping answered 200\n--- container log (tail) ---\n{self.logs()}"
                )
            status = ping(self.port) if self.network == "host" else self.ping_inside()
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}" if status else "no answer"
            time.sleep(0.2)
        raise ContainerNotHealthy(
            f"container {self.name} ({self.image}): /ping did not answer 200 within {timeout_s:.0f} s "
            f"(last: {last})\n--- container log (tail) ---\n{self.logs()}"
        )

    def ping_inside(self) -> int | None:
        """GET /ping from within the container's own network namespace (for `--network=none`)."""
        probe = (
            "import urllib.request as u, urllib.error as e\n"
            f"try: print(u.urlopen('http://127.0.0.1:{self.port}/ping', timeout={PING_TIMEOUT_S}).status)\n"
            "except e.HTTPError as x: print(x.code)\n"
            "except OSError: print(0)\n"
        )
        result = podman("exec", self.name, "python3", "-c", probe, check=False, timeout=30)
        text = result.stdout.strip()
        return int(text) or None if result.returncode == 0 and text.isdigit() else None

    def stop(self, grace_s: int = 30) -> tuple[int, float]:
        """`podman stop` (SIGTERM, SIGKILL after `grace_s`); return the exit code and the seconds it took."""
        started = time.monotonic()
        podman("stop", "--time", str(grace_s), self.name, check=False, timeout=grace_s + 30)
        elapsed = time.monotonic() - started
        code = int(str(self.state().get("ExitCode", -1)))
        return code, elapsed

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


def ping(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PING_TIMEOUT_S)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def image_accepts_bind_to_port(image: str) -> bool:
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", image).stdout.strip()
    return (json.loads(labels) or {}).get(BIND_TO_PORT_LABEL) == "true"


def start_as_sagemaker(
    image: str,
    model_dir: Path,
    environment: Mapping[str, str],
    *,
    port: int | None = None,
    network: str = "host",
) -> Container:
    """`podman run IMAGE serve` with the model mounted read-only at /opt/ml/model and `environment`.

    Port 8080 when free (what SageMaker uses); otherwise a free port through SAGEMAKER_BIND_TO_PORT, which
    requires the image's bind-to-port label (SageMaker sets that variable only for such images).
    """
    env = dict(environment)
    if network == "none":
        port = SAGEMAKER_PORT  # the container's own loopback: nothing else can hold its port
    elif port is None:
        port = SAGEMAKER_PORT if port_is_free(SAGEMAKER_PORT) else free_port()
    if network == "host" and port != SAGEMAKER_PORT:
        if not image_accepts_bind_to_port(image):
            raise RuntimeError(
                f"port {SAGEMAKER_PORT} is busy and {image} lacks the label {BIND_TO_PORT_LABEL}=true, "
                "so it cannot be asked to listen elsewhere; free port 8080 and re-run"
            )
        env["SAGEMAKER_BIND_TO_PORT"] = str(port)
    name = f"e2e-serve-{uuid.uuid4().hex[:10]}"
    env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    podman(
        "run", "--detach", "--name", name, "--network", network,
        "--volume", f"{model_dir}:/opt/ml/model:ro",
        *env_args, image, "serve",
    )  # fmt: skip
    return Container(name=name, image=image, port=port, network=network)


@contextlib.contextmanager
def served(
    image: str,
    model_archive: Path,
    environment: Mapping[str, str],
    *,
    startup_timeout_s: float = 120,
    network: str = "host",
) -> Iterator[tuple[Container, float]]:
    """Run `image` as SageMaker would with `model_archive`, wait until healthy; always remove it after."""
    scratch = Path(tempfile.mkdtemp(prefix="model-", dir=_tmp()))
    container = None
    try:
        model_dir = extract_model(model_archive, scratch / "model")
        container = start_as_sagemaker(image, model_dir, environment, network=network)
        startup = container.wait_healthy(startup_timeout_s)
        yield container, startup
    finally:
        if container is not None:
            container.remove()
        shutil.rmtree(scratch, ignore_errors=True)


def _tmp() -> Path:
    path = WORKDIR / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = [
    "CommandFailed",
    "Container",
    "ContainerNotHealthy",
    "build_image",
    "extract_model",
    "remove_stale_images",
    "served",
    "start_as_sagemaker",
]
