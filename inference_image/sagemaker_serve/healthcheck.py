"""Container HEALTHCHECK: exit 0 when ``GET /ping`` answers 200 (the slim base image has no curl).

Reads the port like the server does (``SAGEMAKER_BIND_TO_PORT``, default 8080); standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

__all__ = ["main"]


def main() -> int:
    port = os.environ.get("SAGEMAKER_BIND_TO_PORT", "").strip() or "8080"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
