"""Answers 503 on the listening sockets while the supervisor loads the model.

SageMaker expects the container to accept connections within 250 ms of start and ``/ping`` to say "not ready"
(anything but 200) until the model is loaded, however long that takes. Workers only exist after the load, so
until then this small thread accepts each connection, reads the request head and answers
``503 {"error": "loading", ...}`` with ``Connection: close``. It stops before the workers are forked:
connections that arrive in between wait in the listen backlog and are served by the workers.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import threading

__all__ = ["LoadingResponder"]

log = logging.getLogger("sagemaker_serve.responder")

_BODY = json.dumps(
    {"error": "loading", "status": 503, "message": "the model is loading; retry when GET /ping answers 200"}
).encode()
_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class LoadingResponder:
    def __init__(self, sockets: list[socket.socket]) -> None:
        self._sockets = sockets
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="loading-responder", daemon=True)
        self.answered = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and wait for the thread, so that no thread is left when the workers are forked."""
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._sockets:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj == self._wake_r:
                        return
                    assert isinstance(key.fileobj, socket.socket)
                    try:
                        conn, _addr = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        log.debug("accept failed while loading", exc_info=True)
                        continue
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(0.5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            conn.sendall(_RESPONSE)
            conn.shutdown(socket.SHUT_WR)
            self.answered += 1
        except OSError:
            pass
        finally:
            conn.close()
