"""Classifier(head="sampled"): trained on sampled softmax, predicting with the full softmax."""

from __future__ import annotations

import numpy as np
import pytest

from softmaxkit import Classifier, SoftmaxkitValueError, sampled_softmax_loss
from softmaxkit._classifier._heads import SampledHead

K, D = 60, 6


def blobs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(K, D)) * 2.5
    y = rng.integers(0, K, size=n)
    return centres[y] + rng.normal(size=(n, D)), y


def test_sampled_head_reaches_the_accuracy_of_the_full_softmax():
    X, y = blobs(3000, 1)
    X_test, y_test = blobs(1000, 2)
    settings = {"hidden": (), "epochs": 8, "batch_size": 64}
    full = Classifier(head="softmax", **settings).fit(X, y).score(X_test, y_test)
    sampled = Classifier(head="sampled", num_sampled=10, **settings).fit(X, y)
    assert sampled.score(X_test, y_test) > full - 0.03
    p = sampled.predict_proba(X_test)
    assert p.shape == (1000, K)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_only_rows_of_labels_and_sample_get_gradient_and_it_is_the_loss_gradient():
    X, y = blobs(40, 3)
    clf = Classifier(hidden=(5,), head="softmax", epochs=1, batch_size=40, seed=3).fit(X, y)
    network = clf.network_
    network.train(True)
    head = SampledHead(7, np.random.default_rng(0))
    targets, classes, _ = head.encode(y)
    head.set_frequencies(np.bincount(targets, minlength=len(classes)).astype(float))
    n_classes = len(classes)
    Xs, targets = clf._scaled(X)[:8], targets[:8]
    # The head's next draw, drawn here too from the same seed.
    values = head.sampler.sample(7, true_classes=targets, rng=np.random.default_rng(11))
    head.rng = np.random.default_rng(11)
    value, logits = head.train_batch(network, Xs, targets, np.ones(8))
    assert logits.shape == (8, n_classes)
    out = network.layers[-1]
    touched = np.zeros(n_classes, dtype=bool)
    touched[targets] = touched[values.sampled] = True
    assert (out.grads["weight"][:, ~touched] == 0).all()
    assert (out.grads["weight"][:, targets] != 0).any(axis=0).all()

    def loss() -> float:
        h = network.layers[1].forward(network.layers[0].forward(Xs))
        w, b = out.params["weight"], out.params["bias"]
        return float(
            sampled_softmax_loss(w.T, b, targets, h, sampled_values=values, reduction="mean")
        )

    assert value == pytest.approx(loss(), rel=1e-12)
    first = network.layers[0]
    grads = {(0, name): g.copy() for name, g in first.grads.items()}
    grads.update({(2, name): g.copy() for name, g in out.grads.items()})
    eps = 1e-6
    for layer, name in grads:
        param = network.layers[layer].params[name]
        for i in list(np.ndindex(param.shape))[:12]:
            old = param[i]
            param[i] = old + eps
            up = loss()
            param[i] = old - eps
            down = loss()
            param[i] = old
            assert grads[layer, name][i] == pytest.approx((up - down) / (2 * eps), abs=1e-7)


def test_same_seed_same_model_and_save_load_keeps_the_head(tmp_path):
    X, y = blobs(300, 4)
    a = Classifier(hidden=(8,), head="sampled", num_sampled=5, epochs=2, seed=9).fit(X, y)
    b = Classifier(hidden=(8,), head="sampled", num_sampled=5, epochs=2, seed=9).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    path = tmp_path / "model.npz"
    a.save(path)
    loaded = Classifier.load(path)
    assert loaded.get_params()["head"] == "sampled" and loaded.num_sampled == 5
    np.testing.assert_array_equal(loaded.predict_proba(X), a.predict_proba(X))


def test_bad_num_sampled():
    X, y = blobs(100, 5)
    n_classes = len(np.unique(y))
    with pytest.raises(SoftmaxkitValueError, match=rf"`num_sampled` must be in \[1, {n_classes}\]"):
        Classifier(hidden=(), head="sampled", num_sampled=n_classes + 1, epochs=1).fit(X, y)
    with pytest.raises(SoftmaxkitValueError, match=r"`num_sampled` must be an int >= 1; got 0"):
        Classifier(hidden=(), head="sampled", num_sampled=0, epochs=1).fit(X, y)
