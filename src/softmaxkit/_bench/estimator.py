"""The estimator suite: ``Classifier()`` against scikit-learn's ``MLPClassifier``, as shipped.

5-fold ``cross_validate`` (scikit-learn's default, stratified and unshuffled folds) on the
four data sets scikit-learn ships (digits, iris, wine, breast cancer): ``Classifier()``
against ``make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,),
max_iter=500))``, both at their default settings with seed 0 (``random_state=0``).  Each
contender runs in a process of its own on 2 threads; the accuracy is the mean over the
folds, the fit time the sum of the five fits (``cross_validate``'s ``fit_time``).
"""

from __future__ import annotations

import warnings
from typing import Any

from . import measure

__all__ = ["DATASETS", "contender", "run"]

DATASETS = ("digits", "iris", "wine", "breast_cancer")
CONTENDERS = ("softmaxkit", "mlp")


def _estimator(name: str, quick: bool) -> Any:
    if name == "softmaxkit":
        from softmaxkit import Classifier

        return Classifier(epochs=3) if quick else Classifier()
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=3 if quick else 500, random_state=0)
    return make_pipeline(StandardScaler(), mlp)


def contender(*, name: str, dataset: str, quick: bool = False) -> dict[str, Any]:
    """One contender on one data set (run in a child process): mean accuracy, total fit time."""
    from sklearn import datasets
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import cross_validate

    X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    with warnings.catch_warnings():
        # MLPClassifier warns when max_iter ends its training; the numbers say enough.
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(_estimator(name, quick), X, y, cv=2 if quick else 5)
    return {
        "accuracy": float(result["test_score"].mean()),
        "fit_seconds": float(result["fit_time"].sum()),
    }


def run(*, quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    names = DATASETS[1:2] if quick else DATASETS
    rows: list[list[Any]] = []
    totals = dict.fromkeys(CONTENDERS, 0.0)
    results: dict[str, dict[str, Any]] = {}
    for dataset in names:
        got = {
            name: measure(f"{__name__}:contender", name=name, dataset=dataset, quick=quick)
            for name in CONTENDERS
        }
        results[dataset] = got
        if any("error" in r for r in got.values()):
            errors = "; ".join(f"{n}: {r['error']}" for n, r in got.items() if "error" in r)
            rows.append([dataset, None, None, None, None, errors])
            continue
        for name in CONTENDERS:
            totals[name] += got[name]["fit_seconds"]
        ours, theirs = got["softmaxkit"], got["mlp"]
        rows.append(
            [
                dataset,
                f"{100 * ours['accuracy']:.2f}",
                f"{100 * theirs['accuracy']:.2f}",
                round(ours["fit_seconds"], 2),
                round(theirs["fit_seconds"], 2),
                f"{theirs['fit_seconds'] / ours['fit_seconds']:.2f}x",
            ]
        )
    if totals["softmaxkit"] > 0:
        rows.append(
            [
                "total fit time",
                None,
                None,
                round(totals["softmaxkit"], 2),
                round(totals["mlp"], 2),
                f"{totals['mlp'] / totals['softmaxkit']:.2f}x",
            ]
        )
    return {
        "suite": "estimator",
        "title": "Classifier() vs MLPClassifier: 5-fold cross_validate, default settings",
        "columns": [
            "data set",
            "softmaxkit acc (%)",
            "MLP acc (%)",
            "softmaxkit fit (s)",
            "MLP fit (s)",
            "MLP / softmaxkit time",
        ],
        "rows": rows,
        "notes": [
            "MLP: make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), "
            "max_iter=500, random_state=0)); softmaxkit: Classifier() (seed 0)",
            "accuracy: mean over the folds; fit time: the sum of the fits, each contender "
            "in its own process on 2 threads",
        ]
        + (
            ["quick: iris only, 2 folds, 3 epochs (a smoke test, not a comparison)"]
            if quick
            else []
        ),
        "extra": {"results": results, "repeat": repeat},
    }
