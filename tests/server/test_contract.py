"""SageMaker hosting contract, checked over HTTP only.

Runs against `--server-url` / SERVE_URL when given (the e2e suite points it at the real container with the
iris model at /opt/ml/model), otherwise against a `serve` process started on the host. Nothing here assumes
host paths or environment: only the iris model served by the default handler.
"""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest

from .conftest import SAMPLE_LABELS, SAMPLE_ROWS, csv_of

CSV_BODY = csv_of(SAMPLE_ROWS)
CSV_ANSWER = "".join(f"{label}\n" for label in SAMPLE_LABELS)
LIMIT = 6 * 1024 * 1024


def assert_json_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["status"] == status
    assert isinstance(doc["error"], str)
    assert doc["error"]
    for fragment in fragments:
        assert fragment in doc["message"], doc["message"]
    assert "Traceback" not in response.text
    return doc


def labels_of(response: httpx.Response) -> list[int]:
    kind = response.headers["content-type"].split(";")[0]
    if kind == "text/csv":
        return [int(float(v)) for v in response.text.split()]
    if kind == "application/json":
        return [int(v) for v in response.json()]
    if kind == "application/x-npy":
        return [int(v) for v in np.load(io.BytesIO(response.content))]
    raise AssertionError(f"unexpected content type {kind}")


# ---------------------------------------------------------------------------- health and parameters
def test_ping_answers_200_once_loaded(client: httpx.Client) -> None:
    assert client.get("/ping").status_code == 200


def test_execution_parameters_describe_batch_transform(client: httpx.Client) -> None:
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    doc = response.json()
    assert set(doc) == {"MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"}
    assert isinstance(doc["MaxConcurrentTransforms"], int)
    assert doc["MaxConcurrentTransforms"] >= 1
    assert doc["BatchStrategy"] in {"MULTI_RECORD", "SINGLE_RECORD"}
    assert 1 <= doc["MaxPayloadInMB"] <= 100


def test_openapi_schema_describes_the_contract(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ping", "/invocations", "/execution-parameters"} <= set(paths)
    assert set(paths["/invocations"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "text/csv",
        "application/x-npy",
    }


# ---------------------------------------------------------------------------- codecs
def test_csv_in_csv_out(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv"
    assert response.text == CSV_ANSWER


def test_without_accept_the_answer_is_decodable_and_correct(client: httpx.Client) -> None:
    response = client.post("/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200
    assert labels_of(response) == SAMPLE_LABELS


def test_json_rows_in_json_out(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=json.dumps(SAMPLE_ROWS),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == SAMPLE_LABELS


def test_json_instances_object_is_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", json={"instances": SAMPLE_ROWS}, headers={"Accept": "application/json"}
    )
    assert response.json() == SAMPLE_LABELS


def test_npy_in_npy_out(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array(SAMPLE_ROWS))
    response = client.post(
        "/invocations",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(response.content)).tolist() == SAMPLE_LABELS


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/csv; charset=utf-8", CSV_BODY.encode()),
        ("text/csv;charset=UTF-8", CSV_BODY.encode()),
        ("text/csv; charset=latin-1", CSV_BODY.encode("latin-1")),
        ('TEXT/CSV; Charset="utf-8"', CSV_BODY.encode()),
        ("application/json; charset=utf-8", json.dumps(SAMPLE_ROWS).encode()),
        ("application/json; charset=utf-16", json.dumps(SAMPLE_ROWS).encode("utf-16")),
    ],
)
def test_content_type_parameters_such_as_charset_are_accepted(
    client: httpx.Client, content_type: str, body: bytes
) -> None:
    response = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert labels_of(response) == SAMPLE_LABELS


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", "application/json"),
        ("text/csv;q=0.2, application/json;q=0.9", "application/json"),
        ("application/x-npy;q=0.5, text/csv", "text/csv"),
        ("application/json;q=0, text/csv;q=0.1", "text/csv"),
        ("text/*", "text/csv"),
        ("*/*;q=0.1, application/x-npy", "application/x-npy"),
        ("image/png, application/json;q=0.3", "application/json"),
    ],
)
def test_accept_lists_with_q_values_are_honoured(client: httpx.Client, accept: str, expected: str) -> None:
    response = client.post(
        "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv", "Accept": accept}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == expected
    assert labels_of(response) == SAMPLE_LABELS


