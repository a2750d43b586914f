"""Checks of the commands' file arguments, made before any work starts.

A command that trains for minutes and then finds it cannot write its output
has wasted those minutes; so every output path is checked (and an output
directory created) first, and every input file is read with errors turned into
one line naming the option.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import CommandError

__all__ = [
    "check_figure_path",
    "check_output_file",
    "finite_positive_float",
    "load_npy",
    "non_negative_int",
    "positive_int",
    "prepare_output_dir",
    "read_text",
]


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}; got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def finite_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be finite and > 0; got {text!r}")
    return value


def _probe_writable(directory: Path, option: str) -> None:
    # os.access says yes to root on a read-only filesystem; creating a file is the test
    # that the later atomic write (a temporary file, then a rename) will pass.
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".softmaxkit-probe.")
    except OSError as exc:
        raise CommandError(
            f"`{option}`: cannot write into {str(directory)!r} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str, option: str) -> Path:
    """``path`` names a file that can be written: not a directory, in a writable directory."""
    target = Path(path)
    if path == "" or target.is_dir():
        raise CommandError(f"`{option}` must name a file; {path!r} is a directory")
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise CommandError(f"`{option}` directory {str(parent)!r} {what}")
    _probe_writable(parent, option)
    return target


def prepare_output_dir(path: str, option: str, files: Iterable[str] = ()) -> Path:
    """Create the directory ``path`` (with its parents) and check it and ``files`` in it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CommandError(f"`{option}` must be a directory; {path!r} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"`{option}`: cannot create the directory {path!r} ({exc.strerror or exc})"
        ) from None
    _probe_writable(out, option)
    for name in files:
        if (out / name).is_dir():
            raise CommandError(
                f"`{option}`: {str(out / name)!r} is a directory, where a file is to be written"
            )
    return out


def check_figure_path(path: str, option: str) -> Path:
    """As :func:`check_output_file`, and the suffix must be a format matplotlib writes."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # pragma: no cover - depends on the environment
        raise CommandError(
            f"`{option}` needs matplotlib: pip install 'softmaxkit[plot]' (or pass '-')"
        ) from None
    target = check_output_file(path, option)
    suffix = target.suffix.lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise CommandError(
            f"`{option}` must end in a figure format ({', '.join(sorted(formats))}); got {path!r}"
        )
    return target


def load_npy(path: str, option: str) -> Any:
    """The array in the ``.npy`` file ``path``, or one line saying why it is not one."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                kind = "an empty file" if f.tell() == 0 else "not a .npy file"
                raise CommandError(
                    f"`{option}` must be a NumPy .npy file (np.save); {path!r} is {kind}"
                )
            f.seek(0)
            # np.load allocates the shape its header announces before reading the data;
            # a short or crafted file must not make it allocate more than the file holds.
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            held = os.fstat(f.fileno()).st_size - f.tell()
            announced = math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and announced != held:
                raise CommandError(
                    f"`{option}` file {path!r} is truncated or damaged: its header announces "
                    f"shape {shape} of {dtype} ({announced} bytes) but it holds {held}"
                )
            f.seek(0)
            array = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"`{option}` file {path!r} does not exist") from None
    except IsADirectoryError:
        raise CommandError(f"`{option}` must be a .npy file; {path!r} is a directory") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CommandError(
            f"`{option}` must be a NumPy .npy file; reading {path!r}: {exc}"
        ) from None
    return array


def read_text(path: str, option: str) -> str:
    """The UTF-8 text of the file ``path``, or one line saying why it cannot be read or is empty."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CommandError(f"`{option}` file {path!r} does not exist") from None
    except IsADirectoryError:
        raise CommandError(f"`{option}` must be a text file; {path!r} is a directory") from None
    except OSError as exc:
        raise CommandError(
            f"`{option}` file {path!r} cannot be read ({exc.strerror or exc})"
        ) from None
    if not data.strip():
        raise CommandError(f"`{option}` file {path!r} is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"`{option}` must be UTF-8 text; {path!r} holds byte {data[exc.start]:#04x} at "
            f"offset {exc.start}"
        ) from None
