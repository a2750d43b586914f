"""The corpus of ``softmaxkit bench lm``: real text, its words, a vocabulary and a held-out split.

* **Text.** By default the running Python's standard library: every ``*.py``
  file under ``sysconfig.get_paths()["stdlib"]`` (``site-packages`` left out:
  it differs from machine to machine), in sorted order of the path relative to
  that folder, source, comments and docstrings alike: real text this project
  did not write, and every machine has it.  Or the plain-text files given with
  ``--text``, in the order given.
* **Words.** :data:`WORD` on the lowercased text: identifiers and words
  (``[a-z_][a-z0-9_]*``, so ``__init__`` and ``os_path`` are one word each)
  and runs of digits; punctuation and white space are dropped.
* **Split.** The words of all files, in order, are cut into blocks of
  :data:`BLOCK` words; every :data:`HELD_OUT_EVERY`-th block (block index
  ``% 20 == 0``, so 5% of the words) is held out, the rest is training text.
* **Vocabulary.** The ``V - 1`` words most frequent in the training text and
  one unknown class for every other word (held-out words never seen in training
  included).  Classes are numbered by falling training count, the unknown class
  ranked by the count of the words it stands for (ties: by first appearance,
  the unknown class after the words), so that class ids are Zipfian ranks as
  the log-uniform sampler and the adaptive softmax's cutoffs expect.  Where the
  training text has fewer than ``V - 1`` distinct words the vocabulary is all
  of them plus the unknown class, and its real size is reported.
* **Examples.** Each word is predicted from the :data:`CONTEXT` words before
  it in its own block and file; positions before the block's or the file's
  start hold the padding id ``V`` (an input-only row), so that no held-out word
  is ever the input of a training example, or the other way round.
"""

from __future__ import annotations

import re
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import SoftmaxkitValueError

__all__ = [
    "BLOCK",
    "CONTEXT",
    "HELD_OUT_EVERY",
    "WORD",
    "Corpus",
    "Examples",
    "build_corpus",
    "stdlib_texts",
    "tokenize",
]

WORD = re.compile(r"[a-z_][a-z0-9_]*|[0-9]+")
BLOCK = 1000
HELD_OUT_EVERY = 20
CONTEXT = 4


def tokenize(text: str) -> list[str]:
    """The words of ``text``: :data:`WORD` matches in the lowercased text."""
    return WORD.findall(text.lower())


