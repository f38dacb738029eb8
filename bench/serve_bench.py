"""`make bench`: our inference server against two baselines, side by side, in one run.

Servers (same model, same payloads, same worker count, all on 127.0.0.1):
- ours          `serve` (sagemaker_serve), per-request mode, as shipped (the forest fast path on);
- ours-plain    the same with SERVE_FOREST_FAST_PATH=false: scikit-learn's own `predict`, as the baselines
                call it, so the table shows what the serving alone gains and what the fast path adds;
- ours-batch    `serve` with micro-batching on (SERVE_BATCH_MAX_SIZE / SERVE_BATCH_MAX_WAIT_MS);
- naive         FastAPI + uvicorn --workers N (bench/baselines/naive_fastapi.py);
- classic       nginx -> gunicorn (gevent) -> Flask + pandas (bench/baselines/classic_*.py); nginx is Debian's
                package unpacked into the scratch dir (no service is installed); without it, gunicorn alone.

Model: examples/iris/train.py (RandomForestClassifier, 10 trees). Payloads: 1 and 100 iris rows as text/csv
(the default load scenarios use the 1-row payload, as the targets do; add e.g. `--scenarios 100rows@16`).

For each server: cold start (launch -> first correct prediction; the median of --cold-starts launches), then
one long-lived launch that must answer the 1-row and 100-row payloads correctly before it is loaded with wrk.
Scenarios run round-robin across the servers (each scenario hits every server before the next scenario), so
a burst of noise from other work on the machine spreads over all of them instead of one. Per run: req/s,
p50/p99, errors, CPU of the server's processes (busiest first: shows whether the load spread over the
workers) and the peak PSS of the server's whole process tree (every process in its session).

The targets are ratios measured inside this one run (absolute numbers on a shared 2-core machine are noise).
Scratch (model, logs, wrk scripts, results JSON/markdown): $SERVE_BENCH_DIR or /tmp/serve-bench.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "bench" / "baselines"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
LIVE_SESSIONS: set[int] = set()


def say(msg: str) -> None:
    print(f"[serve_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- processes
def session_pids(sid: int) -> list[int]:
    """Live processes of session `sid` (zombies excluded: an exited leader stays one until we reap it)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if os.getsid(int(name)) == sid:
                    with open(f"/proc/{name}/stat", "rb") as fh:
                        stat = fh.read()
                    if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z":
                        pids.append(int(name))
    return pids


