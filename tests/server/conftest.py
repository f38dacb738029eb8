"""Fixtures for the inference server's tests: real `serve` processes on 127.0.0.1, and model directories.

`ServeProcess` starts the installed ``serve`` console script (the same entry point the image runs) in its own
session, waits for ``/ping`` to answer 200 and stops it with SIGTERM, as SageMaker would. Its combined log is
kept in a file so tests can read the JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.iris.train import SAMPLES, train

SERVE = str(Path(sys.executable).parent / "serve")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def session_pids(sid: int) -> list[int]:
    """Live processes of session `sid` (zombies, which are already dead, excluded)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                if os.getsid(int(name)) == sid:
                    stat = Path(f"/proc/{name}/stat").read_bytes()
                    if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z":
                        pids.append(int(name))
    return pids


class ServeProcess:
    """One `serve` process tree (supervisor + workers) on a free port of 127.0.0.1."""

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SERVE_", "SM_"))}
        full_env.update(
            {"SERVE_HOST": HOST, "SAGEMAKER_BIND_TO_PORT": str(self.port), "SM_MODEL_DIR": str(model_dir)}
        )
        full_env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
        full_env.update(env or {})
        self._log = log_path.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [SERVE, *(args or [])],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    # ------------------------------------------------------------------ life cycle
    def wait_ready(self, timeout: float = 60.0) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"serve not ready after {timeout} s:\n{self.log_text()[-3000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM the supervisor (only it: it must forward to its workers) and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill_leftovers()

    def kill_leftovers(self) -> None:
        for pid in session_pids(self.proc.pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=30)
        self.kill_leftovers()

    # ------------------------------------------------------------------ introspection
    def worker_pids(self) -> list[int]:
        return sorted(pid for pid in session_pids(self.proc.pid) if pid != self.proc.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records


# ---------------------------------------------------------------------- model directories
@pytest.fixture(scope="session")
def iris_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model as SageMaker lays it out: model.joblib only, no code/."""
    model_dir = tmp_path_factory.mktemp("iris") / "model"
    train(model_dir)
    return model_dir


def model_dir_with_code(base: Path, iris_model_dir: Path, code: str, name: str = "inference.py") -> Path:
    """A model dir holding the iris model plus `code/<name>` (a toolkit-style user module)."""
    model_dir = base / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "model.joblib").write_bytes((iris_model_dir / "model.joblib").read_bytes())
    (model_dir / "code" / name).write_text(textwrap.dedent(code))
    return model_dir


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: start_server(model_dir, workers=2, env=..., ready=True) -> ServeProcess; all stopped after."""
    started: list[ServeProcess] = []

    def start(model_dir: Path, *, ready: bool = True, **kwargs: Any) -> ServeProcess:
        server = ServeProcess(model_dir, tmp_path / f"serve-{len(started)}.log", **kwargs)
        started.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in started:
        server.__exit__()


# ---------------------------------------------------------------------- the shared contract server
@pytest.fixture(scope="session")
def server_url(
    request: pytest.FixtureRequest, iris_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server for read-only tests: --server-url/SERVE_URL when given (e.g. the real container), else one
    `serve` process on the host with the iris model and 2 workers, shared by the whole session."""
    given = request.config.getoption("--server-url")
    if given:
        yield str(given).rstrip("/")
        return
    log_path = tmp_path_factory.mktemp("contract") / "serve.log"
    with ServeProcess(iris_model_dir, log_path, workers=2) as server:
        server.wait_ready()
        yield server.url


@pytest.fixture(scope="session")
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as http_client:
        yield http_client


def csv_of(rows: Any) -> str:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)


SAMPLE_ROWS = [list(features) for features, _ in SAMPLES]
SAMPLE_LABELS = [label for _, label in SAMPLES]
