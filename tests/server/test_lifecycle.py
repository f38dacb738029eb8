"""Process-level behaviour: start, readiness, workers, drain on SIGTERM, replacement, limits, logs.

Each test starts its own `serve` processes (they need signals, environment knobs or slow models).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sagemaker_serve.balance import MIN_INTERVAL_S

from .conftest import SAMPLE_LABELS, SAMPLE_ROWS, SERVE, ServeProcess, csv_of, free_port, model_dir_with_code

CSV_BODY = csv_of(SAMPLE_ROWS)

SLOW_LOAD = """
    import os, time, joblib

    def model_fn(model_dir):
        with open(os.path.join(os.environ["LOAD_LOG"]), "a") as fh:
            fh.write("load\\n")
        time.sleep(float(os.environ.get("LOAD_SECONDS", "3")))
        return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

SLOW_PREDICT = """
    import time

    def predict_fn(data, model):
        # Slow only when asked to, in short sleeps, like a long Python-level computation.
        if data[0][0] >= 90:
            end = time.monotonic() + data[0][0] - 90
            while time.monotonic() < end:
                time.sleep(0.01)
        return model.predict(data[:, :4] if data.shape[1] > 4 else data)
"""


def post_csv(url: str, body: str = CSV_BODY, timeout: float = 30.0, **headers: str) -> httpx.Response:
    return httpx.post(
        url + "/invocations", content=body, headers={"Content-Type": "text/csv", **headers}, timeout=timeout
    )


def request_lines(server: ServeProcess) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("logger") == "request"]


# ---------------------------------------------------------------------------- start and readiness
def test_ping_is_503_while_a_slow_model_loads_and_the_model_loads_once(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, SLOW_LOAD)
    load_log = tmp_path / "loads.txt"
    launched = time.monotonic()
    server = start_server(model_dir, ready=False, env={"LOAD_LOG": str(load_log), "LOAD_SECONDS": "3"})
    connected_after = None
    statuses = []
    while time.monotonic() - launched < 2.5:
        try:
            response = httpx.get(server.url + "/ping", timeout=1)
        except httpx.TransportError:
            time.sleep(0.01)
            continue
        connected_after = connected_after or time.monotonic() - launched
        statuses.append(response.status_code)
        assert response.json()["error"] == "loading"
        time.sleep(0.05)
    # SageMaker wants connections accepted within 250 ms; measured here 80-190 ms from launch (Python start
    # included). The bound leaves room for a loaded CI machine but fails a server that loads before listening.
    assert connected_after is not None
    assert connected_after < 1.0, connected_after
    assert set(statuses) == {503}
    assert post_csv(server.url, timeout=5).status_code == 503
    server.wait_ready(timeout=30)
    assert post_csv(server.url).text == "".join(f"{label}\n" for label in SAMPLE_LABELS)
    assert load_log.read_text() == "load\n"  # once, in the supervisor: not per worker, not per ping


def test_serve_argument_and_command_line_options(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    server = start_server(
        tmp_path / "missing",  # the environment's model dir and port are overridden by the options
        ready=False,
        args=["serve", "--port", str(port), "--model-dir", str(iris_model_dir), "--workers", "1"],
    )
    assert server.port != port
    server.url = f"http://127.0.0.1:{port}"
    server.wait_ready()
    assert post_csv(server.url).status_code == 200
    assert len(server.worker_pids()) == 1


def test_sagemaker_bind_to_port_and_worker_count_come_from_the_environment(
    start_server: Any, iris_model_dir: Path
) -> None:
    server = start_server(iris_model_dir, workers=1, env={"MODEL_SERVER_WORKERS": "3"})
    # SAGEMAKER_MODEL_SERVER_WORKERS (set to 1 by the fixture) wins over MODEL_SERVER_WORKERS.
    assert len(server.worker_pids()) == 1
    other = start_server(
        iris_model_dir, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "", "MODEL_SERVER_WORKERS": "3"}
    )
    assert len(other.worker_pids()) == 3
    assert post_csv(other.url).status_code == 200