def _cpu_ticks(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read().decode("utf-8", "replace")
    comm = data[data.index("(") + 1 : data.rindex(")")]
    fields = data[data.rindex(")") + 2 :].split()
    return comm, int(fields[11]) + int(fields[12])


def session_cpu(sid: int) -> dict[int, tuple[str, int]]:
    out = {}
    for pid in session_pids(sid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[pid] = _cpu_ticks(pid)
    return out


def session_pss_mb(sid: int) -> float:
    total = 0
    for pid in session_pids(sid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024.0


class PssSampler(threading.Thread):
    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True)
        self.sid, self.peak = sid, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, session_pss_mb(self.sid))
            self._stop_event.wait(0.5)

    def stop(self) -> float:
        self._stop_event.set()
        self.join(5)
        return self.peak


def stop_session(sid: int, grace: float = 10.0) -> None:
    """SIGTERM the server's process group (as a container runtime would); SIGKILL what is left after
    `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(sid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if session_pids(sid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGKILL)
        time.sleep(0.3)
    LIVE_SESSIONS.discard(sid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def call(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(
            method, path, body=body, headers={"Content-Type": "text/csv"} if body is not None else {}
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------- servers
@dataclass
class Server:
    name: str
    desc: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = 0
    sid: int = 0
    proc: subprocess.Popen[bytes] | None = None
    cold_starts: list[float] = field(default_factory=list)
    idle_pss: float = 0.0
    peak_pss: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def launch(self, run_dir: Path) -> None:
        self.port = free_port()
        env = dict(os.environ, **self.env, PORT=str(self.port), RUN_DIR=str(run_dir / self.name))
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        (run_dir / self.name).mkdir(parents=True, exist_ok=True)
        cmd = [part.replace("{PORT}", str(self.port)) for part in self.cmd]
        log = (run_dir / self.name / "server.log").open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.sid = self.proc.pid
        LIVE_SESSIONS.add(self.sid)

    def stop(self) -> None:
        if self.sid:
            stop_session(self.sid)
            if self.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
            self.sid = 0


def servers(args: argparse.Namespace, model_dir: Path, nginx: str, classic_py: str = "") -> list[Server]:
    workers = str(args.workers)
    ours_cmd = [str(BIN / "serve"), "--host", HOST, "--port", "{PORT}", "--model-dir", str(model_dir)]
    ours_cmd += ["--workers", workers]
    quiet_threads = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    all_servers = {
        "classic": Server(
            "classic",
            ("nginx -> " if nginx else "") + f"gunicorn (gevent, {workers} workers) -> Flask + pandas"
            + ("" if nginx else " (nginx unavailable: gunicorn alone)"),
            [classic_py or sys.executable, str(BASELINES / "classic_serve.py")],
            {"MODEL_DIR": str(model_dir), "WORKERS": workers, "NGINX_BIN": nginx},
        ),
        "naive": Server(
            "naive",
            f"FastAPI + uvicorn --workers {workers}, numpy.loadtxt, predict inline",
            [sys.executable, "-m", "uvicorn", "naive_fastapi:app", "--host", HOST, "--port", "{PORT}",
             "--workers", workers, "--no-access-log", "--log-level", "warning"],
            {"MODEL_DIR": str(model_dir)},
            BASELINES,
        ),
        "ours": Server("ours", f"serve, {workers} workers, per-request (forest fast path on)", ours_cmd, {}),
        "ours-plain": Server(
            "ours-plain",
            f"serve, {workers} workers, per-request, SERVE_FOREST_FAST_PATH=false (scikit-learn's predict)",
            ours_cmd,
            {"SERVE_FOREST_FAST_PATH": "false"},
        ),
        "ours-batch": Server(
            "ours-batch",
            f"serve, {workers} workers, micro-batching (max {args.batch_size} rows, {args.batch_wait_ms} ms)",
            ours_cmd,
            {"SERVE_BATCH_MAX_SIZE": str(args.batch_size),
             "SERVE_BATCH_MAX_WAIT_MS": str(args.batch_wait_ms)},
        ),
    }  # fmt: skip
    for server in all_servers.values():
        # Same native thread pools everywhere (ours sets this itself; the baselines would not).
        server.env = {**quiet_threads, **server.env}
    return [all_servers[name] for name in args.servers.split(",")]


def classic_python(scratch: Path) -> str:
    """The classic stack's interpreter: a venv in the scratch dir with its requirements
    (bench/baselines/classic-requirements.txt; built on the first run, rebuilt when that file changes),
    which also sees this venv's packages."""
    requirements = BASELINES / "classic-requirements.txt"
    venv = scratch / "classic-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = requirements.read_text() + sys.executable
    # The venv sees this venv's packages through a .pth file, so pip skips what this venv has: if that
    # changes later (a package removed here), the classic venv breaks. Importing its stack proves it works.
    probe = [str(python), "-c", "import flask, gevent, gunicorn, pandas, sklearn"]
    if (
        python.exists()
        and stamp.exists()
        and stamp.read_text() == wanted
        and subprocess.run(probe, check=False, capture_output=True).returncode == 0
    ):
        return str(python)
    say(f"creating the classic stack's venv in {venv} (first run only)")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    ours = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(theirs, "project-venv.pth").write_text(ours + "\n")  # scikit-learn, joblib, numpy: the same as ours
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)],
        check=True, timeout=900,
    )  # fmt: skip
    subprocess.run(probe, check=True)  # fail here, loudly, rather than as a baseline that never starts
    stamp.write_text(wanted)
    return str(python)


