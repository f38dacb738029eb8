"""Options and policies shared by every test package.

- `--server-url URL` (or env `SERVE_URL`): run the inference server's contract tests against a server
  that is already running (the e2e suite points them at the real container) instead of a host process.
- `require_tool(name)`: end-to-end tests need podman, debootstrap and friends. Outside CI they skip with a
  reason that names the missing tool; with `CI=true` a missing tool is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-url",
        default=os.environ.get("SERVE_URL"),
        help="base URL of a running inference server for the contract tests (default: start one on the host)",
    )


def require_tool(name: str) -> str:
    """Return the path of `name`, or skip (outside CI) / fail (CI=true) with a reason naming it."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install {name}); .ci/run installs it"
    if IN_CI:
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)
