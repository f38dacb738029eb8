"""User code in code/inference.py, written the sagemaker-inference-toolkit way, served unchanged."""

from __future__ import annotations

import io
import json
import pickle
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np

from .conftest import SAMPLE_LABELS, SAMPLE_ROWS, csv_of, model_dir_with_code

CSV_BODY = csv_of(SAMPLE_ROWS)
NAMES = ["setosa", "versicolor", "virginica"]

# A handler as people write them for the toolkit: strict content-type checks, bytes in, (body, type) out,
# the toolkit's optional `context` argument, and the toolkit's exception with a status_code.
TOOLKIT_HANDLER = """
    import io
    import json
    import os

    import joblib
    import numpy as np

    NAMES = ["setosa", "versicolor", "virginica"]


    class UnsupportedFormatError(Exception):  # shaped like sagemaker_inference.errors.UnsupportedFormatError
        def __init__(self, content_type):
            super().__init__("Content type %s is not supported by this framework." % content_type)
            self.status_code = 415


    def model_fn(model_dir):
        return {"clf": joblib.load(os.path.join(model_dir, "model.joblib")), "names": NAMES}


    def input_fn(input_data, content_type, context):
        if content_type == "text/csv":
            rows = np.loadtxt(io.StringIO(input_data.decode("utf-8")), delimiter=",", ndmin=2)
            tenant = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
            return {"rows": rows, "tenant": tenant}
        if content_type == "application/json":
            return {"rows": np.array(json.loads(input_data)["features"], dtype=float), "tenant": None}
        raise UnsupportedFormatError(content_type)


    def predict_fn(data, model):
        labels = model["clf"].predict(data["rows"])
        return {"names": [model["names"][int(i)] for i in labels], "tenant": data["tenant"]}


    def output_fn(prediction, accept):
        if accept == "application/json":
            return json.dumps(prediction), accept
        if accept == "text/csv":
            return "\\n".join(prediction["names"]) + "\\n", accept
        raise UnsupportedFormatError(accept)
"""

TRANSFORM_HANDLER = """
    import json
    import os
    import pickle


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "model.pkl"), "rb") as fh:
            return pickle.load(fh)


    def transform_fn(model, input_data, content_type, accept):
        rows = json.loads(input_data)
        body = {"labels": model.predict(rows).tolist(), "seen": [content_type, accept]}
        return json.dumps(body), "application/json"
"""

FAULTY_HANDLER = """
    def predict_fn(data, model):
        if data[0][0] < 0:
            raise RuntimeError("secret internal detail: tensor mismatch in layer 7")
        return model.predict(data)
"""


def post(url: str, body: bytes | str, content_type: str = "text/csv", **headers: str) -> httpx.Response:
    return httpx.post(
        url + "/invocations", content=body, headers={"Content-Type": content_type, **headers}, timeout=30
    )


