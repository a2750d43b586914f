"""`softmaxkit bench lm`: the corpus and its split, every method end to end, bad `--text`.

No timing is asserted: timings belong to the benchmark's output, not to tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softmaxkit._bench import lm_corpus
from softmaxkit.cli import main

ALL_METHODS = [
    "full softmax",
    "linear cross-entropy",
    "sampled, log-uniform",
    "sampled, unigram",
    "NCE",
    "hierarchical (Huffman)",
    "adaptive",
]


def test_tokenize_keeps_identifiers_and_numbers_whole():
    assert lm_corpus.tokenize("Hello, __init__(x1) = 42; os.path") == [
        "hello",
        "__init__",
        "x1",
        "42",
        "os",
        "path",
    ]


def _pattern_corpus() -> tuple[list[str], lm_corpus.Corpus]:
    # 2100 words: block 0 (held out, a word the training text lacks), then blocks 1 and 2.
    words = ["z"] * 1000 + (["a"] * 5 + ["b"] * 3 + ["c", "d"] * 1) * 100 + ["c", "d"] * 50
    return words, lm_corpus.build_corpus([("pattern", " ".join(words))])


def test_split_holds_out_every_20th_block_of_1000_words():
    words, corpus = _pattern_corpus()
    assert corpus.tokens == len(words) == 2100
    assert corpus.held_out[:1000].all() and not corpus.held_out[1000:].any()
    big = lm_corpus.build_corpus([("f", "w " * 45_000)])
    blocks = big.held_out.reshape(45, 1000)
    assert [i for i in range(45) if blocks[i].all()] == [0, 20, 40]
    assert not blocks[[i for i in range(45) if i % 20]].any()


def test_vocabulary_ranks_by_training_count_and_the_unknown_class_loses_ties():
    words, corpus = _pattern_corpus()
    counts = collections.Counter(words[1000:])  # the training text only
    ex = lm_corpus.examples(corpus, 3, eval_tokens=100)
    # a, then b and the unknown class (c + d) with equal counts: b first.
    assert ex.num_classes == 3 and ex.unknown_class == 2
    assert ex.counts.tolist() == [counts["a"], counts["b"], counts["c"] + counts["d"]]
    assert counts["b"] == counts["c"] + counts["d"] == 300
    assert ex.unknown_rate == 1.0  # every held-out word is "z"
    ids = {"a": 0, "b": 1, "c": 2, "d": 2}
    assert ex.y_train.tolist() == [ids[w] for w in words[1000:]]
    # Asking for more classes than the training text has words gives them all + unknown.
    assert lm_corpus.examples(corpus, 50, eval_tokens=100).num_classes == 5


def test_contexts_never_reach_across_a_block_or_file():
    _, corpus = _pattern_corpus()
    ex = lm_corpus.examples(corpus, 10, eval_tokens=10_000)
    pad = ex.num_classes
    # The first training word starts block 1: nothing before it is its context.
    assert ex.x_train[0].tolist() == [pad] * 4
    assert ex.x_train[1].tolist() == [pad, pad, pad, ex.y_train[0]]
    assert ex.x_train[1004].tolist() == ex.y_train[1000:1004].tolist()  # inside block 2
    assert ex.x_train[1000].tolist() == [pad] * 4  # block 2 starts afresh
    assert ex.x_eval.shape == (1000, 4) and ex.x_eval[0].tolist() == [pad] * 4
    two = lm_corpus.build_corpus([("f1", "x " * 1500), ("f2", "y " * 1500)])
    ex2 = lm_corpus.examples(two, 10, eval_tokens=10)
    assert (ex2.x_train[500] == ex2.num_classes).all()  # word 1500, the first of file f2


def test_quick_run_trains_every_method_and_writes_table_json_and_png(tmp_path):
    # Real text the project did not write: argparse's source, as a plain-text file.
    text = tmp_path / "corpus.txt"
    text.write_text(Path(argparse.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "softmaxkit", "bench", "lm", "--quick", "--text", str(text),
         "--out", str(out)],
        capture_output=True, text=True, timeout=240, check=True,
    )  # fmt: skip
    from softmaxkit._bench.lm_methods import METHODS

    assert list(METHODS) == ALL_METHODS
    data = json.loads((out / "lm.json").read_text())
    assert data["methods"] == ALL_METHODS
    (vocab,) = data["runs"]
    assert vocab["num_classes"] == 500 and data["settings"]["steps"] == 30
    table = (out / "lm.txt").read_text()
    for name in data["methods"]:
        r = vocab["results"][name]
        assert "error" not in r, r
        assert r["steps"] == 30
        assert math.isfinite(r["perplexity"]) and 1 < r["perplexity"] < 10 * 500, name
        assert r["normalisation_error"] < 1e-4, name  # an exact normalised distribution
        assert r["ms_per_step"] > 0 and r["peak_rss_bytes"] > 0
        # one high-water mark, read after the backward pass and again after the update
        assert 0 < r["baseline_bytes"] and r["loss_extra_bytes"] <= r["step_extra_bytes"]
        assert r["baseline_bytes"] + r["step_extra_bytes"] <= r["peak_rss_bytes"]
        assert r["grad_bytes"] > 0
        assert [p["step"] for p in r["curve"]] == [15, 30]
        assert r["curve"][-1]["perplexity"] == r["perplexity"]
        assert name in table and name in run.stdout
    assert "loss extra (MB)" in table and "grads (MB)" in table
    results = vocab["results"]
    # The same gradients (the full logits, or the same sum a chunk of classes at a time).
    assert results["linear cross-entropy"]["perplexity"] == pytest.approx(
        results["full softmax"]["perplexity"], rel=1e-3
    )
    assert (out / "lm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # the atomic writes left no temporary behind


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text(" \n\t\n"), "is empty"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b"caf\xe9 au lait"), "must be UTF-8 text"),
        (lambda p: p.write_text("(), [] {} ;"), "holds no words"),
        (lambda p: p.write_text("few words only"), "must hold at least 2000 words"),
    ],
)
def test_bad_text_is_one_line_naming_the_option(tmp_path, capsys, make, expected):
    path = tmp_path / "corpus.txt"
    make(path)
    code = main(["bench", "lm", "--quick", "--text", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "`--text`" in err and expected in err, err
    assert not (tmp_path / "o" / "lm.json").exists()


def test_lm_runs_alone_and_its_options_are_its_own(capsys):
    assert main(["bench", "lm", "softmax"]) == 2
    assert "`lm` runs alone" in capsys.readouterr().err
    assert main(["bench", "softmax", "--vocab", "100"]) == 2
    assert "`--vocab` is an option of `softmaxkit bench lm`" in capsys.readouterr().err
    assert main(["bench", "lm", "--json", "x.json"]) == 2
    assert "`bench lm` writes into `--out`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "lm", "--vocab", "1000,1"])
    assert exit_info.value.code == 2
    assert "each size must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "lm", "--steps", "5", "--seconds", "3"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_default_corpus_has_enough_words_for_a_vocabulary_of_100000():
    texts, _ = lm_corpus.stdlib_texts()
    assert len(texts) > 100
    # Counting distinct training words needs only the split, not the examples.
    corpus = lm_corpus.build_corpus(texts, skip_empty=True)
    assert int(np.count_nonzero(corpus.train_counts())) >= 100_000 - 1
