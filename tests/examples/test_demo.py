"""`make demo`, the README's main job, run as a user runs it: real CDK CLI, real `serve` process.

The demo is also a smoke test (it exits non-zero when a step fails or a prediction is wrong), so
these tests check both directions: it passes on main, and it fails loudly when the server does.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from examples.iris.train import SAMPLES, ensure_model

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "iris" / "demo.py"
CLASSES = ("setosa", "versicolor", "virginica")

pytestmark = pytest.mark.slow


def run_demo(outdir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--output", str(outdir)],
        cwd=ROOT,
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_serves_the_synthesized_archive_and_prints_the_models_own_predictions(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "cdk.out")

    assert result.returncode == 0, result.stdout + result.stderr
    model = joblib.load(ensure_model() / "model.joblib")
    rows = [features for features, _ in SAMPLES]
    for features, predicted in zip(rows, model.predict(np.array(rows)), strict=True):
        assert f"  {features} -> {CLASSES[int(predicted)]}\n" in result.stdout, result.stdout
    assert "POST /invocations  application/json -> 200" in result.stdout
    assert "demo OK: every prediction matches" in result.stdout
    # It served the archive the template deploys, from the assembly it synthesized.
    assert str(tmp_path / "cdk.out") in result.stdout


def test_demo_fails_and_says_why_when_the_server_cannot_start(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_serve = fake_bin / "serve"
    fake_serve.write_text("#!/bin/sh\necho 'cannot load the model' >&2\nexit 3\n")
    fake_serve.chmod(fake_serve.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}

    result = run_demo(tmp_path / "cdk.out", env)

    assert result.returncode != 0
    assert "serve exited with status 3 before it was ready" in result.stderr
    assert "demo OK" not in result.stdout