def test_a_missing_model_fails_fast_with_a_clear_message(start_server: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    server = start_server(empty, ready=False)
    assert server.proc.wait(30) == 1
    assert "no model in" in server.log_text()
    assert "model.joblib" in server.log_text()


def test_invalid_configuration_is_reported_all_at_once(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(
        iris_model_dir,
        ready=False,
        env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "soon", "SERVE_BATCH_MAX_SIZE": "-1"},
    )
    assert server.proc.wait(30) == 2
    log = server.log_text()
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in log
    assert "SERVE_BATCH_MAX_SIZE" in log


def test_a_busy_port_is_refused_instead_of_shared(start_server: Any, iris_model_dir: Path) -> None:
    first = start_server(iris_model_dir, workers=1)
    second = start_server(iris_model_dir, ready=False, port=first.port)
    assert second.proc.wait(30) == 1
    assert "cannot listen" in second.log_text()
    assert post_csv(first.url).status_code == 200


def test_sigterm_while_loading_exits_cleanly(start_server: Any, iris_model_dir: Path, tmp_path: Path) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, SLOW_LOAD)
    server = start_server(model_dir, ready=False, env={"LOAD_LOG": str(tmp_path / "l"), "LOAD_SECONDS": "20"})
    deadline = time.monotonic() + 10
    while not (tmp_path / "l").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert server.terminate(timeout=10) == 0
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------- workers
def test_the_model_is_shared_by_the_workers(start_server: Any, iris_model_dir: Path) -> None:
    """Forked after the load: a worker's private memory is a fraction of what the model process holds."""
    server = start_server(iris_model_dir, workers=2)
    for _ in range(20):
        post_csv(server.url)
    supervisor = psutil.Process(server.proc.pid).memory_full_info()
    for pid in server.worker_pids():
        worker = psutil.Process(pid).memory_full_info()
        assert worker.uss < 0.5 * supervisor.rss, (worker.uss, supervisor.rss)
        assert worker.pss < 0.75 * supervisor.rss, (worker.pss, supervisor.rss)


def test_keep_alive_connections_spread_across_workers(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(iris_model_dir, workers=2)
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(16)]

    def run(client: httpx.Client) -> None:
        for _ in range(10):
            assert (
                client.post(
                    "/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv"}
                ).status_code
                == 200
            )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(run, clients))
    for client in clients:
        client.close()
    per_worker = Counter(r["pid"] for r in request_lines(server) if r["path"] == "/invocations")
    assert sum(per_worker.values()) == 160
    assert set(per_worker) == set(server.worker_pids())
    assert max(per_worker.values()) <= 150, per_worker  # at most 15 of 16 connections on one worker


def test_keep_alive_connections_even_out_to_a_fair_share_per_worker(
    start_server: Any, iris_model_dir: Path
) -> None:
    """The kernel's hash may put 10 of 16 keep-alive connections on one worker; a worker over its share closes
    one after a response (`balance.py`) until each holds 8. Each response's request id names its worker."""
    server = start_server(iris_model_dir, workers=2)
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(16)]

    def last_worker(client: httpx.Client) -> tuple[int, bool]:
        response = client.post("/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv"})
        assert response.status_code == 200
        closing = response.headers.get("connection", "").lower() == "close"
        return int(response.headers["x-request-id"].split("-")[0], 16), closing

    closes = 0
    last_close = time.monotonic()
    deadline = last_close + 20
    with ThreadPoolExecutor(16) as pool:
        # Rounds of one request per connection, until rounds spanning several of the balancer's intervals
        # (it closes at most one connection per worker per MIN_INTERVAL_S) have kept every connection.
        while time.monotonic() < deadline:
            answers = list(pool.map(last_worker, clients))
            if any(closing for _, closing in answers):
                closes += sum(closing for _, closing in answers)
                last_close = time.monotonic()
            elif time.monotonic() - last_close > 5 * MIN_INTERVAL_S:
                break
    for client in clients:
        client.close()
    split = Counter(pid for pid, _ in answers)
    assert sorted(split.values()) == [8, 8], (split, f"{closes} forced reconnects")
    assert set(split) == set(server.worker_pids())


