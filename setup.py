"""Builds softmaxkit's optional C kernels; everything else is in pyproject.toml.

The extensions are optional: if the compiler or OpenMP is missing, the build says
so and goes on, and softmaxkit runs on its portable NumPy path.  The JAX one (XLA
FFI handlers over the same kernels) is built only where jaxlib's headers can be
found, i.e. ``jax.ffi.include_dir()`` imports in the building interpreter; pip's
isolated build environment has no jax, so ``make setup`` builds it in a second,
non-isolated pass against the jaxlib it has just installed (the headers then match
the jaxlib that loads the handlers).
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
            # (jaxlib's FFI headers warn about themselves under GCC: not ours to fix)
            std = (
                ["-std=c++17", "-Wno-attributes", "-Wno-return-type"]
                if ext.language == "c++"
                else []
            )
            ext.extra_compile_args = ["-O3", "-fno-trapping-math", *std, *extra]
            ext.extra_link_args = list(extra) if extra is OPENMP else []
            try:
                super().build_extension(ext)
                return
            except Exception as exc:  # a CompileError, LinkError or a missing compiler
                error = exc
        print(
            f"warning: softmaxkit's extension {ext.name} was not built ({error}); "
            "the portable path will be used",
            file=sys.stderr,
        )


def _jax_include() -> str | None:
    """jaxlib's header folder (``xla/ffi/api/ffi.h``), or None where jax is not importable."""
    try:
        import jax.ffi
    except Exception:  # no jax, or one too old to have jax.ffi
        return None
    return str(jax.ffi.include_dir())


KERNEL_SOURCES = ["src/softmaxkit/_kernels/_kernels_impl.h"]
JAX_INCLUDE = _jax_include()
JAX_EXTENSIONS = (
    []
    if JAX_INCLUDE is None
    else [
        # the XLA FFI handlers for JAX on CPU, over the same kernels (_kernels_impl.h)
        Extension(
            "softmaxkit._kernels._jax_kernels",
            sources=["src/softmaxkit/_kernels/_jax_kernels.cc"],
            include_dirs=[JAX_INCLUDE],
            depends=KERNEL_SOURCES,
            language="c++",
            optional=True,
        )
    ]
)

setup(
    ext_modules=[
        Extension(
            "softmaxkit._kernels._ckernels",
            sources=["src/softmaxkit/_kernels/_ckernels.c"],
            depends=KERNEL_SOURCES,
            optional=True,
        ),
        # sparsemax and 1.5-entmax: a module of their own, built (or skipped) the same way
        Extension(
            "softmaxkit._kernels._sparse_kernels",
            sources=["src/softmaxkit/_kernels/_sparse_kernels.c"],
            optional=True,
        ),
        *JAX_EXTENSIONS,
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