def stdlib_texts() -> tuple[list[tuple[str, str]], int]:
    """``[(name, text), ...]`` of the standard library's ``*.py`` files, sorted; and how many were unreadable."""
    root = Path(sysconfig.get_paths()["stdlib"])
    names = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if "site-packages" not in p.relative_to(root).parts
    )
    texts, skipped = [], 0
    for name in names:
        try:
            texts.append((name, (root / name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            skipped += 1  # a test fixture in another encoding, say: not worth failing over
    return texts, skipped


@dataclass(frozen=True)
class Corpus:
    """Every word of the text as an id of first appearance, and its split.

    ``stream[i]`` is the id of word ``i`` (ids number the distinct words in
    order of first appearance), ``segment[i]`` the position where the block
    and file holding word ``i`` start (whichever is later), ``held_out[i]``
    whether word ``i`` is held out.  ``words`` lists the distinct words by id.
    """

    stream: np.ndarray
    segment: np.ndarray
    held_out: np.ndarray
    words: list[str]
    files: int

    @property
    def tokens(self) -> int:
        return int(self.stream.size)

    def train_counts(self) -> np.ndarray:
        """Training count of each distinct word, by id."""
        return np.bincount(self.stream[~self.held_out], minlength=len(self.words))


@dataclass(frozen=True)
class Examples:
    """The examples of one vocabulary size: contexts and targets, training and evaluation.

    ``x_*`` are (n, CONTEXT) int64 class ids (``num_classes`` = padding),
    ``y_*`` (n,) int64 target classes; ``counts`` (num_classes,) the training
    count of each class.  ``x_eval``/``y_eval`` are ``eval_tokens`` held-out
    examples spread evenly over the held-out text (all of them if fewer).
    """

    num_classes: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    counts: np.ndarray
    held_out_tokens: int
    unknown_class: int
    unknown_rate: float

    def save(self, path: str | Path) -> None:
        # int32 contexts: half the bytes to write and read back (V + 1 < 2**31).
        np.savez(
            path,
            x_train=self.x_train.astype(np.int32),
            y_train=self.y_train,
            x_eval=self.x_eval.astype(np.int32),
            y_eval=self.y_eval,
            counts=self.counts,
        )


def build_corpus(texts: Iterable[tuple[str, str]], *, skip_empty: bool = False) -> Corpus:
    """Tokenise ``texts`` (``(name, text)`` pairs, in order) and split the words into blocks.

    Raises :class:`SoftmaxkitValueError` when a text holds no words (naming it;
    with ``skip_empty`` it is left out instead, as the standard library's empty
    ``__init__.py`` files are) or the whole holds too few for both a training
    and a held-out part.
    """
    index: dict[str, int] = {}
    pieces: list[np.ndarray] = []
    starts: list[int] = []
    total = 0
    files = 0
    for name, text in texts:
        words = tokenize(text)
        if not words:
            if skip_empty:
                continue
            raise SoftmaxkitValueError(f"`--text` file {name!r} holds no words")
        pieces.append(np.fromiter((index.setdefault(w, len(index)) for w in words), np.int64))
        starts.append(total)
        total += len(words)
        files += 1
    if total < 2 * BLOCK:
        raise SoftmaxkitValueError(
            f"`--text` must hold at least {2 * BLOCK} words (one held-out block of {BLOCK} and "
            f"training text); got {total}"
        )
    stream = np.concatenate(pieces)
    position = np.arange(total)
    file_start = np.repeat(np.asarray(starts), np.diff([*starts, total]))
    segment = np.maximum(file_start, position - position % BLOCK)
    held_out = (position // BLOCK) % HELD_OUT_EVERY == 0
    return Corpus(stream, segment, held_out, list(index), files)


def _contexts(stream: np.ndarray, segment: np.ndarray, where: np.ndarray, pad: int) -> np.ndarray:
    x = np.full((where.size, CONTEXT), pad, dtype=np.int64)
    for back in range(1, CONTEXT + 1):
        source = where - back
        inside = source >= segment[where]
        x[inside, CONTEXT - back] = stream[source[inside]]
    return x


def examples(corpus: Corpus, num_classes: int, eval_tokens: int) -> Examples:
    """The vocabulary of ``num_classes`` classes (or fewer: see the module) and its examples."""
    counts = corpus.train_counts()
    seen = np.flatnonzero(counts > 0)
    # Most frequent first, ties by first appearance (stable sort on the ids).
    by_count = seen[np.argsort(-counts[seen], kind="stable")]
    kept = by_count[: num_classes - 1]
    unknown_count = int(counts.sum() - counts[kept].sum())
    class_counts = np.append(counts[kept], unknown_count)
    order = np.argsort(-class_counts, kind="stable")  # the unknown class, last, loses ties
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    v = int(order.size)
    unknown = int(rank[-1])
    lookup = np.full(len(corpus.words), unknown, dtype=np.int64)
    lookup[kept] = rank[:-1]
    ids = lookup[corpus.stream]

    train_at = np.flatnonzero(~corpus.held_out)
    held_at = np.flatnonzero(corpus.held_out)
    pick = np.unique(np.linspace(0, held_at.size - 1, min(eval_tokens, held_at.size)).astype(int))
    eval_at = held_at[pick]
    return Examples(
        num_classes=v,
        x_train=_contexts(ids, corpus.segment, train_at, v),
        y_train=ids[train_at],
        x_eval=_contexts(ids, corpus.segment, eval_at, v),
        y_eval=ids[eval_at],
        counts=class_counts[order],
        held_out_tokens=int(held_at.size),
        unknown_class=unknown,
        unknown_rate=float(np.mean(ids[held_at] == unknown)),
    )
