"""Train the lane's example models with the image's pinned scikit-learn and xgboost.

Nothing is downloaded: iris ships inside scikit-learn. Writes, under the output directory:
``sklearn/iris/model.joblib`` and ``xgboost/iris/model.bst`` (both predict classes 0-2),
``sklearn/iris-constant/model.joblib`` (always class 2: a canary whose answers tell it
apart from ``sklearn/iris``), and ``sklearn/empty/README`` (a directory without a model,
for the crash-at-start scenario).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: Path) -> None:
    import joblib
    import xgboost
    from sklearn import datasets, dummy, svm

    iris = datasets.load_iris()
    sklearn_dir = out / "sklearn" / "iris"
    sklearn_dir.mkdir(parents=True, exist_ok=True)
    classifier = svm.SVC(gamma="scale", random_state=0)
    classifier.fit(iris.data, iris.target)
    joblib.dump(classifier, sklearn_dir / "model.joblib")

    constant_dir = out / "sklearn" / "iris-constant"
    constant_dir.mkdir(parents=True, exist_ok=True)
    constant = dummy.DummyClassifier(strategy="constant", constant=2)
    constant.fit(iris.data, iris.target)
    joblib.dump(constant, constant_dir / "model.joblib")

    xgb_dir = out / "xgboost" / "iris"
    xgb_dir.mkdir(parents=True, exist_ok=True)
    matrix = xgboost.DMatrix(iris.data, label=iris.target)
    params = {"objective": "multi:softmax", "num_class": 3, "max_depth": 3, "seed": 0}
    xgboost.train(params, matrix, num_boost_round=10).save_model(str(xgb_dir / "model.bst"))

    empty = out / "sklearn" / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    (empty / "README").write_text("no model here: a server pointed at it exits at start\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
