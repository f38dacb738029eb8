"""Micro-batching: concurrent requests merged into one predict give the same answers as per-request mode."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.datasets import load_iris

from .conftest import csv_of, model_dir_with_code

# predict_fn only (no custom I/O), so the server may batch it; it records each call's row count.
RECORDING = """
    import os

    def predict_fn(data, model):
        with open(os.environ["BATCH_LOG"], "a") as fh:
            fh.write("%d\\n" % len(data))
        if (data < 0).any():
            raise ValueError("negative measurements are impossible")
        return model.predict(data)
"""

BATCHING = {"SERVE_BATCH_MAX_SIZE": "32", "SERVE_BATCH_MAX_WAIT_MS": "20"}


def requests_of(n: int, seed: int) -> list[np.ndarray]:
    features, _ = load_iris(return_X_y=True)
    rng = random.Random(seed)
    return [features[rng.sample(range(len(features)), rng.choice([1, 1, 1, 2, 5]))] for _ in range(n)]


def send_all(url: str, bodies: list[str], threads: int = 24) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(threads) as pool:
        return list(
            pool.map(
                lambda body: client.post(
                    "/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
                ),
                bodies,
            )
        )


def labels(response: httpx.Response) -> list[int]:
    return [int(v) for v in response.text.split()]


def test_batched_answers_equal_per_request_answers(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    batch_log = tmp_path / "batches.txt"
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, RECORDING)
    server = start_server(model_dir, workers=2, env={**BATCHING, "BATCH_LOG": str(batch_log)})
    model = joblib.load(iris_model_dir / "model.joblib")
    inputs = requests_of(300, seed=1)
    responses = send_all(server.url, [csv_of(rows) for rows in inputs])
    assert [r.status_code for r in responses] == [200] * len(inputs)
    assert [labels(r) for r in responses] == [model.predict(rows).tolist() for rows in inputs]
    calls = [int(n) for n in batch_log.read_text().split()]
    assert sum(calls) == sum(len(rows) for rows in inputs)  # every row predicted exactly once
    # Requests were merged (a single request has at most 5 rows)...
    assert len(calls) < len(inputs)
    assert max(calls) > 5
    assert max(calls) <= 32  # ...up to the configured size


def test_a_failing_request_does_not_poison_its_batch(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, RECORDING)
    server = start_server(model_dir, workers=1, env={**BATCHING, "BATCH_LOG": str(tmp_path / "b.txt")})
    model = joblib.load(iris_model_dir / "model.joblib")
    inputs = requests_of(120, seed=2)
    poisoned = set(range(0, 120, 10))
    bodies = [csv_of(-rows if i in poisoned else rows) for i, rows in enumerate(inputs)]
    responses = send_all(server.url, bodies)
    for i, (rows, response) in enumerate(zip(inputs, responses, strict=True)):
        if i in poisoned:
            assert response.status_code == 500
            assert "negative measurements" in response.json()["message"]
        else:
            assert response.status_code == 200
            assert labels(response) == model.predict(rows).tolist()


def test_default_handler_batches_and_rejects_bad_widths_alone(
    start_server: Any, iris_model_dir: Path
) -> None:
    server = start_server(iris_model_dir, workers=2, env=BATCHING)
    model = joblib.load(iris_model_dir / "model.joblib")
    inputs = requests_of(200, seed=3)
    bodies = [csv_of(rows) for rows in inputs]
    bodies[7] = "1,2,3\n"  # 3 columns: cannot merge with the others, and the model needs 4
    responses = send_all(server.url, bodies)
    for i, (rows, response) in enumerate(zip(inputs, responses, strict=True)):
        if i == 7:
            assert response.status_code == 400
            assert "4 values" in response.json()["message"]
        else:
            assert response.status_code == 200, response.text
            assert labels(response) == model.predict(rows).tolist()