def test_a_toolkit_style_handler_is_served_unchanged(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    server = start_server(model_dir_with_code(tmp_path, iris_model_dir, TOOLKIT_HANDLER))
    expected = [NAMES[label] for label in SAMPLE_LABELS]
    # The handler compares content types exactly: the server passes the bare media type, without charset.
    response = post(server.url, CSV_BODY, "text/csv; charset=utf-8", Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.text.split() == expected
    assert response.headers["content-type"] == "text/csv"
    response = post(
        server.url,
        json.dumps({"features": SAMPLE_ROWS}),
        "application/json",
        Accept="application/json;q=0.9, text/csv;q=0.1",
    )
    assert response.json()["names"] == expected


def test_a_handler_with_context_sees_the_custom_attributes(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    server = start_server(model_dir_with_code(tmp_path, iris_model_dir, TOOLKIT_HANDLER), workers=1)
    response = post(
        server.url,
        CSV_BODY,
        Accept="application/json",
        **{"X-Amzn-SageMaker-Custom-Attributes": "tenant=blue"},
    )
    assert response.json()["tenant"] == "tenant=blue"
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "tenant=blue"
    # The handler's own exception carries status_code 415: that status reaches the caller, as a short message.
    refused = post(server.url, b"\x00\x01", "application/octet-stream")
    assert refused.status_code == 415
    assert "application/octet-stream is not supported" in refused.json()["message"]
    wrong_accept = post(server.url, CSV_BODY, Accept="application/x-npy")
    assert wrong_accept.status_code == 415


def test_transform_fn_and_a_pickled_model(start_server: Any, iris_model_dir: Path, tmp_path: Path) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, TRANSFORM_HANDLER)
    (model_dir / "model.joblib").unlink()
    with (model_dir / "model.pkl").open("wb") as fh:
        pickle.dump(joblib.load(iris_model_dir / "model.joblib"), fh)
    server = start_server(model_dir, workers=1)
    response = post(server.url, json.dumps(SAMPLE_ROWS), "application/json; charset=utf-8", Accept="*/*")
    assert response.status_code == 200
    assert response.json() == {"labels": SAMPLE_LABELS, "seen": ["application/json", "application/json"]}


def test_default_handler_loads_model_pkl(start_server: Any, iris_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "pkl-model"
    model_dir.mkdir()
    with (model_dir / "model.pkl").open("wb") as fh:
        pickle.dump(joblib.load(iris_model_dir / "model.joblib"), fh)
    server = start_server(model_dir, workers=1)
    assert post(server.url, CSV_BODY, Accept="application/json").json() == SAMPLE_LABELS


def test_sagemaker_program_names_the_user_module(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, FAULTY_HANDLER, name="custom_entry.py")
    server = start_server(model_dir, workers=1, env={"SAGEMAKER_PROGRAM": "custom_entry.py"})
    assert post(server.url, "-1,1,1,1\n").status_code == 500  # its predict_fn is the one that runs
    missing = start_server(model_dir, ready=False, workers=1, env={"SAGEMAKER_PROGRAM": "nope.py"})
    assert missing.proc.wait(30) == 1
    assert "nope.py" in missing.log_text()


def test_a_model_error_is_a_short_message_and_the_traceback_goes_to_the_log(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    server = start_server(model_dir_with_code(tmp_path, iris_model_dir, FAULTY_HANDLER), workers=1)
    response = post(server.url, "-1,3.5,1.4,0.2\n", **{"X-Amzn-SageMaker-Inference-Id": "req-7"})
    assert response.status_code == 500
    doc = response.json()
    assert doc["error"] == "model_error"
    assert (
        doc["message"] == "predict failed: RuntimeError: secret internal detail: tensor mismatch in layer 7"
    )
    assert "Traceback" not in response.text
    assert len(response.content) < 2048
    time.sleep(0.2)
    errors = [r for r in server.log_records() if r.get("level") == "ERROR" and "exc" in r]
    assert any("req-7" in r["msg"] and "Traceback" in r["exc"] and "layer 7" in r["exc"] for r in errors)
    assert post(server.url, CSV_BODY, Accept="application/json").json() == SAMPLE_LABELS  # the worker lives


def test_default_handler_npy_and_json_round_trip_probabilities_shape(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    code = """
        def predict_fn(data, model):
            return model.predict_proba(data)
    """
    server = start_server(model_dir_with_code(tmp_path, iris_model_dir, code), workers=1)
    buffer = io.BytesIO()
    np.save(buffer, np.array(SAMPLE_ROWS))
    response = post(server.url, buffer.getvalue(), "application/x-npy", Accept="application/x-npy")
    proba = np.load(io.BytesIO(response.content))
    assert proba.shape == (3, 3)
    assert proba.argmax(axis=1).tolist() == SAMPLE_LABELS
    as_csv = post(server.url, CSV_BODY, Accept="text/csv").text.strip().split("\n")
    assert [len(line.split(",")) for line in as_csv] == [3, 3, 3]
