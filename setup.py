"""Builds softmaxkit's optional C kernels; everything else is in pyproject.toml.

The extension is optional: if the compiler or OpenMP is missing, the build says
so and goes on, and softmaxkit runs on its portable NumPy path.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Without OpenMP threads, "omp simd" still vectorises the reductions.
OPENMP, SIMD_ONLY = ["-fopenmp"], ["-fopenmp-simd"]


class OptionalBuildExt(build_ext):
    """Try with OpenMP, then without it, then give up quietly (a warning, no error)."""

    def build_extension(self, ext: Extension) -> None:
        for extra in (OPENMP, SIMD_ONLY, []):
            # -fno-trapping-math lets GCC if-convert (and so vectorise) the selects in exp;
            # NaN and infinities are still exact, only FP exception flags are not kept.
            ext.extra_compile_args = ["-O3", "-fno-trapping-math", *extra]
            ext.extra_link_args = list(extra) if extra is OPENMP else []
            try:
                super().build_extension(ext)
                return
            except Exception as exc:  # a CompileError, LinkError or a missing compiler
                error = exc
        print(
            f"warning: softmaxkit's C kernels were not built ({error}); "
            "the portable NumPy path will be used",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "softmaxkit._kernels._ckernels",
            sources=["src/softmaxkit/_kernels/_ckernels.c"],
            optional=True,
        ),
        # sparsemax and 1.5-entmax: a module of their own, built (or skipped) the same way
        Extension(
            "softmaxkit._kernels._sparse_kernels",
            sources=["src/softmaxkit/_kernels/_sparse_kernels.c"],
            optional=True,
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
