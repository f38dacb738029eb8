"""Baseline "naive FastAPI": what most people write first.

The model is loaded at import time in every worker (uvicorn ``--workers`` spawns fresh interpreters, so each
worker imports everything and holds its own copy); ``/invocations`` reads the raw body, parses it with
``numpy.loadtxt`` and calls ``predict`` inline on the event loop.

Run: ``MODEL_DIR=... uvicorn naive_fastapi:app --workers 2 --host 127.0.0.1 --port PORT``
"""

from __future__ import annotations

import io
import os

import joblib
import numpy as np
from fastapi import FastAPI, Request, Response

model = joblib.load(os.path.join(os.environ.get("MODEL_DIR", "/opt/ml/model"), "model.joblib"))
app = FastAPI()


@app.get("/ping")
def ping() -> Response:
    return Response(status_code=200)


@app.post("/invocations")
async def invocations(request: Request) -> Response:
    text = (await request.body()).decode("utf-8")
    rows = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    labels = model.predict(rows)
    return Response("".join(f"{int(label)}\n" for label in labels), media_type="text/csv")