def test_sequential_requests_on_one_connection_do_not_wait_for_delayed_acks(
    start_server: Any, iris_model_dir: Path
) -> None:
    """A response leaves in two writes (head, body). Without TCP_NODELAY on the connection, Nagle holds the
    second until the client's delayed ACK: ~40 ms per request on Linux, whatever the model costs."""
    server = start_server(iris_model_dir, workers=1)
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def post() -> httpx.Response:
            return client.post("/invocations", content=CSV_BODY, headers={"Content-Type": "text/csv"})

        assert post().status_code == 200  # connect, and the first (measured) predict
        started = time.perf_counter()
        for _ in range(20):
            assert post().status_code == 200
        elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"20 requests took {elapsed:.2f} s: each waited for a delayed ACK"


def test_a_killed_worker_is_replaced(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(iris_model_dir, workers=2)
    before = server.worker_pids()
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = server.worker_pids()
        if len(after) == 2 and before[0] not in after:
            break
        time.sleep(0.05)
    assert len(after) == 2
    assert before[0] not in after
    assert before[1] in after
    for _ in range(20):  # new connections land on both sockets, including the replaced worker's
        assert post_csv(server.url).status_code == 200
    assert "starting a replacement" in server.log_text()
    (replacement,) = set(after) - {before[1]}
    assert replacement in {r["pid"] for r in request_lines(server)}


def test_sigterm_drains_in_flight_requests(start_server: Any, iris_model_dir: Path, tmp_path: Path) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, SLOW_PREDICT)
    server = start_server(model_dir, workers=2)
    slow = "91.5,3.5,1.4,0.2\n"  # 1.5 s of predict each
    results: list[int] = []

    def call() -> None:
        results.append(post_csv(server.url, slow, timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all six are in flight (three per worker, queued on each model thread)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    code = server.proc.wait(30)
    took = time.monotonic() - started
    assert results == [200] * 6, results
    assert code == 0
    assert took < 25, took
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/ping", timeout=2)


# ---------------------------------------------------------------------------- timeouts
def test_a_request_over_the_timeout_fails_alone_and_the_worker_lives_on(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, SLOW_PREDICT)
    server = start_server(model_dir, workers=1, env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})
    worker = server.worker_pids()
    pings: list[float] = []
    result: dict[str, Any] = {}

    def slow_call() -> None:
        started = time.monotonic()
        result["response"] = post_csv(server.url, "120,3.5,1.4,0.2\n")  # would run for 30 s
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.3)
    for _ in range(3):  # the event loop stays free while the model thread is busy
        started = time.monotonic()
        assert httpx.get(server.url + "/ping", timeout=2).status_code == 200
        pings.append(time.monotonic() - started)
    thread.join(30)
    response = result["response"]
    assert response.status_code == 504
    assert "did not answer within 1 s" in response.json()["message"]
    assert result["took"] < 3
    assert max(pings) < 0.5
    started = time.monotonic()
    assert post_csv(server.url).status_code == 200  # the runaway predict was interrupted
    assert time.monotonic() - started < 2
    assert server.worker_pids() == worker


