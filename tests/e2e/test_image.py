"""The image `cdk deploy` ships, built from cdk.out and run as SageMaker hosting runs it.

What these prove: the Dockerfile builds from the synthesized asset directory with the synthesized build args
and secrets; the container starts from `serve` with the synthesized model archive at /opt/ml/model
(read-only) and the Model's environment, becomes healthy, passes the server's contract tests over HTTP,
predicts exactly what the trained model predicts, and stops promptly on SIGTERM. A broken image fails these
checks (last test).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from e2e.assembly import Stack
from e2e.container import Container, ContainerNotHealthy, build_image, extract_model, served
from e2e.workspace import REPO, WORKDIR, tail

CONTRACT_TESTS = REPO / "tests" / "server" / "test_contract.py"
# The dependency the broken-image test removes: the ASGI server `serve` cannot start without.
REMOVED_DEPENDENCY = "uvicorn"


def invoke(container: Container, body: bytes, content_type: str, accept: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        f"{container.url}/invocations",
        data=body,
        headers={"Content-Type": content_type, "Accept": accept},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


@pytest.fixture(scope="module")
def expected_predictions(example_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The shipped model's own `predict` on all 150 iris rows, loaded from the synthesized archive."""
    model_dir = extract_model(example_stack.model_data_asset().path, tmp_path_factory.mktemp("model"))
    model = joblib.load(model_dir / "model.joblib")
    return np.asarray(model.predict(load_iris(return_X_y=True)[0]))


def test_server_contract_tests_pass_against_the_container(example_container: Container) -> None:
    assert CONTRACT_TESTS.is_file(), f"{CONTRACT_TESTS.relative_to(REPO)} is missing: nothing to run"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(CONTRACT_TESTS), "--server-url", example_container.url,
         "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra"],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"contract tests failed against {example_container.url} (exit {result.returncode}):\n{tail(output)}"
        f"\n--- container log (tail) ---\n{example_container.logs()}"
    )
    assert " passed" in output, f"no contract test ran:\n{tail(output)}"
    assert " skipped" not in output, f"contract tests were skipped:\n{tail(output)}"


def test_csv_predictions_on_the_whole_iris_set_match_the_model(
    example_container: Container, expected_predictions: np.ndarray
) -> None:
    features = load_iris(return_X_y=True)[0]
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in features).encode()
    status, content_type, answer = invoke(example_container, body, "text/csv", "text/csv")
    assert status == 200
    assert content_type.startswith("text/csv")
    rows = [row for row in csv.reader(io.StringIO(answer.decode())) if row]
    got = np.asarray([float(row[0]) for row in rows])
    np.testing.assert_array_equal(got, expected_predictions.astype(float))


def test_json_predictions_on_the_whole_iris_set_match_the_model(
    example_container: Container, expected_predictions: np.ndarray
) -> None:
    features = load_iris(return_X_y=True)[0]
    body = json.dumps(features.tolist()).encode()
    status, content_type, answer = invoke(example_container, body, "application/json", "application/json")
    assert status == 200
    assert content_type.startswith("application/json")
    document = json.loads(answer)
    predictions = document["predictions"] if isinstance(document, dict) else document
    np.testing.assert_array_equal(np.asarray(predictions), expected_predictions)


def test_container_stops_on_sigterm_within_the_grace_period(example_image: str, example_stack: Stack) -> None:
    # SageMaker sends SIGTERM and kills 30 s later; exit code 137 would mean the server ignored SIGTERM.
    archive = example_stack.model_data_asset().path
    with served(example_image, archive, example_stack.container_environment()) as (container, _):
        code, seconds = container.stop(grace_s=30)
        log = container.logs()
    assert code != 137, f"SIGTERM was ignored: killed after {seconds:.1f} s\n{log}"
    assert seconds < 25, f"stop took {seconds:.1f} s (exit code {code})\n{log}"


def test_network_isolated_model_becomes_healthy_with_no_network(
    example_image: str, example_stack: Stack
) -> None:
    # EnableNetworkIsolation gives the container no network at all: a server that fetched anything at
    # start-up would hang or fail there. /ping is probed from inside the container.
    if not example_stack.sagemaker_model().network_isolation:
        pytest.skip("the example's Model does not set EnableNetworkIsolation")
    archive = example_stack.model_data_asset().path
    environment = example_stack.container_environment()
    with served(example_image, archive, environment, network="none") as (container, startup):
        assert container.ping_inside() == 200
    assert startup < 60


@pytest.mark.slow
def test_image_without_a_dependency_is_reported_unhealthy_with_its_log(
    example_image: str, example_stack: Stack
) -> None:
    """The check is not vacuous: the same asset with one dependency removed from requirements.txt fails it."""
    asset = example_stack.model_image_asset()
    scratch = Path(tempfile.mkdtemp(prefix="broken-", dir=WORKDIR / "tmp"))
    try:
        context = scratch / "context"
        shutil.copytree(asset.directory, context)
        requirements = context / "requirements.txt"
        lines = requirements.read_text().splitlines()
        kept = [line for line in lines if not line.strip().lower().startswith(REMOVED_DEPENDENCY)]
        assert len(kept) == len(lines) - 1, f"{REMOVED_DEPENDENCY} is not listed once in {requirements}"
        requirements.write_text("\n".join(kept) + "\n")
        # pip installs what the file lists, so the build itself succeeds: only running the image shows it.
        broken = build_image(asset, f"localhost/e2e-broken:{asset.image_tag[:16]}", context=context)
        assert broken != example_image
        with (
            pytest.raises(ContainerNotHealthy) as unhealthy,
            served(broken, example_stack.model_data_asset().path, example_stack.container_environment(),
                   startup_timeout_s=60),
        ):  # fmt: skip
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    message = str(unhealthy.value)
    assert "container log (tail)" in message
    assert f"No module named '{REMOVED_DEPENDENCY}'" in message, message
