"""Write files atomically: a crash never leaves a half-written file behind.

The bytes go to a temporary file in the destination's directory (the same
filesystem), are flushed to disk, and then :func:`os.replace` renames it over
the destination in one step.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ._errors import SoftmaxkitValueError

__all__ = ["atomic_save_figure", "atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, /) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, /) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_figure(figure: Any, path: str | os.PathLike[str], /, **savefig: Any) -> Path:
    """Render a matplotlib ``figure`` in memory, then write ``path`` atomically; returns the path.

    The format follows the suffix of ``path`` (PNG without one); ``savefig`` holds
    further options of ``Figure.savefig`` such as ``dpi``.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    formats = figure.canvas.get_supported_filetypes()
    if fmt not in formats:
        # Found before rendering, and as our error rather than matplotlib's ValueError.
        raise SoftmaxkitValueError(
            f"`path` {str(path)!r} must end in a figure format ({', '.join(sorted(formats))})"
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, **savefig)
    return atomic_write_bytes(path, buffer.getvalue())
