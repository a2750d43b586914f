/*
 * softmaxkit's compiled CPU kernels: the softmax family in one or two passes over memory.
 *
 * Every kernel sees a C-contiguous array as (outer, n, inner) and reduces the n axis.
 * inner == 1 is the fast path: each row of n values stays in cache between its passes,
 * so memory is read once and written once, like a copy.  inner > 1 (a non-last axis)
 * works on blocks of BLOCK neighbouring columns, which are contiguous in memory.
 *
 * The semantics are those of softmaxkit._softmax (see its docstrings): +inf entries share
 * the mass, an all -inf slice gives zeros / -inf, NaN fills its own slice only, and
 * log-probabilities use log1p of the non-max terms.  Sums are accumulated in double.
 *
 * exp is our own (Cody-Waite reduction, Taylor polynomial, exponent built from bits) so
 * that the compiler can vectorise every loop without -ffast-math, which would break the
 * handling of infinities and NaN.  Relative error: a few ulp in float32 and float64.
 *
 * Arrays arrive through the buffer protocol; no NumPy headers are needed to build.
 *
 * The kernels themselves are in _kernels_impl.h (shared with the JAX FFI handlers of
 * _jax_kernels.cc); this file holds the Python bindings.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_kernels_impl.h"


/* ---- Python bindings ------------------------------------------------------------------ */

static int check(Py_buffer *b, const char *name, Py_ssize_t count, Py_ssize_t itemsize) {
    if (b->len != count * itemsize || b->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "`%s` holds %zd bytes; the kernel expected %zd", name,
                     b->len, count * itemsize);
        return 0;
    }
    return 1;
}

