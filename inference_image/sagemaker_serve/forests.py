"""scikit-learn forests predicted tree by tree in the calling thread: ``model.predict``'s arithmetic, bit for
bit, without joblib's per-tree dispatch.

Why: a forest's ``predict`` hands every tree to ``sklearn.utils.parallel.Parallel`` even when the trees run
one after another in the calling thread (``n_jobs`` resolving to 1, the default). Recent scikit-learn
re-enters the caller's configuration and rebuilds the caller's warning filters one by one around each tree
call, so for small requests the dispatch costs more than the trees: for the example forest (10 trees,
1 row) ``predict`` took 1.59 ms and the same trees summed directly 0.38 ms (in-process, scikit-learn 1.9.1;
1.5.2, which restored only the configuration, took 0.89 ms; upstream: scikit-learn#16143). In the calling
thread that work restores the configuration and filters already in force, so skipping it changes no result.

Kept from scikit-learn: the input validation (``_validate_X_predict``: float32 conversion, feature count, NaN
rules, feature-name warnings, the errors it raises), each tree's own ``predict_proba``/``predict``, the sum in
tree order (the order joblib's sequential backend runs them in), the division and the class lookup.

It applies only when all of these hold (otherwise the server calls ``model.predict``):

- the model's class is exactly ``RandomForestClassifier``, ``ExtraTreesClassifier``,
  ``RandomForestRegressor`` or ``ExtraTreesRegressor`` (a subclass may override how it predicts);
- it has one output, ``verbose=0``, and its ``n_jobs`` resolves to 1 when the model loads (a forest trained
  with ``n_jobs=-1`` keeps scikit-learn's threads);
- a self-check at load agrees exactly: both paths predict rows built from the forest's own split thresholds
  (each value just below, at and just above a threshold, so every branch is taken), as a batch and one row
  at a time, and compare class probabilities (classifiers) and predictions with ``np.array_equal``.

``SERVE_FOREST_FAST_PATH=false`` turns it off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["FOREST_CLASSES", "forest_predictor"]

log = logging.getLogger("sagemaker_serve.forests")

#: The forests this applies to (exact classes, in ``sklearn.ensemble``).
FOREST_CLASSES = (
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
)
_PROBE_ROWS = 256
Predict = Callable[[Any], Any]


def _eligible(model: Any) -> str | None:
    """Why `model` cannot take the fast path, or None if it can (before the self-check)."""
    cls = type(model)
    # Checked by name first so that a model from another framework never imports scikit-learn.
    if cls.__name__ not in FOREST_CLASSES or not cls.__module__.startswith("sklearn."):
        return "not a scikit-learn forest"
    import joblib  # noqa: PLC0415 - scikit-learn depends on it, and only forests get here
    import sklearn.ensemble  # noqa: PLC0415

    n_jobs = getattr(model, "n_jobs", None)
    reasons = {
        "not a scikit-learn forest": cls is not getattr(sklearn.ensemble, cls.__name__, None),
        "more than one output": getattr(model, "n_outputs_", None) != 1,
        "verbose is set": bool(getattr(model, "verbose", 0)),
        f"n_jobs={n_jobs} predicts with several threads": (
            min(joblib.effective_n_jobs(n_jobs), getattr(model, "n_estimators", 0)) != 1
        ),
        "this scikit-learn version's forest internals differ": (
            not callable(getattr(model, "_validate_X_predict", None))
            or not getattr(model, "estimators_", None)
        ),
    }
    return next((reason for reason, applies in reasons.items() if applies), None)


def _sum_trees(model: Any, is_classifier: bool) -> Predict:
    """The mean over the trees, accumulated as scikit-learn's forests do, in tree order."""
    validate = model._validate_X_predict  # the forest's own input validation
    trees = tuple(model.estimators_)
    if is_classifier:
        tree_calls = tuple(tree.predict_proba for tree in trees)
        width = int(model.n_classes_)
    else:
        tree_calls = tuple(tree.predict for tree in trees)

    def mean(X: Any) -> Any:
        X = validate(X)
        total = np.zeros((X.shape[0], width) if is_classifier else X.shape[0], dtype=np.float64)
        for call in tree_calls:
            total += call(X, check_input=False)
        total /= len(trees)
        return total

    return mean


def _probe(model: Any) -> np.ndarray:
    """Rows whose values sit just below, at and just above the forest's split thresholds, drawn by a
    seeded generator, so both paths are compared on every side of the splits the trees make."""
    width = int(model.n_features_in_)
    rng = np.random.default_rng(0)
    candidates: list[np.ndarray] = []
    for feature in range(width):
        thresholds = np.concatenate(
            [tree.tree_.threshold[tree.tree_.feature == feature] for tree in model.estimators_]
        )
        # A split that only separates missing values has an infinite threshold; rows must stay finite.
        thresholds = thresholds[np.isfinite(thresholds)].astype(np.float32)
        if thresholds.size == 0:
            thresholds = np.zeros(1, dtype=np.float32)
        around = np.concatenate(
            [np.nextafter(thresholds, -np.inf), thresholds, np.nextafter(thresholds, np.inf)]
        )
        around = around[np.isfinite(around)]  # next to float32's largest value lies infinity
        candidates.append(rng.choice(around, size=_PROBE_ROWS).astype(np.float64))
    return np.column_stack(candidates)


def forest_predictor(model: Any) -> Predict | None:
    """A function equal to ``model.predict`` for `model`, or None when the fast path does not apply (the
    reason is logged at DEBUG, or at WARNING when the self-check disagrees)."""
    name = type(model).__name__
    reason = _eligible(model)
    if reason is not None:
        log.debug("forest fast path off for %s: %s", name, reason)
        return None
    is_classifier = name.endswith("Classifier")
    mean = _sum_trees(model, is_classifier)
    predict = mean
    if is_classifier:
        classes = model.classes_

        def predict(X: Any) -> Any:
            return classes.take(np.argmax(mean(X), axis=1), axis=0)

    try:
        rows = _probe(model)
        agrees = np.array_equal(predict(rows), model.predict(rows)) and all(
            np.array_equal(predict(rows[i : i + 1]), model.predict(rows[i : i + 1])) for i in range(8)
        )
        if is_classifier:
            agrees = agrees and np.array_equal(mean(rows), model.predict_proba(rows))
    except Exception as exc:  # any failure means: keep scikit-learn's own predict
        log.warning("forest fast path off for %s: self-check failed: %s: %s", name, type(exc).__name__, exc)
        return None
    if not agrees:
        log.warning("forest fast path off for %s: self-check disagreed with model.predict", name)
        return None
    log.info("forest fast path on for %s (%d trees)", name, len(model.estimators_))
    return predict
