/*
 * softmaxkit's kernels as XLA FFI handlers, for JAX on CPU (softmaxkit._backends._jax).
 *
 * The maths is _kernels_impl.h, the same code the NumPy extension (_ckernels.c) runs; this
 * file only unpacks XLA's buffers and attributes.  The Python side lays every array out as
 * the kernels want it (reduced axes merged, C order: XLA's default layout for custom calls),
 * so each forward / backward operand is (..., outer, n, inner); leading dimensions (a vmap's
 * batch, see vmap_method="broadcast_all") are more of outer.  Cross-entropy operands are
 * (..., N, C) logits, (..., N) class indices, (..., C) weights: one problem per leading
 * index, each reduced on its own.
 *
 * The handlers are exported as PyCapsules (handlers()) for jax.ffi.register_ffi_target.
 * set_num_threads sets this module's thread count, which _kernels keeps equal to the NumPy
 * extension's: each extension has its own copy of the static our_threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <string>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "xla/ffi/api/ffi.h"

#include "_kernels_impl.h"

namespace ffi = xla::ffi;

namespace {

int64_t prod(ffi::Span<const int64_t> dims, size_t lo, size_t hi) {
    int64_t p = 1;
    for (size_t i = lo; i < hi; i++) p *= dims[i];
    return p;
}

/* XLA's CPU runtime allocates each large result afresh (glibc maps it anew: every page is
   zero-filled on first touch), and it does not ask for transparent huge pages, so writing a
   (4096, 32000) float32 result took more time in 4 KiB page faults than in our kernel.  As
   NumPy does for its own large arrays, ask the kernel for huge pages for the 2 MiB-aligned
   middle of a large result before the first write.  Advice only: where huge pages are off
   (or the result's pages already exist), nothing changes. */
constexpr size_t HUGE_PAGE = (size_t)2 << 20;

