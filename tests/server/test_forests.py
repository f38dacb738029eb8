"""The scikit-learn forest fast path (`sagemaker_serve.forests`): the same answers as ``model.predict`` —
values, dtype, shape, and the same exception with the same message for input scikit-learn rejects — and it
stays off wherever it could differ. The last test serves the example model both ways through real server
processes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sagemaker_serve.forests import forest_predictor
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .conftest import csv_of

FORESTS = (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor)


def outcome(predict: Any, rows: np.ndarray) -> tuple[Any, ...]:
    try:
        result = predict(rows)
    except Exception as exc:  # the exception itself is what is compared
        return ("raised", type(exc), str(exc))
    return ("returned", result.dtype, result.shape, result.tolist())


@st.composite
def fitted_forests(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(FORESTS))
    n_features = draw(st.integers(1, 6))
    n_samples = draw(st.integers(6, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n_samples, n_features)) * draw(st.sampled_from([1e-3, 1.0, 1e4]))
    if kind is RandomForestClassifier and draw(st.booleans()):
        X[rng.random(X.shape) < 0.1] = np.nan  # forests learn where missing values go
    if kind in (RandomForestClassifier, ExtraTreesClassifier):
        codes = rng.integers(0, draw(st.integers(1, 4)), n_samples)
        names = np.array(["setosa", "b", "c", "d"])[codes]
        y: Any = draw(st.sampled_from([codes, codes.astype(np.float64) - 1.0, names]))
    else:
        y = rng.normal(size=n_samples)
    model = kind(
        n_estimators=draw(st.integers(1, 8)),
        max_depth=draw(st.sampled_from([None, 1, 3])),
        random_state=draw(st.integers(0, 100)),
    )
    return model.fit(X, y)


# Rows beyond float32 or with infinities: scikit-learn warns while it rejects them, in both paths.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=fitted_forests())
def test_the_fast_path_answers_exactly_as_model_predict(data: st.DataObject, model: Any) -> None:
    fast = forest_predictor(model)
    assert fast is not None, "every plain single-output forest takes the fast path"
    width = model.n_features_in_
    # Rows of any width (wrong widths must fail the same way), with values on split thresholds, extremes that
    # overflow float32 (rejected), NaN and infinities.
    thresholds = np.concatenate([t.tree_.threshold[t.tree_.feature >= 0] for t in model.estimators_])
    values = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.sampled_from(thresholds.tolist() or [0.0]),
    )
    rows = data.draw(
        hnp.arrays(
            np.float64,
            st.tuples(st.integers(1, 5), st.sampled_from([width, width, width + 1])),
            elements=values,
        )
    )
    assert outcome(fast, rows) == outcome(model.predict, rows)


def test_classifier_probabilities_and_labels_match_on_the_example_model() -> None:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    fast = forest_predictor(model)
    assert fast is not None
    for i in range(len(X)):
        assert outcome(fast, X[i : i + 1]) == outcome(model.predict, X[i : i + 1])
    assert outcome(fast, X) == outcome(model.predict, X)


class TweakedForest(RandomForestClassifier):
    """A subclass may change how it predicts, so it keeps its own predict."""


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: RandomForestClassifier(n_estimators=4, n_jobs=2), "n_jobs=2 predicts with several threads"),
        (lambda: RandomForestClassifier(n_estimators=4, verbose=1), "verbose is set"),
        (lambda: TweakedForest(n_estimators=4), "not a scikit-learn forest"),
        (lambda: make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4)), "not a scikit"),
    ],
)
def test_the_fast_path_stays_off_where_it_could_differ(
    make: Any, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = load_iris(return_X_y=True)
    caplog.set_level(logging.DEBUG, "sagemaker_serve.forests")
    assert forest_predictor(make().fit(X, y)) is None
    assert why in caplog.text


def test_multi_output_forests_keep_their_own_predict(caplog: pytest.LogCaptureFixture) -> None:
    X, y = load_iris(return_X_y=True)
    caplog.set_level(logging.DEBUG, "sagemaker_serve.forests")
    assert forest_predictor(RandomForestRegressor(n_estimators=3).fit(X, np.c_[y, -y])) is None
    assert "more than one output" in caplog.text


def test_a_model_whose_predict_was_replaced_keeps_it(caplog: pytest.LogCaptureFixture) -> None:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    model.predict = lambda rows: np.full(len(rows), 7)  # type: ignore[method-assign]
    assert forest_predictor(model) is None
    assert "self-check disagreed with model.predict" in caplog.text
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_a_self_check_that_raises_leaves_the_model_alone(caplog: pytest.LogCaptureFixture) -> None:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=4, random_state=0).fit(X, y)
    model.estimators_[0].predict_proba = None  # type: ignore[method-assign]
    assert forest_predictor(model) is None
    assert "self-check failed: TypeError" in caplog.text


def test_other_frameworks_models_do_not_import_scikit_learn() -> None:
    code = (
        "import sys\n"
        "from sagemaker_serve.forests import forest_predictor\n"
        "class RandomForestClassifier:\n"
        "    n_outputs_ = 1\n"
        "print(forest_predictor(RandomForestClassifier()), 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["None", "False"]


# ----------------------------------------------------------------------- through the server
def test_the_server_answers_the_same_with_the_fast_path_on_and_off(
    iris_model_dir: Path, start_server: Any
) -> None:
    X, _ = load_iris(return_X_y=True)
    expected = joblib.load(iris_model_dir / "model.joblib").predict(X).tolist()
    fast = start_server(iris_model_dir, workers=1)
    plain = start_server(iris_model_dir, workers=1, env={"SERVE_FOREST_FAST_PATH": "false"})
    answers = {}
    for name, server in (("fast", fast), ("plain", plain)):
        rows = [
            httpx.post(
                server.url + "/invocations",
                content=csv_of(X[i : i + 1]),
                headers={"Content-Type": "text/csv", "Accept": "application/json"},
            ).json()
            for i in range(len(X))
        ]
        csv = {"Content-Type": "text/csv"}
        batch = httpx.post(server.url + "/invocations", content=csv_of(X), headers=csv)
        nan = httpx.post(server.url + "/invocations", content="1,nan,3,4", headers=csv)
        inf = httpx.post(server.url + "/invocations", content="1,inf,3,4", headers=csv)
        answers[name] = (rows, batch.text, nan.text, inf.status_code, inf.json()["message"])
    assert answers["fast"] == answers["plain"]
    assert [r[0] for r in answers["fast"][0]] == expected
    assert answers["fast"][3] == 400  # the forest learned where NaN goes, but it rejects infinity
    assert "Input X contains infinity" in answers["fast"][4]
    assert "forest fast path on for RandomForestClassifier (10 trees)" in fast.log_text()
    assert "forest fast path" not in plain.log_text()
