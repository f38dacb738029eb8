"""Train the example model: a random forest on the iris data that scikit-learn ships.

Deterministic: the data is bundled with scikit-learn (no download) and the estimator is seeded,
so the same library versions always give the same predictions and the same `model.joblib` bytes,
which keeps the model asset's hash stable from one synth to the next.

Usage: python examples/iris/train.py [MODEL_DIR]   (default: examples/iris/model)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = HERE / "model"
MODEL_FILE = "model.joblib"
FEATURES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
# A sample row of each class, for demos and smoke tests: (features, expected class index).
SAMPLES: tuple[tuple[tuple[float, float, float, float], int], ...] = (
    ((5.1, 3.5, 1.4, 0.2), 0),
    ((6.2, 2.9, 4.3, 1.3), 1),
    ((7.7, 3.0, 6.1, 2.3), 2),
)


def train(model_dir: Path = DEFAULT_MODEL_DIR) -> dict[str, Any]:
    """Fit the model and write `model_dir/model.joblib`; return a small summary."""
    # Imported here so that importing this module (e.g. for SAMPLES) needs no scikit-learn.
    import joblib  # noqa: PLC0415
    import sklearn  # noqa: PLC0415
    from sklearn.datasets import load_iris  # noqa: PLC0415
    from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415

    features, labels = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(features, labels)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename, so a concurrent synth never sees half a file.
    tmp = model_dir / f".{MODEL_FILE}.tmp"
    joblib.dump(model, tmp)
    tmp.replace(model_dir / MODEL_FILE)
    return {
        "model_dir": str(model_dir),
        "sklearn": sklearn.__version__,
        "train_accuracy": float((model.predict(features) == labels).mean()),
    }


def ensure_model(model_dir: Path = DEFAULT_MODEL_DIR) -> Path:
    """Train the model unless `model_dir` already holds it; return the directory."""
    if not (model_dir / MODEL_FILE).is_file():
        train(model_dir)
    return model_dir


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL_DIR
    print(json.dumps(train(target)))
