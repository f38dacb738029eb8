"""The README's main job: synthesize the example app, then serve what it synthesized.

1. `npx cdk synth` of `app.py` (the real CDK CLI, pinned in package.json) into `cdk.out/`.
2. Find the model archive the template deploys: the Model's `ModelDataUrl` names an S3 object key,
   and the stack's asset manifest maps that key back to the staged `model.tar.gz` in `cdk.out/`.
3. Extract it to a scratch directory and start the bundled inference server (`serve`) on the host,
   with the container environment the synthesized Model declares, `SM_MODEL_DIR` pointing at the
   extracted archive and a free port.
4. Send sample requests (CSV and JSON) and print the predictions next to the expected classes,
   then stop the server with SIGTERM, as SageMaker does.

Exits non-zero if any step fails or a prediction is wrong, so it doubles as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.iris.train import SAMPLES  # noqa: E402

STACK = "IrisEndpointStack"
CLASSES = ("setosa", "versicolor", "virginica")
READY_TIMEOUT_S = 60.0


def synthesize(outdir: Path) -> None:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    cmd = ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir)]
    print(f"$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def only(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [r for r in resources.values() if r["Type"] == kind]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind} in {STACK}, found {len(found)}")
    properties: dict[str, Any] = found[0]["Properties"]
    return properties


def object_key(model_data_url: Any) -> str:
    """The S3 key of the ModelDataUrl, which CDK writes as Fn::Sub 's3://bucket-${...}/KEY'."""
    url = model_data_url.get("Fn::Sub") if isinstance(model_data_url, dict) else model_data_url
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise SystemExit(f"the Model's ModelDataUrl is not an S3 URL: {model_data_url!r}")
    return url.split("/", 3)[3]


def model_archive(outdir: Path) -> tuple[Path, dict[str, str]]:
    """Return the staged model archive and the Model's container environment."""
    template = json.loads((outdir / f"{STACK}.template.json").read_text())
    model = only(template["Resources"], "AWS::SageMaker::Model")
    container = model.get("PrimaryContainer") or model["Containers"][0]
    key = object_key(container["ModelDataUrl"])
    manifest = json.loads((outdir / f"{STACK}.assets.json").read_text())
    for asset in manifest["files"].values():
        if any(dest["objectKey"] == key for dest in asset["destinations"].values()):
            return outdir / asset["source"]["path"], dict(container.get("Environment", {}))
    raise SystemExit(f"no file asset in {STACK}.assets.json uploads to {key}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if server.poll() is not None:
            raise SystemExit(f"serve exited with status {server.returncode} before it was ready")
        try:
            if request(f"{base}/ping")[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    raise SystemExit(f"serve did not answer /ping with 200 within {READY_TIMEOUT_S:.0f} s")


def predict(base: str) -> bool:
    rows = [features for features, _ in SAMPLES]
    expected = [label for _, label in SAMPLES]
    csv_body = "\n".join(",".join(str(v) for v in row) for row in rows).encode()
    status, body = request(
        f"{base}/invocations", csv_body, {"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"}
    )
    print(f"\nPOST /invocations  text/csv, {len(rows)} rows  -> {status}")
    got = [int(float(line)) for line in body.decode().split()] if status == 200 else []
    ok = got == expected
    # One printed line per row, also when the answer is an error or has the wrong number of rows.
    answers: list[int | None] = [*got] if len(got) == len(rows) else [None] * len(rows)
    for row, want, have in zip(rows, expected, answers, strict=True):
        name = CLASSES[have] if have is not None else body.decode()[:200]
        print(f"  {row} -> {name}{'' if have == want else f'   (expected {CLASSES[want]})'}")

    json_body = json.dumps({"instances": [list(rows[0])]}).encode()
    status, body = request(
        f"{base}/invocations", json_body, {"Content-Type": "application/json", "Accept": "application/json"}
    )
    print(f"\nPOST /invocations  application/json -> {status}  {body.decode()[:200]}")
    return ok and status == 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "cdk.out", help="cloud assembly directory (default: cdk.out)"
    )
    outdir = parser.parse_args(argv).output.resolve()
    synthesize(outdir)
    archive, environment = model_archive(outdir)
    shown = archive.relative_to(ROOT) if archive.is_relative_to(ROOT) else archive
    print(f"\nmodel archive: {shown} ({archive.stat().st_size} bytes)")
    print(f"container environment from the Model: {json.dumps(environment)}")
    serve = shutil.which("serve") or str(ROOT / ".venv" / "bin" / "serve")
    with tempfile.TemporaryDirectory(prefix="sagemaker-demo-") as scratch:
        model_dir = Path(scratch) / "model"
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
        port = free_port()
        env = {**os.environ, **environment, "SM_MODEL_DIR": str(model_dir)}
        env["SAGEMAKER_BIND_TO_PORT"] = str(port)
        print(f"$ SM_MODEL_DIR={model_dir} SAGEMAKER_BIND_TO_PORT={port} serve", flush=True)
        server = subprocess.Popen([serve], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            print(f"ready after {wait_ready(base, server):.2f} s")
            ok = predict(base)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                raise SystemExit("serve did not exit within 30 s of SIGTERM") from None
    print("\ndemo OK: every prediction matches" if ok else "\ndemo FAILED: see the predictions above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
