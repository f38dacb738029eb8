"""Settings read once from the environment (and the command line), validated as a whole.

Every knob has a SageMaker name where SageMaker or its toolkits define one; this server's own knobs start with
``SERVE_``. Tests and the benchmark build `Settings` from a plain mapping instead of patching globals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ConfigError", "Settings"]

#: SageMaker real-time inference's request limit: 6 MB = 6,291,456 bytes.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LOG_LEVELS = {"CRITICAL": 50, "FATAL": 50, "ERROR": 40, "WARN": 30, "WARNING": 30, "INFO": 20, "DEBUG": 10}


def _cpus() -> int:
    """CPUs this process may run on (respects cpusets), which is what "one worker per CPU" means."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists every problem and how to fix it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Server configuration. Build it with `Settings.from_env`; every field has a documented default."""

    host: str = "0.0.0.0"
    port: int = 8080
    model_dir: Path = Path("/opt/ml/model")
    #: Worker processes; default: the CPU count.
    workers: int = field(default_factory=_cpus)
    #: Seconds one invocation may take before it is answered 504; 0 disables the timeout.
    timeout_s: float = 60.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Response type when the request has no Accept (or only */*); None: the request's own type if it can be
    #: encoded, else application/json.
    default_accept: str | None = None
    program: str = "inference.py"
    log_level: int = logging.INFO
    #: Micro-batching: the most rows merged into one predict call; 0 or 1 turns batching off.
    batch_max_size: int = 0
    #: Micro-batching: how long the first request of a batch may wait for others.
    batch_max_wait_s: float = 0.002
    #: Seconds a worker gets to finish in-flight requests after SIGTERM (SageMaker kills after 30).
    graceful_timeout_s: float = 20.0
    keep_alive_s: float = 60.0
    #: Predict scikit-learn forests without joblib's per-tree dispatch (`forests`; identical results).
    forest_fast_path: bool = True
    # Batch transform (reported by GET /execution-parameters).
    batch_transform: bool = False
    max_concurrent_transforms: int | None = None
    batch_strategy: str = "MULTI_RECORD"
    max_payload_mb: int = 6

    @property
    def batching(self) -> bool:
        return self.batch_max_size > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `env` (default: ``os.environ``); `overrides` (e.g. from the command line,
        None meaning "not given") win. Raises `ConfigError` naming every bad variable at once."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def first(*names: str) -> tuple[str, str] | None:
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    return name, value
            return None

        def number(
            kind: type[int] | type[float], names: tuple[str, ...], default: Any, minimum: float
        ) -> Any:
            found = first(*names)
            if found is None:
                return default
            name, raw = found
            try:
                value = kind(raw)
            except ValueError:
                what = "whole number" if kind is int else "number"
                problems.append(f"{name}={raw!r} is not a {what}; set it to a {what} >= {minimum:g}")
                return default
            if value < minimum:
                problems.append(f"{name}={raw!r} is below {minimum:g}; set it to a number >= {minimum:g}")
                return default
            return value

        batch = env.get("SAGEMAKER_BATCH", "").strip().lower() in {"1", "true", "yes"}
        max_payload_mb = number(int, ("SAGEMAKER_MAX_PAYLOAD_IN_MB",), 6, 0)
        # Batch transform sends up to SAGEMAKER_MAX_PAYLOAD_IN_MB per request and allows 600 s per invocation.
        default_body = max_payload_mb * 1024 * 1024 if batch and max_payload_mb else DEFAULT_MAX_BODY_BYTES
        level_raw = env.get("SAGEMAKER_CONTAINER_LOG_LEVEL", "").strip()
        log_level = logging.INFO
        if level_raw:
            if level_raw.isdigit():
                log_level = int(level_raw)
            elif level_raw.upper() in _LOG_LEVELS:
                log_level = _LOG_LEVELS[level_raw.upper()]
            else:
                problems.append(
                    f"SAGEMAKER_CONTAINER_LOG_LEVEL={level_raw!r} is not a level; use DEBUG, INFO, WARNING, "
                    "ERROR or a number such as 20"
                )
        strategy = env.get("SAGEMAKER_BATCH_STRATEGY", "").strip().upper() or "MULTI_RECORD"
        if strategy not in {"MULTI_RECORD", "SINGLE_RECORD"}:
            problems.append(f"SAGEMAKER_BATCH_STRATEGY={strategy!r} must be MULTI_RECORD or SINGLE_RECORD")
            strategy = "MULTI_RECORD"
        concurrent = first("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
        fast_raw = env.get("SERVE_FOREST_FAST_PATH", "").strip().lower()
        if fast_raw and fast_raw not in _TRUE | _FALSE:
            problems.append(f"SERVE_FOREST_FAST_PATH={fast_raw!r} must be true or false")
        settings = cls(
            host=env.get("SERVE_HOST", "").strip() or "0.0.0.0",
            port=number(int, ("SAGEMAKER_BIND_TO_PORT",), 8080, 0),
            model_dir=Path(env.get("SM_MODEL_DIR", "").strip() or "/opt/ml/model"),
            workers=number(int, ("SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS"), _cpus(), 1),
            timeout_s=number(
                float,
                ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT"),
                600.0 if batch else 60.0,
                0,
            ),
            max_body_bytes=number(int, ("SERVE_MAX_REQUEST_BYTES",), default_body, 1),
            default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip() or None,
            program=env.get("SAGEMAKER_PROGRAM", "").strip() or "inference.py",
            log_level=log_level,
            batch_max_size=number(int, ("SERVE_BATCH_MAX_SIZE",), 0, 0),
            batch_max_wait_s=number(float, ("SERVE_BATCH_MAX_WAIT_MS",), 2.0, 0) / 1000.0,
            graceful_timeout_s=number(float, ("SERVE_GRACEFUL_TIMEOUT",), 20.0, 0),
            keep_alive_s=number(float, ("SERVE_KEEP_ALIVE",), 60.0, 1),
            forest_fast_path=fast_raw not in _FALSE,
            batch_transform=batch,
            max_concurrent_transforms=number(int, ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",), 1, 1)
            if concurrent
            else None,
            batch_strategy=strategy,
            max_payload_mb=max_payload_mb,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "model_dir" in given:
            given["model_dir"] = Path(given["model_dir"])
        for name, value in given.items():
            if name == "workers" and int(value) < 1:
                problems.append(f"--workers={value} must be >= 1")
            if name == "port" and not 0 <= int(value) <= 65535:
                problems.append(f"--port={value} must be in 0..65535")
        if settings.port > 65535:
            problems.append(f"SAGEMAKER_BIND_TO_PORT={settings.port} must be <= 65535")
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return replace(settings, **given)

    def execution_parameters(self) -> dict[str, Any]:
        """The body of GET /execution-parameters (batch transform asks for it before sending data)."""
        return {
            "MaxConcurrentTransforms": self.max_concurrent_transforms or self.workers,
            "BatchStrategy": self.batch_strategy,
            "MaxPayloadInMB": max(1, min(100, self.max_body_bytes // (1024 * 1024))),
        }
