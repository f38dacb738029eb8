"""``serve``: start the model server (SageMaker runs the image as ``docker run IMAGE serve``).

Command-line options override the environment (see `config.Settings`), which makes the server easy to start
by hand: ``serve --host 127.0.0.1 --port 8080 --model-dir ./model --workers 2``.
"""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError, Settings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="serve",
        description="Serve a model over Amazon SageMaker's hosting contract (GET /ping, POST /invocations).",
    )
    parser.add_argument(
        "command", nargs="?", choices=["serve"], help="optional; SageMaker starts containers with `serve`"
    )
    parser.add_argument("--host", help="address to listen on (env SERVE_HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (env SAGEMAKER_BIND_TO_PORT, default 8080)")
    parser.add_argument("--model-dir", help="model directory (env SM_MODEL_DIR, default /opt/ml/model)")
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes (env SAGEMAKER_MODEL_SERVER_WORKERS, default: CPU count)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(
            host=args.host, port=args.port, model_dir=args.model_dir, workers=args.workers
        )
    except ConfigError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from .supervisor import run  # noqa: PLC0415

    raise SystemExit(run(settings))


if __name__ == "__main__":
    main()
