"""Two-tower retrieval on synthetic data: in-batch softmax with and without the log-q correction.

Users and items have hidden taste vectors; an item's popularity follows Zipf's
law; a user picks item ``i`` with probability

    P(i | u) ∝ popularity(i) * exp(relevance * <taste(u), taste(i)>)

Both towers are embedding tables trained with :class:`softmaxkit.torch.InBatchSoftmaxLoss`
on sampled (user, item) pairs: the other items of the batch are the negatives,
so popular items are negatives more often.  Without the correction the model
learns ``log P(i | u) - log P(i)`` (popularity divided out) and under-ranks
popular items; subtracting ``log q`` (from a :class:`FrequencyEstimator`
updated as training goes, or the true item marginal) recovers ``log P(i | u)``.
Recall@10 over all items is measured on held-out pairs drawn from the same
distribution.

Run: ``python examples/two_tower_retrieval.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from softmaxkit.sampling import FrequencyEstimator
from softmaxkit.torch import InBatchSoftmaxLoss


def make_data(args: argparse.Namespace) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    taste_u = rng.normal(size=(args.users, args.taste_dim)) / np.sqrt(args.taste_dim)
    taste_i = rng.normal(size=(args.items, args.taste_dim))
    rank = rng.permutation(args.items)  # item ids say nothing of popularity
    log_pop = -args.zipf * np.log1p(rank)
    log_p = log_pop + args.relevance * taste_u @ taste_i.T  # (users, items), unnormalised
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    p /= p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        users = rng.integers(0, args.users, size=n)
        items = np.empty(n, dtype=np.int64)
        for user in range(args.users):
            rows = np.flatnonzero(users == user)
            items[rows] = np.searchsorted(cdf[user], rng.random(rows.size), side="right")
        return users, np.minimum(items, args.items - 1)

    train_u, train_i = pairs(args.train_pairs)
    test_u, test_i = pairs(args.test_pairs)
    # Users are drawn uniformly, so an item's marginal probability is the mean of P(i | u).
    return {
        "train_u": train_u,
        "train_i": train_i,
        "test_u": test_u,
        "test_i": test_i,
        "log_p": np.log(p),
        "true_log_q": np.log(p.mean(axis=0)),
    }


class TwoTower(nn.Module):
    def __init__(self, users: int, items: int, dim: int) -> None:
        super().__init__()
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)


def recall_at_k(scores: np.ndarray, test_u: np.ndarray, test_i: np.ndarray, k: int) -> float:
    """Share of held-out pairs whose item is among the user's top k of all items."""
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return float((top[test_u] == test_i[:, None]).any(axis=1).mean())


def train(data: dict[str, np.ndarray], args: argparse.Namespace, correction: str) -> TwoTower:
    torch.manual_seed(args.seed)
    model = TwoTower(args.users, args.items, args.dim)
    estimator = (
        FrequencyEstimator(args.buckets, alpha=args.alpha) if correction == "estimator" else None
    )
    loss_fn = InBatchSoftmaxLoss(temperature=args.temperature, estimator=estimator)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    true_log_q = torch.from_numpy(data["true_log_q"])
    train_u = torch.from_numpy(data["train_u"])
    train_i = torch.from_numpy(data["train_i"])
    order_rng = np.random.default_rng(args.seed + 1)
    n = len(train_u)
    for _ in range(args.epochs):
        order = torch.from_numpy(order_rng.permutation(n))
        for start in range(0, n - args.batch + 1, args.batch):
            rows = order[start : start + args.batch]
            users, items = train_u[rows], train_i[rows]
            log_q = true_log_q[items] if correction == "true q" else None
            loss = loss_fn(model.user(users), model.item(items), items, log_q=log_q)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--taste-dim", type=int, default=8)
    parser.add_argument("--relevance", type=float, default=3.0)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--train-pairs", type=int, default=200_000)
    parser.add_argument("--test-pairs", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--buckets", type=int, default=1 << 12)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # One thread: the matrices are small, and on a busy machine a second OpenMP thread
    # waiting for a descheduled partner made each step many times slower.
    torch.set_num_threads(1)

    start = time.perf_counter()
    data = make_data(args)
    test_u, test_i = data["test_u"], data["test_i"]
    rows = []
    oracle = data["log_p"]
    rows.append(("oracle: true P(item | user)", recall_at_k(oracle, test_u, test_i, 10)))
    popularity = np.broadcast_to(data["true_log_q"], oracle.shape)
    rows.append(("popularity alone", recall_at_k(popularity, test_u, test_i, 10)))
    for correction, label in [
        ("none", "in-batch softmax, no correction"),
        ("estimator", "in-batch softmax, log q from FrequencyEstimator"),
        ("true q", "in-batch softmax, log q of the true item marginal"),
    ]:
        model = train(data, args, correction)
        with torch.no_grad():
            scores = (model.user.weight @ model.item.weight.T).numpy()
        rows.append((label, recall_at_k(scores, test_u, test_i, 10)))
    elapsed = time.perf_counter() - start

    print(
        f"{args.users} users, {args.items} items (Zipf {args.zipf}), {args.train_pairs} training "
        f"pairs, {args.epochs} epochs of batch {args.batch}, {len(test_u)} held-out pairs"
    )
    print("| model | recall@10 |\n|---|---:|")
    for label, recall in rows:
        print(f"| {label} | {100 * recall:.2f}% |")
    print(f"({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
