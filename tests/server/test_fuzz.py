"""Fuzzing a real server: thousands of malformed requests, never a 5xx, and the server still serves after.

Hypothesis generates malformed bodies for every content type (random bytes, near-valid CSV with corrupted
fields, JSON of every shape, .npy files of odd dtypes/shapes and damaged headers) and malformed headers;
schemathesis adds negative cases generated from the server's own OpenAPI schema. Every request is counted.
Runs against --server-url when given, like the contract tests.
"""

from __future__ import annotations

import io
import json
import string
from collections import Counter
from typing import Any

import httpx
import numpy as np
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.extra import numpy as hnp
from schemathesis.generation import GenerationMode

from .conftest import SAMPLE_LABELS, SAMPLE_ROWS, csv_of

FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=False)
CONTENT_TYPES = [
    "text/csv",
    "text/csv; charset=utf-8",
    "text/csv; charset=latin-1",
    "text/csv; charset=utf-16",
    "application/json",
    "application/json; charset=utf-8",
    "application/x-npy",
    "application/octet-stream",
    "text/plain",
    "",
    "text/csv; charset=",
    "text/csv; charset=nope",
    "text/csv;;;",
    "/",
    "text/",
    "*/*",
]
ACCEPTS = [
    None,
    "*/*",
    "text/csv",
    "application/json;q=0.5, text/csv;q=0.9",
    "application/x-npy",
    "text/*;q=0",
    "image/png",
    "text/csv;q=abc",
    "text/csv;q=2",
    ";;;",
    "application/json, , ,",
    "nonsense",
]
header_text = st.text(alphabet=string.ascii_letters + string.digits + " /;=,.*-+\"'", max_size=60).map(
    str.strip
)
corruptions = st.sampled_from(
    ["", "abc", "1e999", "--1", '"1"', "\t", "0x10", "1,2", "∞", "\x00", "1.2.3", "None"]
)


@st.composite
def broken_csv(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(0, 6))
    rows = draw(
        st.lists(
            st.lists(
                st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=width, max_size=width
            ),
            max_size=6,
        )
    )
    lines = [",".join(repr(v) for v in row) for row in rows] or [""]
    line = draw(st.integers(0, len(lines) - 1))
    fields = lines[line].split(",")
    fields.insert(draw(st.integers(0, len(fields))), draw(corruptions))
    lines[line] = ",".join(fields)
    sep = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    return sep.join(lines).encode("utf-8", "surrogatepass")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.sampled_from(["instances", "inputs", "data", "rows", ""]), inner, max_size=3)
    ),
    max_leaves=40,
)


@st.composite
def broken_json(draw: st.DrawFn) -> bytes:
    text = json.dumps(draw(json_values))
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    return text.encode()


npy_arrays = hnp.arrays(
    dtype=st.sampled_from(
        [np.float64, np.float32, np.int64, np.bool_, np.complex64, np.dtype("<U3"), np.uint8]
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)


@st.composite
def broken_npy(draw: st.DrawFn) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, draw(npy_arrays))
    data = bytearray(buffer.getvalue())
    mode = draw(st.sampled_from(["as-is", "truncate", "flip", "header"]))
    if mode == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif mode == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        data[index] = draw(st.integers(0, 255))
    elif mode == "header":
        header = draw(st.text(alphabet=string.printable, max_size=80)).encode()
        data = bytearray(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header) + data[10:]
    return bytes(data)


class Tally:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()

    def check(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/json"), response.headers
            assert response.json()["status"] == response.status_code

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def rejected(self) -> int:
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500)


def test_thousands_of_malformed_requests_never_get_a_5xx(client: httpx.Client) -> None:
    tally = Tally()

    def send(body: bytes, content_type: str, accept: str | None) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        if accept is not None:
            headers["Accept"] = accept
        tally.check(client.post("/invocations", content=body, headers=headers))

    @settings(FUZZ, max_examples=700)
    @given(st.binary(max_size=3000), st.sampled_from(CONTENT_TYPES), st.sampled_from(ACCEPTS))
    def random_bytes(body: bytes, content_type: str, accept: str | None) -> None:
        send(body, content_type, accept)

    @settings(FUZZ, max_examples=600)
    @given(broken_csv(), st.sampled_from(["text/csv", "text/csv; charset=utf-8"]), st.sampled_from(ACCEPTS))
    def csv_bodies(body: bytes, content_type: str, accept: str | None) -> None:
        send(body, content_type, accept)

    @settings(FUZZ, max_examples=600)
    @given(broken_json(), st.sampled_from(ACCEPTS))
    def json_bodies(body: bytes, accept: str | None) -> None:
        send(body, "application/json", accept)

    @settings(FUZZ, max_examples=400)
    @given(broken_npy(), st.sampled_from(ACCEPTS))
    def npy_bodies(body: bytes, accept: str | None) -> None:
        send(body, "application/x-npy", accept)

    @settings(FUZZ, max_examples=300)
    @given(header_text, header_text)
    def headers(content_type: str, accept: str) -> None:
        send(csv_of(SAMPLE_ROWS).encode(), content_type, accept)

    for run in (random_bytes, csv_bodies, json_bodies, npy_bodies, headers):
        run()
    assert tally.sent >= 2500, tally.statuses
    assert tally.rejected >= 2000, tally.statuses
    # Still serving, and still right.
    assert client.get("/ping").status_code == 200
    response = client.post(
        "/invocations",
        content=csv_of(SAMPLE_ROWS),
        headers={"Content-Type": "text/csv", "Accept": "application/json"},
    )
    assert response.json() == SAMPLE_LABELS


def test_schema_driven_negative_cases_never_get_a_5xx(server_url: str, client: httpx.Client) -> None:
    schema = schemathesis.openapi.from_url(server_url + "/openapi.json")
    tally = Tally()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/invocations", "/ping", "/execution-parameters"}
    for operation in operations:
        for mode in (GenerationMode.NEGATIVE, GenerationMode.POSITIVE):

            @settings(FUZZ, max_examples=150)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                headers = {k: str(v) for k, v in (case.headers or {}).items()}
                if case.media_type and not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = case.media_type
                response = client.request(
                    case.method, case.formatted_path, headers=headers, content=_body_bytes(case)
                )
                tally.check(response)

            try:
                run()
            except Unsatisfiable:
                # Nothing to negate: GET /ping and /execution-parameters take no parameters and no body.
                assert mode is GenerationMode.NEGATIVE
                assert operation.path != "/invocations"
    assert tally.sent >= 200, tally.statuses
    assert client.get("/ping").status_code == 200


def _body_bytes(case: Any) -> bytes | None:
    body = case.body
    if body is None or type(body).__name__ == "NotSet":
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body).encode()