def test_model_server_timeout_is_the_fallback_name(
    start_server: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_dir_with_code(tmp_path, iris_model_dir, SLOW_PREDICT)
    server = start_server(model_dir, workers=1, env={"MODEL_SERVER_TIMEOUT": "1"})
    assert post_csv(server.url, "93,3.5,1.4,0.2\n").status_code == 504


# ---------------------------------------------------------------------------- body limit
HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with a Content-Length from a raw socket: (status, body)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def test_body_limit_is_configurable_and_enforced_while_reading(
    start_server: Any, iris_model_dir: Path
) -> None:
    limit = 1_000_000
    server = start_server(iris_model_dir, workers=1, env={"SERVE_MAX_REQUEST_BYTES": str(limit)})
    (worker,) = server.worker_pids()
    rss_before = _rss(worker)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"5.1,3.5,1.4,0.2\n" * 4096  # 64 KiB
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        while sent <= limit:
            sock.sendall(frame)
            sent += len(chunk)
        status, body = read_response(sock)
        assert status == 413
        assert json.loads(body)["error"] == "payload_too_large"
        # Keep streaming 40 MB more: the server must discard it, not buffer it.
        for _ in range(640):
            sock.sendall(frame)
    assert _rss(worker) - rss_before < 20 * 1024 * 1024
    assert post_csv(server.url).status_code == 200
    under = "5.1,3.5,1.4,0.2\n" * (limit // 16 - 1)
    assert post_csv(server.url, under).status_code == 200


def test_declared_oversized_body_is_refused_before_it_is_sent(
    start_server: Any, iris_model_dir: Path
) -> None:
    server = start_server(iris_model_dir, workers=1, env={"SERVE_MAX_REQUEST_BYTES": "1000"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HEAD + b"Content-Length: 50000000\r\n\r\n")
        status, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"


# ---------------------------------------------------------------------------- logs and defaults
def test_one_json_log_line_per_request(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(iris_model_dir, workers=2)
    post_csv(server.url, **{"X-Amzn-SageMaker-Inference-Id": "abc-1"})
    post_csv(server.url, "oops\n")
    httpx.get(server.url + "/ping")
    time.sleep(0.2)
    lines = request_lines(server)
    invocations = [r for r in lines if r["path"] == "/invocations"]
    assert [r["status"] for r in invocations] == [200, 400]
    assert invocations[0]["request_id"] == "abc-1"
    assert invocations[1]["request_id"]  # generated when the caller sends none
    for record in invocations:
        assert record["latency_ms"] > 0
        assert record["method"] == "POST"
    assert [r["status"] for r in lines if r["path"] == "/ping"][-1] == 200
    for line in server.log_text().splitlines():
        json.loads(line)  # every line the server writes is JSON


def test_log_level_comes_from_sagemaker_container_log_level(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(iris_model_dir, workers=1, env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING"})
    post_csv(server.url)
    post_csv(server.url, "oops\n")
    time.sleep(0.2)
    assert request_lines(server) == []
    assert all(r["level"] in {"WARNING", "ERROR", "CRITICAL"} for r in server.log_records())


def test_default_accept_comes_from_the_environment(start_server: Any, iris_model_dir: Path) -> None:
    server = start_server(
        iris_model_dir, workers=1, env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}
    )
    response = post_csv(server.url)
    assert response.headers["content-type"] == "application/json"
    assert response.json() == SAMPLE_LABELS
    assert post_csv(server.url, Accept="*/*").headers["content-type"] == "application/json"
    assert post_csv(server.url, Accept="text/csv").headers["content-type"] == "text/csv"


def test_without_a_default_accept_the_answer_matches_the_request_type(
    start_server: Any, iris_model_dir: Path
) -> None:
    server = start_server(iris_model_dir, workers=1)
    assert post_csv(server.url).headers["content-type"] == "text/csv"
    response = httpx.post(server.url + "/invocations", json=SAMPLE_ROWS)
    assert response.headers["content-type"] == "application/json"


def test_host_run_with_sm_model_dir_stops_cleanly_on_sigterm(iris_model_dir: Path, tmp_path: Path) -> None:
    """What `make demo` does: `serve` on the host with SM_MODEL_DIR and SAGEMAKER_BIND_TO_PORT, SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SERVE_", "SM_"))}
    env.update(SM_MODEL_DIR=str(iris_model_dir), SAGEMAKER_BIND_TO_PORT=str(port))
    proc = subprocess.Popen([SERVE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        assert post_csv(f"http://127.0.0.1:{port}").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        children = [p for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == proc.pid]
        assert children == []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
