"""Baseline "classic stack": the Flask predictor of the long-standing bring-your-own-container examples.

Served by gunicorn (gevent workers) behind nginx, see `classic_serve.py`. Each worker unpickles the model
lazily, on its first ``/ping`` or request, and keeps its own copy; CSV goes through pandas both ways.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import flask
import pandas as pd

MODEL_PATH = os.path.join(os.environ.get("MODEL_DIR", "/opt/ml/model"), "model.pkl")
_model: Any = None


def get_model() -> Any:
    global _model  # noqa: PLW0603 - one lazily loaded model per worker, as in the classic examples
    if _model is None:
        with open(MODEL_PATH, "rb") as fh:
            _model = pickle.load(fh)
    return _model


app = flask.Flask(__name__)


@app.get("/ping")
def ping() -> flask.Response:
    try:
        healthy = get_model() is not None
    except OSError:
        healthy = False
    return flask.Response("\n", status=200 if healthy else 404, mimetype="application/json")


@app.post("/invocations")
def invocations() -> flask.Response:
    if flask.request.content_type != "text/csv":
        return flask.Response("This predictor only supports CSV data", status=415, mimetype="text/plain")
    frame = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    predictions = get_model().predict(frame.to_numpy())
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(out.getvalue(), status=200, mimetype="text/csv")
