"""Launcher for the classic stack: nginx (reverse proxy) -> gunicorn (gevent workers) -> Flask.

Env: PORT, MODEL_DIR, WORKERS (2), RUN_DIR (scratch: nginx config, temp dirs, gunicorn's unix socket),
NGINX_BIN (empty: gunicorn listens on PORT itself, no proxy), MODEL_SERVER_TIMEOUT (60).
Like the classic container's ``serve`` script: start both, forward SIGTERM, stop both when either exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {run}/client_body;
  proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi;
  uwsgi_temp_path {run}/uwsgi;
  scgi_temp_path {run}/scgi;
  upstream gunicorn {{ server unix:{sock}; }}
  server {{
    listen 127.0.0.1:{port} deferred;
    client_max_body_size 5m;
    keepalive_timeout 5;
    proxy_read_timeout 1200s;
    location ~ ^/(ping|invocations)$ {{
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_pass http://gunicorn;
    }}
    location / {{ return 404 "{{}}"; }}
  }}
}}
"""


def main() -> None:
    port = int(os.environ["PORT"])
    run_dir = os.environ["RUN_DIR"]
    nginx = os.environ.get("NGINX_BIN", "")
    os.makedirs(run_dir, exist_ok=True)
    sock = os.path.join(run_dir, "gunicorn.sock")
    bind = f"unix:{sock}" if nginx else f"127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    children = [
        subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", os.environ.get("WORKERS", "2"),
                "-b", bind, "--timeout", os.environ.get("MODEL_SERVER_TIMEOUT", "60"),
                "--chdir", HERE, "classic_flask:app",
            ],
            env=env,
        )
    ]  # fmt: skip
    if nginx:
        conf = os.path.join(run_dir, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(run=run_dir, sock=sock, port=port))
        children.append(subprocess.Popen([nginx, "-p", run_dir, "-e", "stderr", "-c", conf]))

    def stop(signum: int = 0, frame: FrameType | None = None) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    os.wait()  # either child exiting takes the whole stack down
    stop()


if __name__ == "__main__":
    main()
