"""``softmaxkit train`` and ``softmaxkit predict``: the classifier from the command line.

``train`` fits a :class:`softmaxkit.Classifier` with a progress bar per epoch,
prints the test accuracy and writes the model, ``report.json`` and the figures
into ``--out``.  ``predict`` prints one test example's probability table.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from .._progress import Progress as _Progress
from . import CommandError
from ._paths import finite_positive_float, non_negative_int, positive_int, prepare_output_dir
from ._table import probability_table

__all__ = ["register"]

MODEL_FILE = "model.npz"
REPORT_FILE = "report.json"


def _hidden(text: str) -> tuple[int, ...]:
    """``"64"`` -> (64,), ``"128,64"`` -> (128, 64), ``"none"`` or ``""`` -> ()."""
    if text.strip().lower() in ("", "none", "0"):
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated layer widths such as 64 or 128,64; got {text!r}"
        ) from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be >= 1; got {text!r}")
    return widths


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1); got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1); got {text!r}")
    return value


def _load_data(spec: str, multilabel: bool, encoding: str = "utf-8") -> Any:
    from .._errors import SoftmaxkitError
    from ..data import load_dataset

    try:
        dataset = load_dataset(spec, encoding=encoding)
    except SoftmaxkitError as exc:
        raise CommandError(f"`--data` {spec!r} cannot be used: {exc}") from None
    if multilabel:
        labels = dataset.y_train
        if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() > 9:
            raise CommandError(
                "`--multilabel` needs digit labels 0-9 (to derive even, > 4, prime, round); "
                f"the labels of {spec!r} are not"
            )
        dataset = dataset.with_attributes()
    return dataset


def _run_train(args: argparse.Namespace) -> int:
    from .. import Classifier
    from .._report import FIGURES, write_report

    head = args.head or ("logistic" if args.multilabel else "softmax")
    if args.multilabel and head != "logistic":
        raise CommandError("`--multilabel` trains one sigmoid per label: use `--head logistic`")
    # The output directory first: a run that cannot write its results is refused before
    # it trains, not after.
    out = prepare_output_dir(args.out, "--out", [MODEL_FILE, REPORT_FILE, *FIGURES])
    dataset = _load_data(args.data, args.multilabel, args.encoding)
    params: dict[str, Any] = {"hidden": args.hidden, "head": head, "seed": args.seed}
    if args.early_stopping:
        params["early_stopping"] = True
    elif args.validation_fraction is not None:
        raise CommandError("`--validation-fraction` is the part `--early-stopping` holds out")
    for name in ("epochs", "batch_size", "learning_rate", "num_sampled", "validation_fraction"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    model = Classifier(**params)
    kind = "multi-label " if args.multilabel else ""
    print(
        f"training {model!r} on {dataset.name}: {dataset.X_train.shape[0]} {kind}train and "
        f"{dataset.X_test.shape[0]} test examples, {dataset.X_train.shape[1]} features"
    )
    from .._classifier._training import auto_epochs

    # The most epochs fit will run: "auto" resolves from the rows it trains on, as fit does.
    n_rows = dataset.X_train.shape[0]
    if model.early_stopping:
        n_rows -= math.ceil(float(model.validation_fraction) * n_rows)
    epochs = auto_epochs(model.epochs, n_rows, int(model.batch_size))
    progress = _Progress(epochs, eval_label="test")
    start = time.perf_counter()
    model.fit(
        dataset.X_train,
        dataset.y_train,
        eval_set=(dataset.X_test, dataset.y_test),
        on_batch=progress.on_batch,
        on_epoch=progress.on_epoch,
    )
    seconds = time.perf_counter() - start
    accuracy = model.score(dataset.X_test, dataset.y_test)
    what = "test accuracy (every label right)" if args.multilabel else "test accuracy"
    print(
        f"{what}: {accuracy:.2%} on {dataset.X_test.shape[0]} examples ({seconds:.1f} s training)"
    )
    if args.early_stopping:
        best = model.history_["validation_accuracy"]
        print(
            f"early stopping: {model.n_iter_} of {epochs} epochs, kept epoch "
            f"{best.index(max(best)) + 1} (validation accuracy {max(best):.2%})"
        )
    metadata = {
        "data": args.data,
        "multilabel_attributes": bool(args.multilabel),
        "label_names": list(dataset.label_names),
    }
    model.save(out / MODEL_FILE, metadata=metadata)
    report = write_report(
        out,
        model,
        dataset.X_test,
        dataset.y_test,
        image_shape=dataset.image_shape,
        label_names=dataset.label_names,
        extra={
            "data": dataset.name,
            "label_names": list(dataset.label_names),
            "params": {k: v for k, v in model.get_params().items()},
            "n_train": int(dataset.X_train.shape[0]),
            "train_seconds": round(seconds, 3),
        },
    )
    test = report["test"]
    if head == "sparsemax":  # -log p is inf where p is exactly 0: its own loss instead
        print(
            f"sparsemax loss {test['log_loss']:.4f}, mean nonzero classes per example "
            f"{test['mean_nonzero_classes']:.2f}, true class at probability 0 in "
            f"{test['true_class_zero_probability']:.2%}, expected calibration error "
            f"{test['expected_calibration_error']:.4f}"
        )
    else:
        print(
            f"log-loss {test['log_loss']:.4f}, expected calibration error "
            f"{test['expected_calibration_error']:.4f}"
        )
    print(f"wrote {out / MODEL_FILE}, {out / REPORT_FILE}")
    print("figures: " + ", ".join(str(out / name) for name in FIGURES))
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import Classifier
    from .._errors import SoftmaxkitError

    try:
        model = Classifier.load(args.model)
    except SoftmaxkitError as exc:
        raise CommandError(f"`MODEL` cannot be loaded: {exc}") from None
    metadata = model.metadata_
    spec = args.data or metadata.get("data") or "digits"
    if not isinstance(spec, str):
        raise CommandError(f"`MODEL` names its data as {spec!r}; pass `--data`")
    dataset = _load_data(spec, bool(metadata.get("multilabel_attributes")), args.encoding)
    if dataset.X_test.shape[1] != model.n_features_in_:
        raise CommandError(
            f"`--data` {spec!r} has {dataset.X_test.shape[1]} features; the model was trained "
            f"on {model.n_features_in_}"
        )
    n = dataset.X_test.shape[0]
    if not -n <= args.index < n:
        raise CommandError(
            f"`--index` must be in [0, {n}) for the {n} test examples; got {args.index}"
        )
    x = (
        dataset.X_test[args.index : args.index + 1]
        if args.index >= 0
        else dataset.X_test[[args.index]]
    )
    probs = model.predict_proba(x)[0]
    truth = dataset.y_test[args.index]
    names = list(dataset.label_names)
    if len(names) != len(model.classes_):  # no names, or names of other outputs than these
        names = [str(c) for c in model.classes_]
    if model.multilabel_ and np.ndim(truth) == 1 and len(truth) == len(names):
        true_text = ", ".join(name for name, v in zip(names, truth, strict=True) if v) or "none"
        note = "one sigmoid per label: independent probabilities that need not sum to 1"
    else:
        true_text = str(truth)
        note = f"predicted: {model.classes_[int(probs.argmax())]}"
    print(f"test example {args.index} of {spec} (true: {true_text})")
    print(probability_table(names, probs.tolist()))
    print(note)
    return 0


_ENCODING_HELP = "text encoding of a CSV --data file (default utf-8; e.g. latin-1)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a classifier (softmax output layer) and write a report",
        description="Train a NumPy network with a softmax (or logistic, sampled, sparsemax) "
        "output layer, show a progress bar per epoch, print the test accuracy, and write the "
        "model, report.json and PNG figures into --out. Example: softmaxkit train --out "
        "runs/demo",
    )
    p.add_argument(
        "--data",
        default="digits",
        help="'digits' (the 8x8 digits scikit-learn ships, default), a directory of MNIST IDX "
        "files (raw or .gz), or a CSV file of features then label",
    )
    p.add_argument("--encoding", default="utf-8", help=_ENCODING_HELP)
    p.add_argument("--hidden", type=_hidden, default=(64,), help="hidden widths, e.g. 64 or 128,64")
    p.add_argument(
        "--head",
        choices=("softmax", "logistic", "sampled", "sparsemax"),
        help="output layer (default softmax; sampled: trained on sampled softmax over "
        "--num-sampled classes per batch, predicts with the full softmax; sparsemax: "
        "trained with the sparsemax loss, probabilities with exact zeros)",
    )
    p.add_argument("--num-sampled", type=positive_int, help="classes per batch for --head sampled")
    p.add_argument(
        "--multilabel",
        action="store_true",
        help="learn the digit attributes even, > 4, prime, round (several per image) with "
        "the logistic head",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="passes over the training set (default: 50, more on a small set)",
    )
    p.add_argument("--batch-size", type=positive_int, help="examples per step (default 32)")
    p.add_argument(
        "--learning-rate", type=finite_positive_float, help="Adam's step size (default 0.003)"
    )
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="hold out part of the training set (stratified), stop when its accuracy stops "
        "improving and keep the best epoch's weights",
    )
    p.add_argument(
        "--validation-fraction",
        type=_fraction,
        help="the part --early-stopping holds out, in (0, 1) (default 0.1)",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed (>= 0) for weights and batch order"
    )
    p.add_argument("--out", default="runs/train", help="output directory (default runs/train)")
    p.set_defaults(func=_run_train)

    p = sub.add_parser(
        "predict",
        help="print one test example's probability table",
        description="Load a model written by `softmaxkit train` and print the probability "
        "table (label, probability, percent, odds) of one test example. "
        "Example: softmaxkit predict runs/demo/model.npz --index 0",
    )
    p.add_argument("model", metavar="MODEL", help="a model file written by softmaxkit train")
    p.add_argument(
        "--data", help="data set as for train (default: the one the model was trained on)"
    )
    p.add_argument("--encoding", default="utf-8", help=_ENCODING_HELP)
    p.add_argument("--index", type=int, required=True, help="position in the test set")
    p.set_defaults(func=_run_predict)