/* forward(x, out, outer, n, inner, temperature, op, double) */
static PyObject *py_forward(PyObject *self, PyObject *args) {
    Py_buffer x, out;
    Py_ssize_t outer, n, inner;
    double t;
    int op, dbl;
    if (!PyArg_ParseTuple(args, "y*w*nnndii", &x, &out, &outer, &n, &inner, &t, &op, &dbl))
        return NULL;
    Py_ssize_t size = dbl ? 8 : 4;
    Py_ssize_t out_n = op == OP_LOGSUMEXP ? 1 : n;
    int ok = check(&x, "x", outer * n * inner, size) &&
             check(&out, "out", outer * out_n * inner, size);
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (dbl)
            forward_d((const double *)x.buf, (double *)out.buf, outer, n, inner, t, op);
        else
            forward_f((const float *)x.buf, (float *)out.buf, outer, n, inner, (float)t, op);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* forward_ptr(x, out, outer, n, inner, temperature, op, double): as forward, on the
   addresses of two C-contiguous buffers (torch tensors) that the caller keeps alive and
   sized; no buffer objects, so the call costs what the kernel costs on small input. */
static PyObject *py_forward_ptr(PyObject *self, PyObject *args) {
    unsigned long long x, out;
    Py_ssize_t outer, n, inner;
    double t;
    int op, dbl;
    if (!PyArg_ParseTuple(args, "KKnnndii", &x, &out, &outer, &n, &inner, &t, &op, &dbl))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (dbl)
        forward_d((const double *)(uintptr_t)x, (double *)(uintptr_t)out, outer, n, inner, t, op);
    else
        forward_f((const float *)(uintptr_t)x, (float *)(uintptr_t)out, outer, n, inner, (float)t,
                  op);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* backward_ptr(g, y, dx, outer, n, inner, log, double): backward on addresses. */
static PyObject *py_backward_ptr(PyObject *self, PyObject *args) {
    unsigned long long g, y, dx;
    Py_ssize_t outer, n, inner;
    int log, dbl;
    if (!PyArg_ParseTuple(args, "KKKnnnii", &g, &y, &dx, &outer, &n, &inner, &log, &dbl))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (dbl)
        backward_d((const double *)(uintptr_t)g, (const double *)(uintptr_t)y,
                   (double *)(uintptr_t)dx, outer, n, inner, log);
    else
        backward_f((const float *)(uintptr_t)g, (const float *)(uintptr_t)y,
                   (float *)(uintptr_t)dx, outer, n, inner, log);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* backward(g, y, dx, outer, n, inner, log, double) */
static PyObject *py_backward(PyObject *self, PyObject *args) {
    Py_buffer g, y, dx;
    Py_ssize_t outer, n, inner;
    int log, dbl;
    if (!PyArg_ParseTuple(args, "y*y*w*nnnii", &g, &y, &dx, &outer, &n, &inner, &log, &dbl))
        return NULL;
    Py_ssize_t size = dbl ? 8 : 4, count = outer * n * inner;
    int ok = check(&g, "grad", count, size) && check(&y, "y", count, size) &&
             check(&dx, "dx", count, size);
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (dbl)
            backward_d((const double *)g.buf, (const double *)y.buf, (double *)dx.buf, outer, n,
                       inner, log);
        else
            backward_f((const float *)g.buf, (const float *)y.buf, (float *)dx.buf, outer, n,
                       inner, log);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&g);
    PyBuffer_Release(&y);
    PyBuffer_Release(&dx);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* cross_entropy(x, target, weight or None, dx or None, loss, N, C, ignore, eps, sum_w, scale,
   double): without dx only the row losses are computed. */
static PyObject *py_cross_entropy(PyObject *self, PyObject *args) {
    Py_buffer x, tg, loss, w = {0}, dx = {0};
    PyObject *weight, *grad;
    Py_ssize_t N, C;
    long long ignore;
    double eps, sum_w, scale;
    int dbl;
    if (!PyArg_ParseTuple(args, "y*y*OOw*nnLdddi", &x, &tg, &weight, &grad, &loss, &N, &C,
                          &ignore, &eps, &sum_w, &scale, &dbl))
        return NULL;
    Py_ssize_t size = dbl ? 8 : 4, special = 0;
    int has_w = weight != Py_None, has_dx = grad != Py_None;
    int ok = !has_w || PyObject_GetBuffer(weight, &w, PyBUF_SIMPLE) == 0;
    if (!ok) has_w = 0;
    if (ok && has_dx && PyObject_GetBuffer(grad, &dx, PyBUF_WRITABLE) != 0) ok = has_dx = 0;
    ok = ok && check(&x, "x", N * C, size) && (!has_dx || check(&dx, "dx", N * C, size)) &&
         check(&tg, "target", N, 8) && check(&loss, "loss", N, 8) &&
         (!has_w || check(&w, "weight", C, size));
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (dbl)
            special = ce_d((const double *)x.buf, (const int64_t *)tg.buf,
                           has_w ? (const double *)w.buf : NULL,
                           has_dx ? (double *)dx.buf : NULL,
                           (double *)loss.buf, N, C, (int64_t)ignore, eps, sum_w, scale);
        else
            special = ce_f((const float *)x.buf, (const int64_t *)tg.buf,
                           has_w ? (const float *)w.buf : NULL,
                           has_dx ? (float *)dx.buf : NULL,
                           (double *)loss.buf, N, C, (int64_t)ignore, eps, sum_w, scale);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&tg);
    PyBuffer_Release(&loss);
    if (has_dx) PyBuffer_Release(&dx);
    if (has_w) PyBuffer_Release(&w);
    if (!ok) return NULL;
    return PyLong_FromSsize_t(special);
}

/* chunk_grad(z, lse, scale, N, C, smooth, double) */
static PyObject *py_chunk_grad(PyObject *self, PyObject *args) {
    Py_buffer z, lse, scale;
    Py_ssize_t N, C;
    double smooth;
    int dbl;
    if (!PyArg_ParseTuple(args, "w*y*y*nndi", &z, &lse, &scale, &N, &C, &smooth, &dbl))
        return NULL;
    int ok = check(&z, "z", N * C, dbl ? 8 : 4) && check(&lse, "lse", N, 8) &&
             check(&scale, "scale", N, 8);
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        if (dbl)
            chunk_grad_d((double *)z.buf, (const double *)lse.buf, (const double *)scale.buf, N,
                         C, smooth);
        else
            chunk_grad_f((float *)z.buf, (const double *)lse.buf, (const double *)scale.buf, N,
                         C, smooth);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&z);
    PyBuffer_Release(&lse);
    PyBuffer_Release(&scale);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    if (n > 0) our_threads = n;
    Py_RETURN_NONE;
}

static PyObject *py_num_threads(PyObject *self, PyObject *args) {
    return PyLong_FromLong(max_threads());
}

static PyMethodDef methods[] = {
    {"forward", py_forward, METH_VARARGS, "softmax / log_softmax / logsumexp over (outer, n, inner)"},
    {"backward", py_backward, METH_VARARGS, "softmax_backward / log_softmax_backward"},
    {"forward_ptr", py_forward_ptr, METH_VARARGS, "forward on buffer addresses"},
    {"backward_ptr", py_backward_ptr, METH_VARARGS, "backward on buffer addresses"},
    {"cross_entropy", py_cross_entropy, METH_VARARGS, "fused cross-entropy rows and gradient"},
    {"chunk_grad", py_chunk_grad, METH_VARARGS, "exp(z - lse) * scale - smooth * scale"},
    {"set_num_threads", py_set_num_threads, METH_VARARGS, "threads of later calls"},
    {"num_threads", py_num_threads, METH_NOARGS, "threads a call may use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ckernels(void) {
    choose_stream();
    return PyModule_Create(&module);
}
