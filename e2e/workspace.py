"""The e2e scratch directory and the podman environment that lives in it.

Everything the checks create at run time sits under `.e2e/` (gitignored): podman's configuration, image
storage and TMPDIR, the base image cache, synthesized assemblies. Podman reads its configuration from the
files named by `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF`, so no file under /etc or ~ is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKDIR = Path(os.environ.get("E2E_WORKDIR", REPO / ".e2e")).resolve()

# podman's default ulimits cannot be raised on these machines, and crun refuses their cgroup v1 layout
# (../shared/ENVIRONMENT.md): both are set here instead of in /etc/containers.
_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Host networking only: a bridge would make CNI add iptables rules and turn on IP forwarding, host-wide.
netns = "host"

[engine]
runtime = "runc"
tmp_dir = "{run}/libpod"
volume_path = "{storage}/volumes"
static_dir = "{storage}/libpod"

[network]
network_config_dir = "{workdir}/cni"
"""

_STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{storage}"
runroot = "{run}"
"""


def podman_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment in which podman uses only `.e2e/` (writing its config files on first use)."""
    storage, run, tmp = WORKDIR / "containers" / "storage", WORKDIR / "containers" / "run", WORKDIR / "tmp"
    for directory in (storage, run, tmp, WORKDIR / "cni"):
        directory.mkdir(parents=True, exist_ok=True)
    fields = {"storage": storage, "run": run, "workdir": WORKDIR}
    containers_conf, storage_conf = WORKDIR / "containers.conf", WORKDIR / "storage.conf"
    _write_if_changed(containers_conf, _CONTAINERS_CONF.format(**fields))
    _write_if_changed(storage_conf, _STORAGE_CONF.format(**fields))
    env = dict(os.environ if base is None else base)
    env.update(
        CONTAINERS_CONF=str(containers_conf), CONTAINERS_STORAGE_CONF=str(storage_conf), TMPDIR=str(tmp)
    )
    return env


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def podman(
    *args: str, check: bool = True, capture: bool = True, timeout: float | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` in the `.e2e/` environment; on failure raise with its stderr in the message."""
    return run(["podman", *args], check=check, capture=capture, timeout=timeout, env=podman_env(), **kwargs)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with text output; a failure raises `CommandFailed` carrying the output's tail."""
    # Checked below rather than by check=True, for a message that carries the command's output.
    result = subprocess.run(
        list(argv), check=False, text=True, capture_output=capture, timeout=timeout, **kwargs
    )
    if check and result.returncode != 0:
        raise CommandFailed(argv, result)
    return result


class CommandFailed(RuntimeError):
    """A command exited non-zero; the message names it and ends with its output."""

    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        output = "\n".join(part for part in (result.stdout, result.stderr) if part)
        super().__init__(
            f"`{' '.join(map(str, argv))}` exited {result.returncode}\n--- output (tail) ---\n{tail(output)}"
        )


def tail(text: str | None, lines: int = 60) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