void advise_huge(void *data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes < 4 * HUGE_PAGE) return;
    uintptr_t lo = ((uintptr_t)data + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t hi = ((uintptr_t)data + bytes) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

void advise_huge(ffi::AnyBuffer b) { advise_huge(b.untyped_data(), b.size_bytes()); }

bool is_f32(ffi::AnyBuffer b) { return b.element_type() == ffi::F32; }
bool is_f64(ffi::AnyBuffer b) { return b.element_type() == ffi::F64; }

ffi::Error wrong_dtype(const char *what) {
    return ffi::Error::InvalidArgument(std::string("softmaxkit: ") + what +
                                       " must be float32 or float64");
}

/* softmax (op 0), log_softmax (1) or logsumexp (2, out's n is 1) of x as (outer, n, inner). */
ffi::Error Forward(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out, double temperature,
                   int32_t op) {
    auto dims = x.dimensions();
    if (dims.size() < 3) return ffi::Error::InvalidArgument("softmaxkit: x must be (outer, n, inner)");
    size_t r = dims.size();
    Py_ssize_t outer = prod(dims, 0, r - 2), n = dims[r - 2], inner = dims[r - 1];
    advise_huge(*out);
    if (is_f32(x) && out->element_type() == ffi::F32)
        forward_f(x.typed_data<float>(), out->typed_data<float>(), outer, n, inner,
                  (float)temperature, op);
    else if (is_f64(x) && out->element_type() == ffi::F64)
        forward_d(x.typed_data<double>(), out->typed_data<double>(), outer, n, inner, temperature,
                  op);
    else
        return wrong_dtype("x");
    return ffi::Error::Success();
}

/* softmax_backward (log 0: y is p) or log_softmax_backward (log 1: y is log p). */
ffi::Error Backward(ffi::AnyBuffer g, ffi::AnyBuffer y, ffi::Result<ffi::AnyBuffer> dx,
                    int32_t log) {
    auto dims = g.dimensions();
    if (dims.size() < 3) return ffi::Error::InvalidArgument("softmaxkit: grad must be (outer, n, inner)");
    size_t r = dims.size();
    Py_ssize_t outer = prod(dims, 0, r - 2), n = dims[r - 2], inner = dims[r - 1];
    if (g.element_type() != y.element_type() || g.element_count() != y.element_count())
        return ffi::Error::InvalidArgument("softmaxkit: grad and y must match");
    advise_huge(*dx);
    if (is_f32(g))
        backward_f(g.typed_data<float>(), y.typed_data<float>(), dx->typed_data<float>(), outer,
                   n, inner, log);
    else if (is_f64(g))
        backward_d(g.typed_data<double>(), y.typed_data<double>(), dx->typed_data<double>(), outer,
                   n, inner, log);
    else
        return wrong_dtype("grad");
    return ffi::Error::Success();
}

/* The fused cross-entropy of class indices, one (N, C) problem per leading index:
   rows (..., N) the per-row losses, total (...) their sum ("sum") or weighted mean ("mean",
   reduction 2; NaN when nothing is kept), special (...) the count of rows left to the
   portable path (a max that is not finite, target mass on a -inf logit), and, with dx,
   the gradient of the total (of the rows' sum for reduction 0).  The mean's denominator
   and the gradient's scale are computed here in double, as _kernels.cross_entropy_grad
   computes them on the host. */
ffi::Error CrossEntropy(ffi::AnyBuffer x, ffi::AnyBuffer target, ffi::AnyBuffer weight,
                        ffi::Result<ffi::AnyBuffer> rows, ffi::Result<ffi::AnyBuffer> total,
                        ffi::Result<ffi::Buffer<ffi::S32>> special, ffi::AnyBuffer *dx,
                        int64_t ignore, double eps, int32_t reduction, bool weighted) {
    auto dims = x.dimensions();
    if (dims.size() < 2) return ffi::Error::InvalidArgument("softmaxkit: logits must be (N, C)");
    size_t r = dims.size();
    Py_ssize_t batch = prod(dims, 0, r - 2), N = dims[r - 2], C = dims[r - 1];
    bool dbl = is_f64(x);
    if (!dbl && !is_f32(x)) return wrong_dtype("logits");
    if (weight.element_type() != x.element_type() || rows->element_type() != x.element_type())
        return ffi::Error::InvalidArgument("softmaxkit: weight and losses must match the logits");
    bool t32 = target.element_type() == ffi::S32;
    if (!t32 && target.element_type() != ffi::S64)
        return ffi::Error::InvalidArgument("softmaxkit: target must be int32 or int64");
    std::vector<int64_t> t(N);
    std::vector<double> loss(N);
    for (Py_ssize_t b = 0; b < batch; b++) {
        for (Py_ssize_t i = 0; i < N; i++) {
            int64_t v = t32 ? (int64_t)target.typed_data<int32_t>()[b * N + i]
                            : target.typed_data<int64_t>()[b * N + i];
            // the host checks the values of concrete targets; a traced one is checked here,
            // so that no index reads outside its row
            if (v != ignore && (v < 0 || v >= C))
                return ffi::Error::InvalidArgument(
                    "softmaxkit: `target` holds class index " + std::to_string(v) + " at row " +
                    std::to_string(i) + "; expected [0, " + std::to_string(C) +
                    ") or ignore_index " + std::to_string(ignore));
            t[i] = v;
        }
        double denominator = 0, sum_w = 0;
        const void *wb = (const char *)weight.untyped_data() + b * C * (dbl ? 8 : 4);
        for (Py_ssize_t i = 0; i < N; i++)
            if (t[i] != ignore)
                denominator += weighted ? (dbl ? ((const double *)wb)[t[i]]
                                               : (double)((const float *)wb)[t[i]])
                                        : 1.0;
        if (weighted)
            for (Py_ssize_t c = 0; c < C; c++)
                sum_w += dbl ? ((const double *)wb)[c] : (double)((const float *)wb)[c];
        else
            sum_w = (double)C;
        double scale = 1.0;
        if (reduction == 2) scale = denominator != 0 ? 1.0 / denominator : 0.0;
        Py_ssize_t count;
        if (dbl)
            count = ce_d(x.typed_data<double>() + b * N * C, t.data(),
                         weighted ? (const double *)wb : nullptr,
                         dx ? dx->typed_data<double>() + b * N * C : nullptr, loss.data(), N, C,
                         ignore, eps, sum_w, scale);
        else
            count = ce_f(x.typed_data<float>() + b * N * C, t.data(),
                         weighted ? (const float *)wb : nullptr,
                         dx ? dx->typed_data<float>() + b * N * C : nullptr, loss.data(), N, C,
                         ignore, eps, sum_w, scale);
        double sum = 0;
        for (Py_ssize_t i = 0; i < N; i++) sum += loss[i];
        double tot = reduction == 2 ? (denominator != 0 ? sum / denominator : NAN) : sum;
        if (dbl) {
            for (Py_ssize_t i = 0; i < N; i++) rows->typed_data<double>()[b * N + i] = loss[i];
            total->typed_data<double>()[b] = tot;
        } else {
            for (Py_ssize_t i = 0; i < N; i++) rows->typed_data<float>()[b * N + i] = (float)loss[i];
            total->typed_data<float>()[b] = (float)tot;
        }
        special->typed_data()[b] = (int32_t)count;
    }
    return ffi::Error::Success();
}

ffi::Error CrossEntropyLoss(ffi::AnyBuffer x, ffi::AnyBuffer target, ffi::AnyBuffer weight,
                            ffi::Result<ffi::AnyBuffer> rows, ffi::Result<ffi::AnyBuffer> total,
                            ffi::Result<ffi::Buffer<ffi::S32>> special, int64_t ignore, double eps,
                            int32_t reduction, bool weighted) {
    return CrossEntropy(x, target, weight, rows, total, special, nullptr, ignore, eps, reduction,
                        weighted);
}

ffi::Error CrossEntropyGrad(ffi::AnyBuffer x, ffi::AnyBuffer target, ffi::AnyBuffer weight,
                            ffi::Result<ffi::AnyBuffer> rows, ffi::Result<ffi::AnyBuffer> total,
                            ffi::Result<ffi::Buffer<ffi::S32>> special,
                            ffi::Result<ffi::AnyBuffer> dx, int64_t ignore, double eps,
                            int32_t reduction, bool weighted) {
    if (dx->element_type() != x.element_type())
        return ffi::Error::InvalidArgument("softmaxkit: dx must match the logits");
    // (no huge pages for the gradient: streamed into them, value_and_grad on (8192, 32000)
    // took 588 ms against 500 ms with 4 KiB pages)
    ffi::AnyBuffer d = *dx;
    return CrossEntropy(x, target, weight, rows, total, special, &d, ignore, eps, reduction,
                        weighted);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(skk_forward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<double>("temperature")
                                  .Attr<int32_t>("op"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(skk_backward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("log"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(skk_ce_loss, CrossEntropyLoss,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Attr<int64_t>("ignore")
                                  .Attr<double>("eps")
                                  .Attr<int32_t>("reduction")
                                  .Attr<bool>("weighted"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(skk_ce_grad, CrossEntropyGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("ignore")
                                  .Attr<double>("eps")
                                  .Attr<int32_t>("reduction")
                                  .Attr<bool>("weighted"));

/* ---- Python module ------------------------------------------------------------------- */

static PyObject *capsule(void *fn) { return PyCapsule_New(fn, nullptr, nullptr); }

static PyObject *py_handlers(PyObject *, PyObject *) {
    return Py_BuildValue("{s:N,s:N,s:N,s:N}", "softmaxkit_forward",
                         capsule(reinterpret_cast<void *>(skk_forward)), "softmaxkit_backward",
                         capsule(reinterpret_cast<void *>(skk_backward)), "softmaxkit_ce_loss",
                         capsule(reinterpret_cast<void *>(skk_ce_loss)), "softmaxkit_ce_grad",
                         capsule(reinterpret_cast<void *>(skk_ce_grad)));
}

static PyObject *py_set_num_threads(PyObject *, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return nullptr;
    if (n > 0) our_threads = n;
    Py_RETURN_NONE;
}

static PyObject *py_num_threads(PyObject *, PyObject *) { return PyLong_FromLong(max_threads()); }

static PyMethodDef methods[] = {
    {"handlers", py_handlers, METH_NOARGS, "name -> PyCapsule of each XLA FFI handler"},
    {"set_num_threads", py_set_num_threads, METH_VARARGS, "threads of later calls"},
    {"num_threads", py_num_threads, METH_NOARGS, "threads a call may use"},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jax_kernels", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__jax_kernels(void) {
    choose_stream();
    stream_min = (Py_ssize_t)1 << 62;  // softmax never streams here (see _kernels_impl.h)
    return PyModule_Create(&module);
}