def test_accept_any_gives_a_correct_answer(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv", "Accept": "*/*"}
    )
    assert response.status_code == 200
    assert labels_of(response) == SAMPLE_LABELS


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("accept", ["image/png", "application/json;q=0", "text/html, application/xml"])
def test_nothing_acceptable_is_406(client: httpx.Client, accept: str) -> None:
    response = client.post(
        "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv", "Accept": accept}
    )
    assert_json_error(response, 406, "application/json")


@pytest.mark.parametrize("content_type", ["image/png", "text/plain", "application/xml; charset=utf-8"])
def test_unsupported_content_type_is_415(client: httpx.Client, content_type: str) -> None:
    response = client.post("/invocations", content=CSV_BODY, headers={"Content-Type": content_type})
    assert_json_error(response, 415, content_type.split(";", maxsplit=1)[0])


def test_malformed_content_type_is_400(client: httpx.Client) -> None:
    response = client.post("/invocations", content=CSV_BODY, headers={"Content-Type": "csv"})
    assert_json_error(response, 400, "Content-Type")


def test_unknown_charset_is_415(client: httpx.Client) -> None:
    response = client.post(
        "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv; charset=klingon"}
    )
    assert_json_error(response, 415, "klingon")


@pytest.mark.parametrize(
    ("content_type", "body", "where"),
    [
        ("text/csv", "5.1,3.5,1.4,0.2\n6.2,2.9,abc,1.3\n", "line 2, column 3"),
        ("text/csv", "5.1,3.5,1.4,0.2\n6.2,2.9,4.3\n", "line 2 has 3 fields"),
        ("text/csv", "5.1,3.5,,0.2\n", "line 1, column 3"),
        ("text/csv", "", "empty"),
        ("text/csv", "5.1,3.5,1.4\n", "4 values"),
        ("application/json", "[[5.1, 3.5, 1.4, 0.2]", "line 1, column 22"),
        ("application/json", "[[5.1, 3.5, 1.4, 0.2],\n [6.2, 2.9]]", "row 2 has 2 values"),
        ("application/json", '[[5.1, "x", 1.4, 0.2]]', "row 1, field 2"),
        ("application/json", '{"rows": [[1, 2, 3, 4]]}', "instances"),
        ("application/json", '"hello"', "list"),
        ("application/x-npy", "not numpy at all", "NUMPY"),
    ],
)
def test_malformed_body_is_400_saying_where(
    client: httpx.Client, content_type: str, body: str, where: str
) -> None:
    response = client.post("/invocations", content=body.encode(), headers={"Content-Type": content_type})
    assert_json_error(response, 400, where)


def test_truncated_npy_is_400(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array(SAMPLE_ROWS))
    response = client.post(
        "/invocations", content=buffer.getvalue()[:-5], headers={"Content-Type": "application/x-npy"}
    )
    assert_json_error(response, 400, "bytes after its header")


def test_pickled_npy_is_refused(client: httpx.Client) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    response = client.post(
        "/invocations", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"}
    )
    assert_json_error(response, 400, "pickle")


def test_over_the_6_mb_limit_is_413(client: httpx.Client) -> None:
    body = b"5.1,3.5,1.4,0.2\n" * (LIMIT // 16 + 1)
    assert len(body) > LIMIT
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert_json_error(response, 413, str(LIMIT))


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks():  # no Content-Length: the server must count while reading
        for _ in range(LIMIT // 65536 + 2):
            yield b"5.1,3.5,1.4,0.2\n" * 4096

    response = client.post("/invocations", content=chunks(), headers={"Content-Type": "text/csv"})
    assert_json_error(response, 413, str(LIMIT))


def test_a_body_just_under_6_mb_is_served(client: httpx.Client) -> None:
    row = b"5.1,3.5,1.4,0.2\n"
    body = row * ((LIMIT - 100) // len(row))
    assert len(body) + len(row) >= LIMIT - 100
    assert len(body) <= LIMIT
    response = client.post(
        "/invocations", content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.text.count("\n") == len(body) // len(row)


def test_get_on_invocations_is_405(client: httpx.Client) -> None:
    response = client.get("/invocations")
    assert_json_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_unknown_path_is_404_json(client: httpx.Client) -> None:
    response = client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == 404


# ---------------------------------------------------------------------------- headers
def test_custom_attributes_are_passed_through(client: httpx.Client) -> None:
    value = "trace_id=abc-123,tenant=blue"
    response = client.post(
        "/invocations",
        content=CSV_BODY,
        headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": value},
    )
    assert response.status_code == 200
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == value


def test_custom_attributes_are_passed_through_on_errors(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=b"x",
        headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "k=v"},
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "k=v"


def test_inference_id_becomes_the_request_id(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=b"x",
        headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "inference-42"},
    )
    assert response.headers["x-request-id"] == "inference-42"
    assert response.json()["request_id"] == "inference-42"


def test_unknown_headers_are_ignored(client: httpx.Client) -> None:
    response = client.post(
        "/invocations",
        content=CSV_BODY,
        headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "m.tar.gz", "X-Whatever": "1"},
    )
    assert response.status_code == 200
    assert labels_of(response) == SAMPLE_LABELS