def find_nginx(scratch: Path) -> str:
    """nginx from PATH, or Debian's package unpacked into the scratch dir (no service is installed)."""
    found = shutil.which("nginx")
    if found:
        return found
    root = scratch / "nginx-root"
    binary = root / "usr" / "sbin" / "nginx"
    if not binary.exists():
        debs = scratch / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        for deb in debs.glob("nginx_*.deb"):
            deb.unlink()
        say("fetching Debian's nginx package into the scratch dir (apt-get download; nothing is installed)")
        for attempt in range(2):
            got = subprocess.run(
                ["apt-get", "download", "nginx"], check=False, cwd=debs, capture_output=True, timeout=180
            )
            if got.returncode == 0 or attempt:
                break
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, timeout=300)
        packages = list(debs.glob("nginx_*.deb"))
        if not packages:
            return ""
        subprocess.run(["dpkg-deb", "-x", str(packages[0]), str(root)], check=False, capture_output=True)
    ok = (
        binary.exists()
        and subprocess.run([str(binary), "-v"], check=False, capture_output=True).returncode == 0
    )
    return str(binary) if ok else ""


# --------------------------------------------------------------------------------------------- payloads
def make_model(scratch: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    sys.path.insert(0, str(REPO))
    import pickle  # noqa: PLC0415

    import joblib  # noqa: PLC0415
    from sklearn.datasets import load_iris  # noqa: PLC0415

    from examples.iris.train import train  # noqa: PLC0415

    model_dir = scratch / "model"
    train(model_dir)
    model = joblib.load(model_dir / "model.joblib")
    with (model_dir / "model.pkl").open("wb") as fh:
        pickle.dump(model, fh)  # the classic stack loads a pickle, as the classic examples do
    features, _ = load_iris(return_X_y=True)
    picks = {"1row": features[:1], "100rows": features[[round(i * 149 / 99) for i in range(100)]]}
    payloads = {}
    for key, rows in picks.items():
        csv = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)
        payloads[key] = {"csv": csv, "rows": len(rows), "expected": [int(v) for v in model.predict(rows)]}
    return model_dir, payloads


def answer_ok(body: bytes, expected: list[int]) -> bool:
    try:
        got = [int(float(line)) for line in body.decode().split()]
    except ValueError:
        return False
    return got == expected


def compute_floor(model_dir: Path, payload: dict[str, Any], seconds: float = 1.5) -> dict[str, float]:
    """Mean µs of one in-process 1-row prediction (no HTTP), by scikit-learn's ``predict`` and by the server's
    forest fast path, interleaved: the ceilings for per-request serving."""
    import joblib  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from sagemaker_serve.forests import forest_predictor  # noqa: PLC0415

    model = joblib.load(model_dir / "model.joblib")
    rows = np.array([[float(v) for v in payload["csv"].split(",")]])
    found = {"predict_us": model.predict, "fast_predict_us": forest_predictor(model)}
    calls = {name: call for name, call in found.items() if call is not None}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(20):
            call(rows)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, call in calls.items():
            start = time.perf_counter()
            call(rows)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.fmean(values) * 1e6 for name, values in samples.items()}


# --------------------------------------------------------------------------------------------- measuring
def cold_start(server: Server, run_dir: Path, payload: dict[str, Any], timeout: float = 90.0) -> float | None:
    """Seconds from launch to the first correct prediction (polling every 10 ms)."""
    started = time.monotonic()
    server.launch(run_dir)
    try:
        while time.monotonic() - started < timeout:
            if server.proc is not None and server.proc.poll() is not None:
                return None
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, body = call(server.port, "POST", "/invocations", payload["csv"].encode(), timeout=5)
                if status == 200 and answer_ok(body, payload["expected"]):
                    return time.monotonic() - started
            time.sleep(0.01)
        return None
    finally:
        server.stop()


LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/csv"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, summary.bytes))
end
"""


def wrk(port: int, lua: Path, conns: int, seconds: float) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(lua)]
    cmd.append(f"http://{HOST}:{port}/invocations")
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=seconds + 30).stdout
    except subprocess.TimeoutExpired:
        return {"error": "wrk hard timeout"}
    match = re.search(r"WRK_RESULT ([\d. ]+)", out)
    if not match:
        return {"error": out[-300:]}
    req, dur_us, io_err, status_err, p50, p99, mean, mx, _ = (float(x) for x in match.group(1).split())
    return {
        "rps": req / (dur_us / 1e6),
        "requests": int(req),
        "errors": int(io_err + status_err),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "mean_ms": mean / 1000,
        "max_ms": mx / 1000,
    }


def measure(
    server: Server, lua: Path, payload_key: str, conns: int, args: argparse.Namespace
) -> dict[str, Any]:
    if args.warmup > 0:
        wrk(server.port, lua, conns, args.warmup)
        time.sleep(0.3)
    sampler = PssSampler(server.sid)
    cpu0 = session_cpu(server.sid)
    started = time.monotonic()
    sampler.start()
    result = wrk(server.port, lua, conns, args.duration)
    peak = sampler.stop()
    elapsed = time.monotonic() - started
    cpu1 = session_cpu(server.sid)
    split = sorted(
        (
            (100.0 * (ticks - cpu0.get(pid, (comm, 0))[1]) / CLK / elapsed, comm)
            for pid, (comm, ticks) in cpu1.items()
        ),
        reverse=True,
    )
    result.update(
        payload=payload_key,
        conns=conns,
        peak_pss_mb=peak,
        cpu_pct=sum(p for p, _ in split),
        cpu_split="/".join(f"{p:.0f}" for p, _ in split[:3] if p >= 1) or "0",
    )
    server.peak_pss = max(server.peak_pss, peak)
    return result


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several rounds: the round with the median req/s (its latencies and CPU split), errors
    summed, PSS the peak, and the CPU time per request over all rounds."""
    good = [r for r in results if "error" not in r]
    if not good:
        return results[-1]
    ordered = sorted(good, key=lambda r: r["rps"])
    row = dict(ordered[len(ordered) // 2])
    row["errors"] = sum(r["errors"] for r in good)
    row["peak_pss_mb"] = max(r["peak_pss_mb"] for r in good)
    row["rounds_rps"] = [round(r["rps"]) for r in good]
    row["cpu_us_per_req"] = statistics.median(r["cpu_pct"] * 1e4 / r["rps"] for r in good if r["rps"])
    return row


# --------------------------------------------------------------------------------------------- report
def cell(server: Server | None, payload: str, conns: int, key: str) -> float | None:
    if server is None:
        return None
    for run in server.runs:
        if run["payload"] == payload and run["conns"] == conns and key in run:
            return float(run[key])
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(by_name: dict[str, Server]) -> list[tuple[str, float | None, str, bool | None]]:
    ours, naive, classic, batch = (by_name.get(n) for n in ("ours", "naive", "classic", "ours-batch"))
    plain = by_name.get("ours-plain")
    rows: list[tuple[str, float | None, str, bool | None]] = []

    def add(label: str, value: float | None, op: str, goal: float) -> None:
        ok = None if value is None else (value >= goal if op == ">=" else value <= goal)
        rows.append((label, value, f"{op} {goal:g}x", ok))

    for conns in (16, 64):
        add(f"ours / naive req/s, 1 row, {conns} conns", ratio(cell(ours, "1row", conns, "rps"),
            cell(naive, "1row", conns, "rps")), ">=", 1.2)  # fmt: skip
        add(f"ours / classic req/s, 1 row, {conns} conns", ratio(cell(ours, "1row", conns, "rps"),
            cell(classic, "1row", conns, "rps")), ">=", 3.5)  # fmt: skip
    add("ours / naive p99, 1 row, 16 conns", ratio(cell(ours, "1row", 16, "p99_ms"),
        cell(naive, "1row", 16, "p99_ms")), "<=", 0.75)  # fmt: skip
    add("ours / classic peak PSS",
        ratio(ours.peak_pss if ours else None, classic.peak_pss if classic else None), "<=", 0.6)  # fmt: skip
    cold = {n: statistics.median(s.cold_starts) if s and s.cold_starts else None for n, s in by_name.items()}
    add("ours / naive cold start", ratio(cold.get("ours"), cold.get("naive")), "<=", 0.8)
    add("ours-batch / naive req/s, 1 row, 64 conns", ratio(cell(batch, "1row", 64, "rps"),
        cell(naive, "1row", 64, "rps")), ">=", 4.0)  # fmt: skip
    for conns in (16, 64):  # no goal: how much of the per-request gain is the serving alone
        for base_name, base in (("naive", naive), ("classic", classic)):
            value = ratio(cell(plain, "1row", conns, "rps"), cell(base, "1row", conns, "rps"))
            if value is not None:
                rows.append(
                    (f"ours-plain / {base_name} req/s, 1 row, {conns} conns", value, "(no goal)", None)
                )
    return rows


def report(all_servers: list[Server], meta: dict[str, Any]) -> tuple[str, list[Any]]:
    lines = [
        f"### serve_bench {meta['date']} ({meta['cpus']} cores; wrk -t1; per scenario {meta['rounds']} "
        f"rounds of {meta['duration']:g} s after {meta['warmup']:g} s warm-up, interleaved across servers, "
        f"median kept; {meta['workers']} workers per server)",
        "",
    ]
    lines += [f"- **{s.name}**: {s.desc}" for s in all_servers]
    lines += ["", "| server | payload | conns | req/s (median; rounds) | p50 ms | p99 ms | errors "
              "| server CPU % (busiest procs) | server CPU µs/req | peak PSS MB |",
              "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]  # fmt: skip
    for s in all_servers:
        for r in s.runs:
            if "error" in r:
                lines.append(
                    f"| {s.name} | {r['payload']} | {r['conns']} | wrk error: {r['error'][:60]} ||||||"
                )
                continue
            rounds = "/".join(str(x) for x in r.get("rounds_rps", []))
            lines.append(
                f"| {s.name} | {r['payload']} | {r['conns']} | {r['rps']:.0f} ({rounds}) | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
                f"{r['cpu_pct']:.0f} ({r['cpu_split']}) | {r.get('cpu_us_per_req', 0):.0f} | "
                f"{r['peak_pss_mb']:.0f} |"
            )
    lines += ["", "| server | cold start to first correct prediction, s (median of launches) "
              "| idle PSS MB | notes |", "|---|---:|---:|---|"]  # fmt: skip
    for s in all_servers:
        cold = (
            f"{statistics.median(s.cold_starts):.2f} ({', '.join(f'{c:.2f}' for c in s.cold_starts)})"
            if s.cold_starts
            else "n/a"
        )
        lines.append(f"| {s.name} | {cold} | {s.idle_pss:.0f} | {'; '.join(s.notes)} |")
    floor, fast = meta.get("predict_us"), meta.get("fast_predict_us")
    if floor:
        lines += ["", f"In-process 1-row `predict`: {floor:.0f} µs, i.e. at most {2e6 / floor:.0f} req/s "
                  "on 2 cores with nothing else running (wrk shares those cores here)."]  # fmt: skip
    if fast:
        lines += [f"The same prediction by the forest fast path (`sagemaker_serve.forests`, identical "
                  f"results): {fast:.0f} µs, at most {2e6 / fast:.0f} req/s."]  # fmt: skip
    checks = targets({s.name: s for s in all_servers})
    lines += ["", "| target (ratio inside this run) | measured | goal | result |", "|---|---:|---:|---|"]
    for label, value, goal, ok in checks:
        shown = "n/a" if value is None else f"{value:.2f}x"
        result = ("n/a" if value is None else "info") if ok is None else "PASS" if ok else "FAIL"
        lines.append(f"| {label} | {shown} | {goal} | {result} |")
    return "\n".join(lines) + "\n", checks


# --------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measured wrk round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per scenario and server (median kept)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of wrk warm-up before each round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cold-starts", type=int, default=5, help="launches per server for the cold start")
    parser.add_argument("--servers", default="classic,naive,ours,ours-plain,ours-batch")
    parser.add_argument(
        "--scenarios",
        default="1row@16,1row@64",
        help="payload@conns list for classic/naive/ours/ours-plain; ours-batch runs --batch-scenarios",
    )
    parser.add_argument("--batch-scenarios", default="1row@16,1row@64")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--markdown-out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        say("wrk is not installed (apt-get install wrk)")
        return 2
    scratch = Path(os.environ.get("SERVE_BENCH_DIR", "/tmp/serve-bench"))
    run_dir = scratch / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)

    def on_signal(signum: int, frame: object) -> None:
        for sid in list(LIVE_SESSIONS):
            stop_session(sid, grace=3)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    say("training the model")
    model_dir, payloads = make_model(scratch)
    nginx = find_nginx(scratch) if "classic" in args.servers else ""
    if "classic" in args.servers and not nginx:
        say("nginx unavailable: the classic stack runs gunicorn alone")
    classic_py = classic_python(scratch) if "classic" in args.servers else ""
    all_servers = servers(args, model_dir, nginx, classic_py)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "workers": args.workers,
        **compute_floor(model_dir, payloads["1row"]),
    }
    try:
        for _ in range(args.cold_starts):  # round-robin, like the load rounds
            for server in all_servers:
                took = cold_start(server, run_dir, payloads["1row"])
                if took is None:
                    server.notes.append("a cold start failed (see its server.log)")
                else:
                    server.cold_starts.append(took)
        for server in all_servers:
            say(f"{server.name}: cold start {', '.join(f'{c:.2f}' for c in server.cold_starts)} s")
        ready = []
        for server in all_servers:
            server.launch(run_dir)
            ok = False
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not ok:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    ok = all(
                        (res := call(server.port, "POST", "/invocations", p["csv"].encode()))[0] == 200
                        and answer_ok(res[1], p["expected"])
                        for p in payloads.values()
                    )
                time.sleep(0.05)
            if not ok:
                server.notes.append("never answered correctly; not measured")
                server.stop()
                continue
            time.sleep(1.0)
            server.idle_pss = session_pss_mb(server.sid)
            ready.append(server)
        luas = {}
        for key, payload in payloads.items():
            luas[key] = run_dir / f"{key}.lua"
            luas[key].write_text(LUA.format(body=payload["csv"]))
        plan = [tuple(s.split("@")) for s in args.scenarios.split(",")]
        batch_plan = [tuple(s.split("@")) for s in args.batch_scenarios.split(",")]
        rounds: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for key, conns in dict.fromkeys(plan + batch_plan):
            # Short rounds, interleaved across servers, then the median of each: a burst of unrelated load
            # on the machine hits one round of every server instead of the whole run of one server.
            for round_no in range(args.rounds):
                for server in ready:
                    if (key, conns) not in (batch_plan if server.name == "ours-batch" else plan):
                        continue
                    result = measure(server, luas[key], key, int(conns), args)
                    rounds.setdefault((server.name, key, conns), []).append(result)
                    if "error" in result:
                        say(f"{server.name} {key} c={conns} round {round_no + 1}: {result['error']}")
                    else:
                        say(
                            f"{server.name} {key} c={conns} round {round_no + 1}: {result['rps']:.0f} req/s "
                            f"p50={result['p50_ms']:.2f} p99={result['p99_ms']:.2f} ms "
                            f"err={result['errors']} cpu={result['cpu_pct']:.0f}% ({result['cpu_split']}) "
                            f"pss={result['peak_pss_mb']:.0f} MB"
                        )
                    if server.proc is not None and server.proc.poll() is not None:
                        server.notes.append(f"exited during the load (rc={server.proc.returncode})")
        for server in ready:
            for (name, _key, _conns), results_ in rounds.items():
                if name == server.name:
                    server.runs.append(median_run(results_))
    finally:
        for server in all_servers:
            server.stop()
    markdown, checks = report(all_servers, meta)
    results = scratch / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"serve-bench-{stamp}.md").write_text(markdown)
    (results / f"serve-bench-{stamp}.json").write_text(
        json.dumps({"meta": meta, "servers": [
            {"name": s.name, "desc": s.desc, "cold_starts": s.cold_starts, "idle_pss_mb": s.idle_pss,
             "peak_pss_mb": s.peak_pss, "runs": s.runs, "notes": s.notes} for s in all_servers]}, indent=1)
    )  # fmt: skip
    if args.markdown_out:
        args.markdown_out.write_text(markdown)
    print(markdown)
    say(f"results: {results}/serve-bench-{stamp}.md")
    return 1 if args.strict and any(ok is False for *_, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
