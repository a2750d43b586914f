/*
 * softmaxkit's compiled kernels for sparsemax and 1.5-entmax, row by row.
 *
 * Each row (a C-contiguous run of n floats or doubles) is shifted by its max, so the
 * threshold tau lies in [-1, 0): the max's own entry is 0 and gets at most 1.  Entries
 * at or below -1 can then never be in the support; the others are copied (in double)
 * into a per-thread buffer, usually a small fraction of the row, and tau is found there
 * without a sort:
 *
 * - sparsemax: Michelot's algorithm, tau = (sum_S z - 1) / |S| over the candidates S,
 *   then the entries at or below tau dropped, until none is.  tau only grows, so each
 *   round is Newton's step on the piecewise-linear sum [z - tau]_+ - 1 and the last is
 *   exact (the closed form on the true support).
 * - 1.5-entmax: Newton's method on f(tau) = sum [z/2 - tau]_+^2 - 1, convex and
 *   decreasing, from tau = -1 where f >= 0: the iterates rise monotonically to the root
 *   (never past it), dropping entries as tau passes them, and converge quadratically.
 *
 * Both take expected linear time per row.  Rows are shared among OpenMP threads, each
 * row computed by one thread in a fixed order, so the result does not depend on the
 * number of threads.  The edge cases are those of the portable path: a row holding NaN
 * gives NaN, an all -inf row gives 0, +inf entries share the mass equally.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { SPARSEMAX = 0, ENTMAX15 = 1 };

/* Rows below this many elements in all run on the calling thread: a parallel region
   costs more than it saves there. */
#define PARALLEL_MIN 32768

#define DEFINE_ROW(T, NAME)                                                                 \
    static void NAME(const T *x, T *out, Py_ssize_t n, int op, double *buf) {                \
        /* the max, vectorised; `bad` is 0 unless an entry is NaN or infinite (v * 0 is      \
           NaN then), which sends the row to the scalar checks below */                      \
        T m = -INFINITY, bad = 0;                                                            \
        _Pragma("omp simd reduction(max : m) reduction(+ : bad)")                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            m = x[i] > m ? x[i] : m;                                                         \
            bad += x[i] * (T)0;                                                              \
        }                                                                                    \
        if (bad != 0) {                                                                      \
            int nan = 0;                                                                     \
            m = -INFINITY;                                                                   \
            for (Py_ssize_t i = 0; i < n; i++) {                                             \
                nan |= x[i] != x[i];                                                         \
                m = x[i] > m ? x[i] : m;                                                     \
            }                                                                                \
            if (nan || m == -INFINITY) {                                                     \
                T fill = nan ? (T)NAN : (T)0;                                                \
                for (Py_ssize_t i = 0; i < n; i++) out[i] = fill;                            \
                return;                                                                      \
            }                                                                                \
            if (m == INFINITY) {                                                             \
                Py_ssize_t count = 0;                                                        \
                for (Py_ssize_t i = 0; i < n; i++) count += x[i] == INFINITY;                \
                T share = (T)(1.0 / (double)count);                                          \
                for (Py_ssize_t i = 0; i < n; i++) out[i] = x[i] == INFINITY ? share : (T)0; \
                return;                                                                      \
            }                                                                                \
        }                                                                                    \
        const double scale = op == ENTMAX15 ? 0.5 : 1.0, mm = (double)m;                     \
        /* candidates: z > -1, tested first in T against a bound rounded down (a few         \
           extra candidates are harmless: the first round drops them) */                     \
        const T low = (T)(mm - 1.0 / scale) - (T)fabs(mm - 1.0 / scale) * (T)1e-6;           \
        Py_ssize_t k = 0;                                                                    \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            if (x[i] > low) buf[k++] = ((double)x[i] - mm) * scale;                          \
        }                                                                                    \
        double tau = -1.0;                                                                   \
        if (op == SPARSEMAX) {                                                               \
            for (;;) {                                                                       \
                double s = 0.0;                                                              \
                for (Py_ssize_t j = 0; j < k; j++) s += buf[j];                              \
                tau = (s - 1.0) / (double)k;                                                 \
                Py_ssize_t kept = 0;                                                         \
                for (Py_ssize_t j = 0; j < k; j++)                                           \
                    if (buf[j] > tau) buf[kept++] = buf[j];                                  \
                if (kept == k) break;                                                        \
                k = kept;                                                                    \
            }                                                                                \
        } else {                                                                             \
            for (int it = 0; it < 200; it++) {                                               \
                double s1 = 0.0, s2 = 0.0;                                                   \
                Py_ssize_t kept = 0;                                                         \
                for (Py_ssize_t j = 0; j < k; j++) {                                         \
                    double d = buf[j] - tau;                                                 \
                    if (d > 0) {                                                             \
                        s1 += d;                                                             \
                        s2 += d * d;                                                         \
                        buf[kept++] = buf[j];                                                \
                    }                                                                        \
                }                                                                            \
                k = kept;                                                                    \
                double f = s2 - 1.0;                                                         \
                if (!(f > 0.0)) break; /* at the root (to rounding) */                       \
                double step = f / (2.0 * s1), next = tau + step;                             \
                if (!(next > tau)) break; /* no more progress in double */                   \
                tau = next;                                                                  \
                /* the error after a step is of the order of the step squared */             \
                if (step < 1e-9 * fabs(tau) && it > 0) {                                     \
                    double t1 = 0.0, t2 = 0.0;                                               \
                    for (Py_ssize_t j = 0; j < k; j++) {                                     \
                        double d = buf[j] - tau;                                             \
                        if (d > 0) {                                                         \
                            t1 += d;                                                         \
                            t2 += d * d;                                                     \
                        }                                                                    \
                    }                                                                        \
                    if (t1 > 0 && t2 > 1.0) tau += (t2 - 1.0) / (2.0 * t1);                  \
                    break;                                                                   \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        _Pragma("omp simd")                                                                  \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            double d = ((double)x[i] - mm) * scale - tau;                                    \
            out[i] = d > 0 ? (T)(op == ENTMAX15 ? d * d : d) : (T)0;                         \
        }                                                                                    \
    }

DEFINE_ROW(float, row_f)
DEFINE_ROW(double, row_d)

/* dx = s g - s sum(s g) / sum(s) on the support (p > 0), 0 elsewhere; s = 1 for
   sparsemax, sqrt(p) for 1.5-entmax.  NaN in p spreads through its row's sums, as in
   the portable path. */
#define DEFINE_BACK_ROW(T, NAME)                                                            \
    static void NAME(const T *g, const T *p, T *dx, Py_ssize_t n, int op) {                  \
        double sg = 0.0, ss = 0.0;                                                           \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            double pi = (double)p[i];                                                        \
            if (pi > 0 || pi != pi) {                                                        \
                double s = op == ENTMAX15 || pi != pi ? sqrt(pi) : 1.0;                                  \
                sg += s * (double)g[i];                                              \
                ss += s;                                                                     \
            }                                                                                \
        }                                                                                    \
        double mean = sg / (ss == 0 ? 1.0 : ss);                                             \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            double pi = (double)p[i];                                                        \
            if (pi > 0 || pi != pi) {                                                        \
                double s = op == ENTMAX15 || pi != pi ? sqrt(pi) : 1.0;                                  \
                dx[i] = (T)(s * (double)g[i] - s * mean);                                    \
            } else {                                                                         \
                dx[i] = (T)0;                                                                \
            }                                                                                \
        }                                                                                    \
    }

