"""In-process unit tests of the pure pieces: settings, media types and negotiation, codecs."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sagemaker_serve.codecs import decode, encode
from sagemaker_serve.config import DEFAULT_MAX_BODY_BYTES, ConfigError, Settings
from sagemaker_serve.content_types import negotiate, parse_accept, parse_media_type, preferred
from sagemaker_serve.errors import BadRequest, NotAcceptable, PredictTimeout, UnsupportedMediaType
from sagemaker_serve.runner import INLINE_MAX_S, ModelThread, call_cost

OFFERS = ("application/json", "text/csv", "application/x-npy")


# ---------------------------------------------------------------------------- settings
def test_settings_defaults_follow_the_sagemaker_contract() -> None:
    settings = Settings.from_env({})
    assert settings.port == 8080
    assert settings.model_dir == Path("/opt/ml/model")
    assert settings.timeout_s == 60
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 6_291_456
    assert settings.log_level == logging.INFO
    assert not settings.batching
    assert settings.workers >= 1
    assert settings.forest_fast_path


@pytest.mark.parametrize(
    ("raw", "on"), [("false", False), ("0", False), ("OFF", False), ("true", True), ("", True)]
)
def test_forest_fast_path_switch(raw: str, on: bool) -> None:
    assert Settings.from_env({"SERVE_FOREST_FAST_PATH": raw}).forest_fast_path is on


def test_sagemaker_names_win_over_the_classic_names() -> None:
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_WORKERS": "5", "MODEL_SERVER_TIMEOUT": "9"}
    settings = Settings.from_env(env)
    assert settings.workers == 3
    assert settings.timeout_s == 9


def test_command_line_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"SAGEMAKER_BIND_TO_PORT": "9000"}, port=9100, model_dir="/m", workers=None)
    assert settings.port == 9100
    assert settings.model_dir == Path("/m")


def test_batch_transform_raises_the_body_limit_and_timeout() -> None:
    settings = Settings.from_env({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"})
    assert settings.max_body_bytes == 100 * 1024 * 1024
    assert settings.timeout_s == 600
    assert settings.execution_parameters()["MaxPayloadInMB"] == 100


def test_every_bad_setting_is_reported_at_once() -> None:
    env = {
        "SAGEMAKER_BIND_TO_PORT": "http",
        "SERVE_BATCH_MAX_WAIT_MS": "-3",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "loud",
        "SERVE_FOREST_FAST_PATH": "maybe",
    }
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    problems = str(raised.value).splitlines()[1:]
    assert len(problems) == 4
    assert any("SERVE_FOREST_FAST_PATH='maybe' must be true or false" in p for p in problems)
    assert any("SAGEMAKER_BIND_TO_PORT='http' is not a whole number" in p for p in problems)
    assert any("SERVE_BATCH_MAX_WAIT_MS='-3' is below 0" in p for p in problems)
    assert any("SAGEMAKER_CONTAINER_LOG_LEVEL='loud'" in p for p in problems)


@pytest.mark.parametrize(("raw", "level"), [("20", 20), ("debug", 10), ("WARNING", 30), ("error", 40)])
def test_log_level_accepts_names_and_numbers(raw: str, level: int) -> None:
    assert Settings.from_env({"SAGEMAKER_CONTAINER_LOG_LEVEL": raw}).log_level == level


# ---------------------------------------------------------------------------- media types
def test_media_type_parameters_are_parsed() -> None:
    media = parse_media_type('Text/CSV; Charset="UTF-8"; header=absent')
    assert media.essence == "text/csv"
    assert media.param("charset") == "UTF-8"
    assert media.param("header") == "absent"


@pytest.mark.parametrize("value", ["csv", "text/", "/csv", "*/*", "text/csv; charset"])
def test_malformed_media_types_are_rejected(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_media_type(value)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
        ("text/csv;q=0.1, application/json;q=0.2", "application/json"),
        ("*/*;q=0.5, application/x-npy", "application/x-npy"),
        ("*/*, text/csv;q=0", "application/json"),
        ("application/*", "application/json"),
        ("application/json;q=0.5, application/x-npy;q=0.5", "application/json"),
        ("image/png, */*;q=0.1", "text/csv"),
    ],
)
def test_accept_negotiation_uses_q_values_and_specificity(accept: str | None, chosen: str) -> None:
    assert negotiate(accept, OFFERS, "text/csv") == chosen


@pytest.mark.parametrize("accept", ["image/png", "text/csv;q=0, application/json;q=0, application/x-npy;q=0"])
def test_nothing_acceptable_raises_406(accept: str) -> None:
    with pytest.raises(NotAcceptable, match="available: application/json, text/csv, application/x-npy"):
        negotiate(accept, OFFERS, "text/csv")


@pytest.mark.parametrize("accept", ["text/csv;q=x", "text/csv;q=1.5", "csv", "text/csv;q"])
def test_malformed_accept_is_400(accept: str) -> None:
    with pytest.raises(BadRequest):
        parse_accept(accept)


def test_user_output_code_gets_one_concrete_type() -> None:
    assert preferred("text/csv;q=0.3, application/json", "application/x-npy") == "application/json"
    assert preferred("*/*", "text/csv") == "text/csv"
    assert preferred(None, "text/csv") == "text/csv"


# ---------------------------------------------------------------------------- codecs
def test_csv_decodes_rows_and_ignores_trailing_blank_lines() -> None:
    arr = decode(b"1,2\r\n3,4.5\n\n", parse_media_type("text/csv"))
    assert arr.tolist() == [[1.0, 2.0], [3.0, 4.5]]


def test_csv_error_names_line_and_column() -> None:
    with pytest.raises(BadRequest, match=r"line 3, column 2: 'x' is not a number"):
        decode(b"1,2\n3,4\n5,x\n", parse_media_type("text/csv"))


def test_csv_in_latin_1() -> None:
    assert decode("1,2\n".encode("latin-1"), parse_media_type("text/csv; charset=latin-1")).tolist() == [
        [1, 2]
    ]


def test_undecodable_text_names_the_byte() -> None:
    with pytest.raises(BadRequest, match="byte 2"):
        decode(b"1,\xff\n", parse_media_type("text/csv"))


def test_unknown_content_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode(b"x", parse_media_type("application/xml"))


def test_npy_round_trip_keeps_dtype_and_shape() -> None:
    original = np.arange(12, dtype=np.float32).reshape(3, 4)
    buffer = io.BytesIO()
    np.save(buffer, original)
    decoded = decode(buffer.getvalue(), parse_media_type("application/x-npy"))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, original)
    np.testing.assert_array_equal(np.load(io.BytesIO(encode(decoded, "application/x-npy"))), original)


def test_npy_header_claiming_more_data_than_sent_is_400() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 2)))
    forged = buffer.getvalue().replace(b"(2, 2)", b"(9, 9)")
    with pytest.raises(BadRequest, match="needs 648"):
        decode(forged, parse_media_type("application/x-npy"))


def test_encoders_write_csv_json_and_npy() -> None:
    assert encode(np.array([0, 2]), "text/csv") == b"0\n2\n"
    assert encode(np.array([[0.5, 1.0], [2.0, 3.0]]), "text/csv") == b"0.5,1.0\n2.0,3.0\n"
    assert encode(np.array(["a,b", 'c"d']), "text/csv") == b'"a,b"\n"c""d"\n'
    assert encode(np.array([1, 2]), "application/json") == b"[1, 2]"
    assert encode({"p": np.float32(0.5)}, "application/json") == b'{"p": 0.5}'
    with pytest.raises(NotAcceptable):
        encode(np.zeros((2, 2, 2)), "text/csv")


# ---------------------------------------------------------------------------- model runner
def test_runner_goes_inline_only_after_fast_calls_on_an_idle_thread() -> None:
    async def scenario() -> None:
        runner = ModelThread(asyncio.get_running_loop(), 5.0, inline=True)
        assert not runner.can_inline()  # nothing measured yet: the first call takes the thread
        assert await runner.call(lambda: 41 + 1) == 42
        assert runner.can_inline()
        slow = asyncio.ensure_future(runner.call(time.sleep, 0.2))
        await asyncio.sleep(0.05)
        assert not runner.can_inline()  # the thread is busy: inline would run two model calls at once
        await slow
        assert not runner.can_inline()  # recent calls are slow now
        runner.close()

    asyncio.run(scenario())


def test_a_call_stretched_by_preemption_is_measured_by_its_cpu_time() -> None:
    assert call_cost(wall_s=0.015, cpu_s=0.0012) == 0.0012  # descheduled for ~14 ms: still a 1.2 ms call
    assert call_cost(wall_s=0.015, cpu_s=0.0012) < INLINE_MAX_S


def test_a_call_that_waits_is_measured_by_its_wall_time() -> None:
    assert call_cost(wall_s=0.2, cpu_s=0.001) == 0.2  # sleeping or waiting on I/O blocks the loop too


def test_a_call_that_computes_long_is_slow_either_way() -> None:
    assert call_cost(wall_s=0.03, cpu_s=0.029) > INLINE_MAX_S


def test_an_inline_call_over_the_timeout_is_interrupted() -> None:
    def spin() -> None:
        while True:
            pass

    async def scenario() -> None:
        runner = ModelThread(asyncio.get_running_loop(), 0.3, inline=True)
        started = time.monotonic()
        with pytest.raises(PredictTimeout, match=r"within 0\.3 s"):
            runner.run_inline(spin)
        assert time.monotonic() - started < 2
        assert runner.run_inline(lambda: "next") == "next"  # the alarm is cleared
        time.sleep(0.4)  # and does not fire later
        runner.close()

    asyncio.run(scenario())


def test_a_steady_stream_of_fast_calls_moves_from_the_thread_to_inline() -> None:
    async def scenario() -> list[str]:
        runner = ModelThread(asyncio.get_running_loop(), 5.0, inline=True)
        where: list[str] = []

        def fast() -> None:
            where.append(threading.current_thread().name)

        async def client() -> None:
            for _ in range(10):
                await runner.run(fast, inline=True)

        await asyncio.gather(*(client() for _ in range(8)))  # never idle: 8 callers back to back
        runner.close()
        return where

    where = asyncio.run(scenario())
    assert len(where) == 80
    assert where[0] == "model"  # nothing measured yet
    assert where[-40:] == ["MainThread"] * 40  # then inline, without waiting for a pause in the traffic
