"""The per-epoch progress ``Classifier(verbose=True)`` shows (and ``softmaxkit train`` uses).

A tqdm bar per epoch on a terminal (when tqdm is installed); one plain line per epoch
otherwise (logs, pipes, notebooks' captured output).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress"]


class Progress:
    """``on_batch`` and ``on_epoch`` callbacks that draw the progress of ``epochs`` epochs."""

    def __init__(self, epochs: int, stream: Any = None, *, eval_label: str = "test") -> None:
        if stream is None:
            stream = sys.stderr if sys.stderr.isatty() else sys.stdout
        self.epochs = epochs
        self.stream = stream
        self.eval_label = eval_label
        self.bar: Any = None
        self.fancy = False
        if getattr(stream, "isatty", lambda: False)():
            try:
                import tqdm  # noqa: F401

                self.fancy = True
            except ImportError:
                pass

    def on_batch(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        if not self.fancy:
            return
        if batch == 1:
            from tqdm import tqdm

            width = len(str(self.epochs))
            self.bar = tqdm(
                total=n_batches,
                desc=f"epoch {epoch:>{width}}/{self.epochs}",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )
        self.bar.update(1)
        self.bar.set_postfix_str(f"loss {loss:.4f}  acc {acc:.2%}", refresh=False)

    def on_epoch(self, epoch: int, record: dict[str, float]) -> None:
        text = f"loss {record['loss']:.4f}  acc {record['accuracy']:.2%}"
        if "val_accuracy" in record:
            label = self.eval_label
            text += (
                f"  {label} loss {record['val_loss']:.4f}  {label} acc {record['val_accuracy']:.2%}"
            )
        if "validation_accuracy" in record:
            text += f"  validation acc {record['validation_accuracy']:.2%}"
        if self.fancy and self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.close()
        else:
            print(f"epoch {epoch}/{self.epochs}  {text}", file=self.stream, flush=True)