DEFINE_BACK_ROW(float, back_row_f)
DEFINE_BACK_ROW(double, back_row_d)

static int forward(const void *x, void *out, Py_ssize_t rows, Py_ssize_t n, int op,
                   int threads, int dbl) {
    int failed = 0;
    int par = rows > 1 && rows * n >= PARALLEL_MIN && threads > 1;
#pragma omp parallel if (par) num_threads(threads) reduction(| : failed)
    {
        double *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
        if (buf == NULL) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (Py_ssize_t r = 0; r < rows; r++) {
                if (dbl)
                    row_d((const double *)x + r * n, (double *)out + r * n, n, op, buf);
                else
                    row_f((const float *)x + r * n, (float *)out + r * n, n, op, buf);
            }
        }
        free(buf);
    }
    return failed;
}

static int check(Py_buffer *b, const char *name, Py_ssize_t count, Py_ssize_t size) {
    if (b->len != count * size) {
        PyErr_Format(PyExc_ValueError, "`%s` must hold %zd bytes; got %zd", name,
                     count * size, b->len);
        return 0;
    }
    return 1;
}

/* forward(x, out, rows, n, op, threads, double) */
static PyObject *py_forward(PyObject *self, PyObject *args) {
    Py_buffer x, out;
    Py_ssize_t rows, n;
    int op, threads, dbl;
    if (!PyArg_ParseTuple(args, "y*w*nniii", &x, &out, &rows, &n, &op, &threads, &dbl))
        return NULL;
    Py_ssize_t size = dbl ? 8 : 4;
    int ok = check(&x, "x", rows * n, size) && check(&out, "out", rows * n, size);
    int failed = 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        failed = forward(x.buf, out.buf, rows, n, op, threads, dbl);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* backward(g, p, dx, rows, n, entmax15, threads, double) */
static PyObject *py_backward(PyObject *self, PyObject *args) {
    Py_buffer g, p, dx;
    Py_ssize_t rows, n;
    int e15, threads, dbl;
    if (!PyArg_ParseTuple(args, "y*y*w*nniii", &g, &p, &dx, &rows, &n, &e15, &threads, &dbl))
        return NULL;
    Py_ssize_t size = dbl ? 8 : 4;
    int ok = check(&g, "grad", rows * n, size) && check(&p, "p", rows * n, size) &&
             check(&dx, "dx", rows * n, size);
    if (ok) {
        int op = e15 ? ENTMAX15 : SPARSEMAX;
        int par = rows > 1 && rows * n >= PARALLEL_MIN && threads > 1;
        Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for schedule(static) if (par) num_threads(threads)
        for (Py_ssize_t r = 0; r < rows; r++) {
            if (dbl)
                back_row_d((const double *)g.buf + r * n, (const double *)p.buf + r * n,
                           (double *)dx.buf + r * n, n, op);
            else
                back_row_f((const float *)g.buf + r * n, (const float *)p.buf + r * n,
                           (float *)dx.buf + r * n, n, op);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&g);
    PyBuffer_Release(&p);
    PyBuffer_Release(&dx);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", py_forward, METH_VARARGS, "sparsemax / 1.5-entmax over rows"},
    {"backward", py_backward, METH_VARARGS, "their vector-Jacobian products over rows"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sparse_kernels", NULL, -1,
                                    methods};

PyMODINIT_FUNC PyInit__sparse_kernels(void) { return PyModule_Create(&module); }
