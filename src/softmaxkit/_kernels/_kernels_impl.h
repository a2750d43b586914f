/*
 * softmaxkit's CPU kernels, shared by the Python extension (_ckernels.c, NumPy and torch)
 * and the XLA FFI handlers (_jax_kernels.cc): one copy of the maths, compiled into both.
 * Everything here is static; include it after <Python.h> (for Py_ssize_t) in one translation
 * unit per extension.  Valid C and C++ (the JAX handlers compile it as C++17 with the same
 * flags, so both extensions compute the same bits).
 *
 * The softmax family in one or two passes over memory.
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
 */
#ifndef SOFTMAXKIT_KERNELS_IMPL_H
#define SOFTMAXKIT_KERNELS_IMPL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#define INLINE static inline __attribute__((always_inline))

#define BLOCK 64             /* columns per block on a non-last axis */
#define PARALLEL_MIN 131072  /* fewer elements than this: one thread is faster */
#define SHORT 16             /* rows this short take the transposed path */
#define CHUNK 1024           /* rows per task on that path */
#define SUM_PIECE 256        /* entries summed in the working dtype before double */
#define STREAM_MIN (32 << 20) /* output bytes from which the last pass streams */
#define STREAM_ROW_MIN 4096   /* entries per row below which it does not: rows of 1000
                                 streamed into a (65536, 1000) array took 1.2x the time of
                                 cached stores (streaming groups of 16 rows at once, from a
                                 scratch block in L2, was slower still: 1.46x the copy) */
#define ROW_PIECE 32         /* rows summed in the working dtype on a non-last axis */
#define SUB 8192             /* entries per piece of a long row (in cache) */
#define LONG_ROW 65536       /* softmax rows this long: long_softmax, two passes */
#define SCRATCH_MAX (1 << 20) /* longer rows are not streamed (their scratch would not stay cached) */
/* A single long row runs on one thread: on the 2-vCPU VM we measured, splitting it between
   two threads made a (1, 10^6) softmax slower (0.5 ms and, with the clones, a steady 16 ms
   of waiting that we did not get to the bottom of) than one thread (0.25 ms). */
#define LONG_PARALLEL_BYTES ((Py_ssize_t)1 << 62)

enum { OP_SOFTMAX = 0, OP_LOG_SOFTMAX = 1, OP_LOGSUMEXP = 2 };

/* Output bytes from which softmax's last pass streams; each extension has its own copy.
   The JAX handlers set it past any size (never): XLA hands them fresh results, whose
   pages the system zeroes on first touch, and cached stores into those were faster than
   streaming ((4096, 32000) float32: 82 ms against 108 ms, with huge pages).  The fused
   cross-entropy still streams its gradient (STREAM_MIN): there streaming stayed faster
   (value_and_grad on (8192, 32000): 500 ms against 578 ms). */
static Py_ssize_t stream_min = STREAM_MIN;

/* Threads of our parallel regions: set_num_threads' count, else OpenMP's default.  Kept
   here and passed to each region by num_threads(), never by omp_set_num_threads, which
   would also change the threads of every other user of the same OpenMP runtime (PyTorch's
   intra-op pool shares libgomp with us; torch.compile refuses a count changed under it). */
static int our_threads = 0;

static int max_threads(void) {
#ifdef _OPENMP
    return our_threads > 0 ? our_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- exp ---------------------------------------------------------------------------- */

INLINE float exp_f(float x) {
    /* Clamped so that 2^k below fits two normal factors; NaN passes the comparisons. */
    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + magic;
    float kf = t - magic;
    int32_t ti;
    memcpy(&ti, &t, 4);
    int32_t k = ti - 0x4B400000; /* the bits of magic */
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k1 = k >> 1, k2 = k - k1;
    int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

INLINE double exp_d(double x) {
    x = x < -746.0 ? -746.0 : x;
    x = x > 710.0 ? 710.0 : x;
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double t = x * 1.4426950408889634074 + magic;
    double kf = t - magic;
    int64_t ti;
    memcpy(&ti, &t, 8);
    int64_t k = ti - INT64_C(0x4338000000000000);
    double r = x - kf * 6.93147180369123816490e-01;
    r = r - kf * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k1 = k >> 1, k2 = k - k1;
    int64_t b1 = (k1 + 1023) << 52, b2 = (k2 + 1023) << 52;
    double s1, s2;
    memcpy(&s1, &b1, 8);
    memcpy(&s2, &b2, 8);
    return p * s1 * s2;
}

/* exp of z <= 0 (or NaN), as softmax needs after the max shift: no upper clamp. */
INLINE float expneg_f(float x) {
    x = x < -104.0f ? -104.0f : x;
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float kf = t - magic;
    int32_t ti;
    memcpy(&ti, &t, 4);
    int32_t k = ti - 0x4B400000;
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    /* Taylor to degree 6: truncation below 1.3e-7 relative on |r| <= ln2 / 2 */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k1 = k >> 1, k2 = k - k1;
    int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

INLINE double expneg_d(double x) {
    x = x < -746.0 ? -746.0 : x;
    return exp_d(x);
}

/* ---- streaming stores ------------------------------------------------------------------
 * The last pass over a large output writes it with non-temporal stores from a per-thread
 * scratch row: the lines go to memory without first being read (no read-for-ownership),
 * so memory sees one read of x and one write of the output, as in a copy (glibc's memcpy
 * streams large copies the same way).  dst = src * a + b, rounded after the product and
 * after the sum (softmax: b = 0; log_softmax: a = 1, b = -L; cross-entropy: b = -eps / C). */
typedef void (*stream_f_fn)(const float *, float *, Py_ssize_t, float, float);
typedef void (*stream_d_fn)(const double *, double *, Py_ssize_t, double, double);

static void stream_f_plain(const float *src, float *dst, Py_ssize_t n, float a, float b) {
    for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[j] * a + b;
}

static void stream_d_plain(const double *src, double *dst, Py_ssize_t n, double a, double b) {
    for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[j] * a + b;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_STREAM 1

__attribute__((target("avx512f"))) static void stream_f_512(const float *src, float *dst,
                                                             Py_ssize_t n, float a, float b) {
    Py_ssize_t j = 0;
    for (; j < n && ((uintptr_t)(dst + j) & 63); j++) dst[j] = src[j] * a + b;
    __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (; j + 16 <= n; j += 16)
        _mm512_stream_ps(dst + j, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(src + j), va), vb));
    for (; j < n; j++) dst[j] = src[j] * a + b;
    _mm_sfence();
}

__attribute__((target("avx512f"))) static void stream_d_512(const double *src, double *dst,
                                                             Py_ssize_t n, double a, double b) {
    Py_ssize_t j = 0;
    for (; j < n && ((uintptr_t)(dst + j) & 63); j++) dst[j] = src[j] * a + b;
    __m512d va = _mm512_set1_pd(a), vb = _mm512_set1_pd(b);
    for (; j + 8 <= n; j += 8)
        _mm512_stream_pd(dst + j, _mm512_add_pd(_mm512_mul_pd(_mm512_loadu_pd(src + j), va), vb));
    for (; j < n; j++) dst[j] = src[j] * a + b;
    _mm_sfence();
}

__attribute__((target("avx"))) static void stream_f_256(const float *src, float *dst,
                                                        Py_ssize_t n, float a, float b) {
    Py_ssize_t j = 0;
    for (; j < n && ((uintptr_t)(dst + j) & 31); j++) dst[j] = src[j] * a + b;
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (; j + 8 <= n; j += 8)
        _mm256_stream_ps(dst + j, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(src + j), va), vb));
    for (; j < n; j++) dst[j] = src[j] * a + b;
    _mm_sfence();
}

__attribute__((target("avx"))) static void stream_d_256(const double *src, double *dst,
                                                        Py_ssize_t n, double a, double b) {
    Py_ssize_t j = 0;
    for (; j < n && ((uintptr_t)(dst + j) & 31); j++) dst[j] = src[j] * a + b;
    __m256d va = _mm256_set1_pd(a), vb = _mm256_set1_pd(b);
    for (; j + 4 <= n; j += 4)
        _mm256_stream_pd(dst + j, _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(src + j), va), vb));
    for (; j < n; j++) dst[j] = src[j] * a + b;
    _mm_sfence();
}
#endif

static stream_f_fn stream_f = stream_f_plain;
static stream_d_fn stream_d = stream_d_plain;

static void choose_stream(void) {
#ifdef HAVE_STREAM
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        stream_f = stream_f_512;
        stream_d = stream_d_512;
    } else if (__builtin_cpu_supports("avx")) {
        stream_f = stream_f_256;
        stream_d = stream_d_256;
    }
#endif
}

/* ---- the kernels, once per dtype ------------------------------------------------------ */

#define DEFINE_KERNELS(T, SUF, EXP, EXPNEG)                                                          \
                                                                                             \
    INLINE T max_##SUF(const T *x, Py_ssize_t n) {                                           \
        T m = -INFINITY;                                                                     \
        _Pragma("omp simd reduction(max : m)")                                               \
        for (Py_ssize_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;                          \
        return m;                                                                            \
    }                                                                                        \
    /* A slice whose max (NaN ignored) is not finite, or that holds NaN: scalar, rare. */   \
    static void special_##SUF(const T *x, Py_ssize_t n, Py_ssize_t stride, T *out, T m,      \
                              int op) {                                                      \
        int nan = 0;                                                                         \
        Py_ssize_t count = 0;                                                                \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            T v = x[j * stride];                                                             \
            nan |= v != v;                                                                   \
            count += v == INFINITY;                                                          \
        }                                                                                    \
        if (op == OP_LOGSUMEXP) {                                                            \
            out[0] = nan ? (T)NAN : m;                                                       \
            return;                                                                          \
        }                                                                                    \
        /* 0 - log(count), not -log(count): a lone +inf entry gets log(1) = +0, not -0 */    \
        T share = op == OP_SOFTMAX ? (T)1 / (T)count : (T)(0.0 - log((double)count));        \
        T other = op == OP_SOFTMAX ? (T)0 : (T)-INFINITY;                                    \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            T v = x[j * stride];                                                             \
            out[j * stride] = nan ? (T)NAN : (m == INFINITY && v == INFINITY ? share : other); \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* Pass 2 of a row (or of a piece of one): out = exp(z) (softmax) or z (log_softmax),    \
       with z = (x - m) / t; returns the sum of exp(z) over the entries with z != 0 and      \
       counts those with z == 0 in *top.  "omp simd reduction" lets the sums be reassociated \
       into vector lanes (a strict left-to-right sum would not vectorise); hand-written lane \
       arrays with a select inside were miscompiled by GCC 12 at -O3. */                     \
    INLINE double sumexp_##SUF(const T *x, T *out, Py_ssize_t n, T m, T t, int op,           \
                               double *top_out) {                                            \
        double s = 0, top = 0;                                                               \
        if (op == OP_SOFTMAX) {                                                              \
            /* Partial sums in T over pieces of SUM_PIECE entries (a few per vector lane, so \
               float32 loses nothing measurable), added up in double: no conversion per entry. */\
            for (Py_ssize_t j0 = 0; j0 < n; j0 += SUM_PIECE) {                               \
                Py_ssize_t j1 = j0 + SUM_PIECE < n ? j0 + SUM_PIECE : n;                     \
                T piece = 0;                                                                 \
                if (t == 1) {                                                                \
                    _Pragma("omp simd reduction(+ : piece)")                                 \
                    for (Py_ssize_t j = j0; j < j1; j++) {                                   \
                        T e = EXPNEG(x[j] - m);                                              \
                        out[j] = e;                                                          \
                        piece += e;                                                          \
                    }                                                                        \
                } else {                                                                     \
                    _Pragma("omp simd reduction(+ : piece)")                                 \
                    for (Py_ssize_t j = j0; j < j1; j++) {                                   \
                        T e = EXPNEG((x[j] - m) / t);                                        \
                        out[j] = e;                                                          \
                        piece += e;                                                          \
                    }                                                                        \
                }                                                                            \
                s += piece;                                                                  \
            }                                                                                \
        } else {                                                                             \
            for (Py_ssize_t j0 = 0; j0 < n; j0 += SUM_PIECE) {                               \
                Py_ssize_t j1 = j0 + SUM_PIECE < n ? j0 + SUM_PIECE : n;                     \
                T piece = 0, count = 0;                                                      \
                if (op == OP_LOG_SOFTMAX) {                                                  \
                    _Pragma("omp simd reduction(+ : piece, count)")                          \
                    for (Py_ssize_t j = j0; j < j1; j++) {                                   \
                        T z = (x[j] - m) / t;                                                \
                        out[j] = z;                                                          \
                        T e = EXPNEG(z);                                                     \
                        piece += z == 0 ? (T)0 : e;                                          \
                        count += z == 0 ? (T)1 : (T)0;                                       \
                    }                                                                        \
                } else {                                                                     \
                    _Pragma("omp simd reduction(+ : piece, count)")                          \
                    for (Py_ssize_t j = j0; j < j1; j++) {                                   \
                        T z = x[j] - m;                                                      \
                        T e = EXPNEG(z);                                                     \
                        piece += z == 0 ? (T)0 : e;                                          \
                        count += z == 0 ? (T)1 : (T)0;                                       \
                    }                                                                        \
                }                                                                            \
                s += piece;                                                                  \
                top += count;                                                                \
            }                                                                                \
        }                                                                                    \
        *top_out = top;                                                                      \
        return s;                                                                            \
    }                                                                                        \
                                                                                             \
    /* Pass 3: softmax multiplies by 1 / sum, log_softmax subtracts log(sum) = log1p(r) with \
       r = sum - 1 formed without the sum (the z == 0 terms count 1 each). */                \
    INLINE void finish_##SUF(T *out, Py_ssize_t n, double s, double top, int op) {           \
        if (op == OP_SOFTMAX) {                                                              \
            T d = (T)(1 / s); /* a multiply per entry: a divide would cost more than memory */\
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = 0; j < n; j++) out[j] = out[j] * d;                          \
        } else {                                                                             \
            T L = (T)log1p(s + (top - 1));                                                   \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = 0; j < n; j++) out[j] = out[j] - L;                          \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* One contiguous row.  For OP_LOGSUMEXP, out is the single result. */                   \
    INLINE void row_##SUF(const T *x, T *out, Py_ssize_t n, T t, int op, T *scratch) {       \
        T m = max_##SUF(x, n);                                                               \
        if (!(m > -INFINITY && m < INFINITY)) {                                              \
            special_##SUF(x, n, 1, out, m, op);                                              \
            return;                                                                          \
        }                                                                                    \
        double top, s = sumexp_##SUF(x, scratch ? scratch : out, n, m, t, op, &top);         \
        if (op == OP_LOGSUMEXP)                                                              \
            out[0] = (T)(log1p(s + (top - 1)) + (double)m);                                  \
        else if (scratch)                                                                    \
            stream_##SUF(scratch, out, n, op == OP_SOFTMAX ? (T)(1 / s) : (T)1,                  \
                         op == OP_SOFTMAX ? (T)0 : -(T)log1p(s + (top - 1)));                \
        else                                                                                 \
            finish_##SUF(out, n, s, top, op);                                                \
    }                                                                                        \
    /* Softmax of a long row shared between threads in two passes over memory: each piece of \
       SUB entries (cache-resident) is shifted by its own max while it is in cache, and the  \
       second pass rescales it by exp((m_piece - M) / t) / S once the row's max M and sum S  \
       are known.  Returns 0 where the row's max is not finite (the caller takes the row). */\
    CLONES static int long_softmax_##SUF(const T *x, T *out, Py_ssize_t n, T t) {                   \
        Py_ssize_t pieces = (n + SUB - 1) / SUB;                                             \
        double *pm = (double *)malloc((size_t)pieces * sizeof(double));                      \
        double *ps = (double *)malloc((size_t)pieces * sizeof(double));                      \
        if (!pm || !ps) {                                                                    \
            free(pm);                                                                        \
            free(ps);                                                                        \
            return 0;                                                                        \
        }                                                                                    \
        double M = -INFINITY, S = 0;                                                         \
        /* one thread: see LONG_PARALLEL_BYTES */                                            \
        int par = n * (Py_ssize_t)sizeof(T) > LONG_PARALLEL_BYTES;                           \
        _Pragma("omp parallel if(par) num_threads(max_threads())")                                                      \
        {                                                                                    \
            _Pragma("omp for schedule(static)")                                              \
            for (Py_ssize_t k = 0; k < pieces; k++) {                                        \
                Py_ssize_t lo = k * SUB, hi = lo + SUB < n ? lo + SUB : n;                   \
                T mb = max_##SUF(x + lo, hi - lo);                                           \
                pm[k] = (double)mb;                                                          \
                if (mb > -INFINITY && mb < INFINITY) {                                       \
                    double top;                                                              \
                    ps[k] = sumexp_##SUF(x + lo, out + lo, hi - lo, mb, t, OP_SOFTMAX, &top);\
                } else {                                                                     \
                    /* the whole row is left to the caller if M is not finite; nothing is     \
                       written here, so that in place (out == x) the caller still finds the  \
                       +inf entries (and NaN, which the pieces written keep) */              \
                    ps[k] = 0;                                                               \
                    for (Py_ssize_t j = lo; j < hi; j++)                                     \
                        if (x[j] != x[j]) ps[k] = NAN; /* a NaN among -inf: NaN row */       \
                }                                                                            \
            }                                                                                \
            _Pragma("omp single")                                                            \
            {                                                                                \
                for (Py_ssize_t k = 0; k < pieces; k++) M = pm[k] > M ? pm[k] : M;           \
                if (M > -INFINITY && M < INFINITY)                                           \
                    for (Py_ssize_t k = 0; k < pieces; k++)                                  \
                        S += pm[k] > -INFINITY ? ps[k] * exp((pm[k] - M) / (double)t) : ps[k];\
            }                                                                                \
            if (M > -INFINITY && M < INFINITY) {                                             \
                _Pragma("omp for schedule(static)")                                          \
                for (Py_ssize_t k = 0; k < pieces; k++) {                                    \
                    Py_ssize_t lo = k * SUB, hi = lo + SUB < n ? lo + SUB : n;               \
                    T f = pm[k] > -INFINITY ? (T)(exp((pm[k] - M) / (double)t) / S) : (T)0;  \
                    if (S != S) f = (T)NAN;                                                  \
                    if (pm[k] > -INFINITY) {                                                 \
                        _Pragma("omp simd")                                                  \
                        for (Py_ssize_t j = lo; j < hi; j++) out[j] = out[j] * f;            \
                    } else { /* an all -inf piece, not written in pass 1: 0 (NaN row: NaN) */\
                        for (Py_ssize_t j = lo; j < hi; j++) out[j] = f;                     \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        free(pm);                                                                            \
        free(ps);                                                                            \
        return M > -INFINITY && M < INFINITY;                                                \
    }                                                                                        \
    /* Columns c0 .. c0+w of one (n, inner) slab, reduced over n. */                        \
    INLINE void block_##SUF(const T *x, T *out, Py_ssize_t n, Py_ssize_t inner, int w, T t,  \
                            int op) {                                                        \
        T m[BLOCK], shift[BLOCK];                                                            \
        double s[BLOCK];                                                                     \
        double top[BLOCK];                                                                   \
        for (int c = 0; c < w; c++) {                                                        \
            m[c] = -INFINITY;                                                                \
            s[c] = 0;                                                                        \
            top[c] = 0;                                                                      \
        }                                                                                    \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            const T *xj = x + j * inner;                                                     \
            for (int c = 0; c < w; c++) m[c] = xj[c] > m[c] ? xj[c] : m[c];                  \
        }                                                                                    \
        int special = 0;                                                                     \
        for (int c = 0; c < w; c++) {                                                        \
            int finite = m[c] > -INFINITY && m[c] < INFINITY;                                \
            special |= !finite;                                                              \
            shift[c] = finite ? m[c] : (T)0;                                                 \
        }                                                                                    \
        /* sums per column in T over ROW_PIECE rows at a time, then in double */             \
        for (Py_ssize_t j0 = 0; j0 < n; j0 += ROW_PIECE) {                                   \
            Py_ssize_t j1 = j0 + ROW_PIECE < n ? j0 + ROW_PIECE : n;                         \
            T ps[BLOCK], pt[BLOCK];                                                          \
            for (int c = 0; c < w; c++) ps[c] = pt[c] = 0;                                   \
            for (Py_ssize_t j = j0; j < j1; j++) {                                           \
                const T *xj = x + j * inner;                                                 \
                T *oj = out + (op == OP_LOGSUMEXP ? 0 : j * inner);                          \
                if (op == OP_SOFTMAX && t == 1) {                                            \
                    for (int c = 0; c < w; c++) {                                            \
                        T e = EXPNEG(xj[c] - shift[c]);                                      \
                        oj[c] = e;                                                           \
                        ps[c] += e;                                                          \
                    }                                                                        \
                } else if (op == OP_SOFTMAX) {                                               \
                    for (int c = 0; c < w; c++) {                                            \
                        T e = EXPNEG((xj[c] - shift[c]) / t);                                \
                        oj[c] = e;                                                           \
                        ps[c] += e;                                                          \
                    }                                                                        \
                } else {                                                                     \
                    for (int c = 0; c < w; c++) {                                            \
                        T z = t == 1 ? xj[c] - shift[c] : (xj[c] - shift[c]) / t;            \
                        if (op == OP_LOG_SOFTMAX) oj[c] = z;                                 \
                        T e = EXPNEG(z);                                                     \
                        ps[c] += z == 0 ? (T)0 : e;                                          \
                        pt[c] += z == 0 ? (T)1 : (T)0;                                       \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            for (int c = 0; c < w; c++) {                                                    \
                s[c] += ps[c];                                                               \
                top[c] += pt[c];                                                             \
            }                                                                                \
        }                                                                                    \
        if (op == OP_SOFTMAX) {                                                              \
            T d[BLOCK];                                                                      \
            for (int c = 0; c < w; c++) d[c] = (T)(1 / s[c]);                                \
            for (Py_ssize_t j = 0; j < n; j++) {                                             \
                T *oj = out + j * inner;                                                     \
                for (int c = 0; c < w; c++) oj[c] = oj[c] * d[c];                            \
            }                                                                                \
        } else {                                                                             \
            if (op == OP_LOG_SOFTMAX) {                                                      \
                T L[BLOCK];                                                                  \
                for (int c = 0; c < w; c++) L[c] = (T)log1p(s[c] + (top[c] - 1));            \
                for (Py_ssize_t j = 0; j < n; j++) {                                         \
                    T *oj = out + j * inner;                                                 \
                    for (int c = 0; c < w; c++) oj[c] = oj[c] - L[c];                        \
                }                                                                            \
            } else {                                                                         \
                /* the max added to the log in double, one rounding (as in row_): the log    \
                   rounded to T first cost up to an ulp of the log, 480 ulp of a sum near 0 */ \
                for (int c = 0; c < w; c++)                                                  \
                    out[c] = (T)(log1p(s[c] + (top[c] - 1)) + (double)m[c]);                 \
            }                                                                                \
        }                                                                                    \
        if (special)                                                                         \
            for (int c = 0; c < w; c++)                                                      \
                if (!(m[c] > -INFINITY && m[c] < INFINITY))                                  \
                    special_##SUF(x + c, n, inner, out + c, m[c], op);                       \
    }                                                                                        \
                                                                                             \
    /* A block computed in place (out == x): block_ decides the columns whose max is not     \
       finite from x after it wrote the others, so a block holding such a column goes        \
       column by column, the finite ones as blocks of one (the same arithmetic per           \
       column), the others by special_, which reads each entry before writing it. */         \
    INLINE void block_in_place_##SUF(T *x, Py_ssize_t n, Py_ssize_t inner, int w, T t,       \
                                     int op) {                                               \
        T m[BLOCK];                                                                          \
        int special = 0;                                                                     \
        for (int c = 0; c < w; c++) m[c] = -INFINITY;                                        \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            const T *xj = x + j * inner;                                                     \
            for (int c = 0; c < w; c++) m[c] = xj[c] > m[c] ? xj[c] : m[c];                  \
        }                                                                                    \
        for (int c = 0; c < w; c++) special |= !(m[c] > -INFINITY && m[c] < INFINITY);       \
        if (!special) {                                                                      \
            block_##SUF(x, x, n, inner, w, t, op);                                           \
            return;                                                                          \
        }                                                                                    \
        for (int c = 0; c < w; c++)                                                          \
            if (m[c] > -INFINITY && m[c] < INFINITY)                                         \
                block_##SUF(x + c, x + c, n, inner, 1, t, op);                               \
            else                                                                             \
                special_##SUF(x + c, n, inner, x + c, m[c], op);                             \
    }                                                                                        \
                                                                                             \
    /* Short rows (n <= SHORT): BLOCK rows at a time are transposed into a small (n, BLOCK)  \
       tile, so that the vector lanes run across rows instead of along a few entries. */     \
    INLINE void short_forward_##SUF(const T *x, T *out, Py_ssize_t rows, Py_ssize_t n, T t,  \
                                    int op) {                                                \
        T tin[SHORT * BLOCK], tout[SHORT * BLOCK];                                           \
        Py_ssize_t out_n = op == OP_LOGSUMEXP ? 1 : n;                                       \
        for (Py_ssize_t r0 = 0; r0 < rows; r0 += BLOCK) {                                    \
            int w = (int)(rows - r0 < BLOCK ? rows - r0 : BLOCK);                            \
            for (int c = 0; c < w; c++)                                                      \
                for (Py_ssize_t j = 0; j < n; j++) tin[j * BLOCK + c] = x[(r0 + c) * n + j]; \
            block_##SUF(tin, tout, n, BLOCK, w, t, op);                                      \
            for (int c = 0; c < w; c++)                                                      \
                for (Py_ssize_t j = 0; j < out_n; j++)                                       \
                    out[(r0 + c) * out_n + j] = tout[j * BLOCK + c];                         \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    CLONES static void forward_##SUF(const T *x, T *out, Py_ssize_t outer, Py_ssize_t n,    \
                                     Py_ssize_t inner, T t, int op) {                        \
        Py_ssize_t out_n = op == OP_LOGSUMEXP ? 1 : n;                                       \
        int parallel = outer * n * inner >= PARALLEL_MIN;                                    \
        if (inner == 1 && n <= SHORT) {                                                      \
            Py_ssize_t chunks = (outer + CHUNK - 1) / CHUNK;                                 \
            _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                        \
            for (Py_ssize_t k = 0; k < chunks; k++) {                                        \
                Py_ssize_t r0 = k * CHUNK, rows = outer - r0 < CHUNK ? outer - r0 : CHUNK;   \
                short_forward_##SUF(x + r0 * n, out + r0 * out_n, rows, n, t, op);           \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        if (inner == 1 && op == OP_SOFTMAX && n >= LONG_ROW) {                               \
            /* Every row this long, whatever the number of rows or of threads, takes         \
               long_softmax (two passes over memory instead of three), so that a row's       \
               result depends on its values alone; rows are shared between threads. */       \
            _Pragma("omp parallel for schedule(dynamic, 1) if(parallel && outer > 1) num_threads(max_threads())") \
            for (Py_ssize_t i = 0; i < outer; i++)                                           \
                if (!long_softmax_##SUF(x + i * n, out + i * n, n, t))                       \
                    row_##SUF(x + i * n, out + i * n, n, t, op, NULL);                       \
            return;                                                                          \
        }                                                                                    \
        if (inner == 1) {                                                                    \
            /* outputs larger than the caches are streamed to memory from a scratch row;     \
               not in place (out == x), where the row is in cache from its max pass and       \
               written back once anyway: streaming it would only evict it early */          \
            int stream = op != OP_LOGSUMEXP && n <= SCRATCH_MAX && n >= STREAM_ROW_MIN &&     \
                         (const T *)out != x && outer * n * (Py_ssize_t)sizeof(T) >= stream_min; \
            _Pragma("omp parallel if(parallel) num_threads(max_threads())")                                             \
            {                                                                                \
                T *scratch = stream ? (T *)malloc((size_t)n * sizeof(T)) : NULL;             \
                _Pragma("omp for schedule(guided)")                                          \
                for (Py_ssize_t i = 0; i < outer; i++)                                       \
                    row_##SUF(x + i * n, out + i * out_n, n, t, op, scratch);                \
                free(scratch);                                                               \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        Py_ssize_t blocks = (inner + BLOCK - 1) / BLOCK;                                     \
        _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                            \
        for (Py_ssize_t ib = 0; ib < outer * blocks; ib++) {                                 \
            Py_ssize_t i = ib / blocks, c0 = (ib % blocks) * BLOCK;                          \
            int w = (int)(inner - c0 < BLOCK ? inner - c0 : BLOCK);                          \
            if (x == (const T *)out && op != OP_LOGSUMEXP)                                   \
                block_in_place_##SUF(out + i * n * inner + c0, n, inner, w, t, op);          \
            else                                                                             \
                block_##SUF(x + i * n * inner + c0, out + i * out_n * inner + c0, n, inner, w,\
                            t, op);                                                          \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* Columns c0 .. c0+w of one (n, inner) slab of the backward products. */                \
    INLINE void bblock_##SUF(const T *gi, const T *yi, T *di, Py_ssize_t n, Py_ssize_t inner,\
                             int w, int log) {                                               \
        double acc[BLOCK];                                                                   \
        T a[BLOCK];                                                                          \
        for (int c = 0; c < w; c++) acc[c] = 0;                                              \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            const T *gj = gi + j * inner, *yj = yi + j * inner;                              \
            if (log)                                                                         \
                for (int c = 0; c < w; c++) acc[c] += yj[c] == -INFINITY ? (T)0 : gj[c];     \
            else                                                                             \
                for (int c = 0; c < w; c++) acc[c] += yj[c] == 0 ? (T)0 : gj[c] * yj[c];     \
        }                                                                                    \
        for (int c = 0; c < w; c++) a[c] = (T)acc[c];                                        \
        for (Py_ssize_t j = 0; j < n; j++) {                                                 \
            const T *gj = gi + j * inner, *yj = yi + j * inner;                              \
            T *dj = di + j * inner;                                                          \
            if (log)                                                                         \
                for (int c = 0; c < w; c++)                                                  \
                    dj[c] = (yj[c] == -INFINITY ? (T)0 : gj[c]) - EXP(yj[c]) * a[c];         \
            else                                                                             \
                for (int c = 0; c < w; c++) dj[c] = yj[c] * ((yj[c] == 0 ? (T)0 : gj[c]) - a[c]);\
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    INLINE void short_backward_##SUF(const T *g, const T *y, T *dx, Py_ssize_t rows,         \
                                     Py_ssize_t n, int log) {                                \
        T tg[SHORT * BLOCK], ty[SHORT * BLOCK], td[SHORT * BLOCK];                           \
        for (Py_ssize_t r0 = 0; r0 < rows; r0 += BLOCK) {                                    \
            int w = (int)(rows - r0 < BLOCK ? rows - r0 : BLOCK);                            \
            for (int c = 0; c < w; c++)                                                      \
                for (Py_ssize_t j = 0; j < n; j++) {                                         \
                    tg[j * BLOCK + c] = g[(r0 + c) * n + j];                                 \
                    ty[j * BLOCK + c] = y[(r0 + c) * n + j];                                 \
                }                                                                            \
            bblock_##SUF(tg, ty, td, n, BLOCK, w, log);                                      \
            for (int c = 0; c < w; c++)                                                      \
                for (Py_ssize_t j = 0; j < n; j++) dx[(r0 + c) * n + j] = td[j * BLOCK + c]; \
        }                                                                                    \
    }                                                                                        \
                                                                                             \
    /* softmax: dx = p (g' - sum(g' p)); log_softmax: dx = g' - exp(y) sum(g'), where g'     \
       is g with the entries that do not depend on x (p == 0, y == -inf) set to 0. */        \
    CLONES static void backward_##SUF(const T *g, const T *y, T *dx, Py_ssize_t outer,       \
                                      Py_ssize_t n, Py_ssize_t inner, int log) {             \
        int parallel = outer * n * inner >= PARALLEL_MIN;                                    \
        if (inner == 1 && n <= SHORT) {                                                      \
            Py_ssize_t chunks = (outer + CHUNK - 1) / CHUNK;                                 \
            _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                        \
            for (Py_ssize_t k = 0; k < chunks; k++) {                                        \
                Py_ssize_t r0 = k * CHUNK, rows = outer - r0 < CHUNK ? outer - r0 : CHUNK;   \
                short_backward_##SUF(g + r0 * n, y + r0 * n, dx + r0 * n, rows, n, log);     \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        if (inner == 1) {                                                                    \
            _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                        \
            for (Py_ssize_t i = 0; i < outer; i++) {                                         \
                const T *gi = g + i * n, *yi = y + i * n;                                    \
                T *di = dx + i * n;                                                          \
                double acc = 0;                                                              \
                for (Py_ssize_t j0 = 0; j0 < n; j0 += SUM_PIECE) {                           \
                    Py_ssize_t j1 = j0 + SUM_PIECE < n ? j0 + SUM_PIECE : n;                 \
                    T piece = 0;                                                             \
                    if (log) {                                                               \
                        _Pragma("omp simd reduction(+ : piece)")                             \
                        for (Py_ssize_t j = j0; j < j1; j++)                                 \
                            piece += yi[j] == -INFINITY ? (T)0 : gi[j];                      \
                    } else {                                                                 \
                        _Pragma("omp simd reduction(+ : piece)")                             \
                        for (Py_ssize_t j = j0; j < j1; j++)                                 \
                            piece += yi[j] == 0 ? (T)0 : gi[j] * yi[j];                      \
                    }                                                                        \
                    acc += piece;                                                            \
                }                                                                            \
                T a = (T)acc;                                                                \
                if (log) {                                                                   \
                    _Pragma("omp simd")                                                      \
                    for (Py_ssize_t j = 0; j < n; j++)                                       \
                        di[j] = (yi[j] == -INFINITY ? (T)0 : gi[j]) - EXP(yi[j]) * a;        \
                } else {                                                                     \
                    _Pragma("omp simd")                                                      \
                    for (Py_ssize_t j = 0; j < n; j++)                                       \
                        di[j] = yi[j] * ((yi[j] == 0 ? (T)0 : gi[j]) - a);                   \
                }                                                                            \
            }                                                                                \
            return;                                                                          \
        }                                                                                    \
        Py_ssize_t blocks = (inner + BLOCK - 1) / BLOCK;                                     \
        _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                            \
        for (Py_ssize_t ib = 0; ib < outer * blocks; ib++) {                                 \
            Py_ssize_t i = ib / blocks, c0 = (ib % blocks) * BLOCK;                          \
            int w = (int)(inner - c0 < BLOCK ? inner - c0 : BLOCK);                          \
            bblock_##SUF(g + i * n * inner + c0, y + i * n * inner + c0, dx + i * n * inner + c0,\
                         n, inner, w, log);                                                  \
        }                                                                                    \
    }                                                                                        \
    /* Cross-entropy of class indices and its gradient, fused: per row, the max pass reads   \
       x, the exp pass writes exp(x - m) into dx (in cache), the last pass turns it into     \
       (sum(q) p - q) * scale.  q[c] = w[c] ((1 - eps) [c == t] + eps / C), as in _losses.   \
       A row whose max is not finite, or with target mass on a -inf logit, is left for the   \
       portable path: the count of such rows is returned. */                                \
    CLONES static Py_ssize_t ce_##SUF(const T *x, const int64_t *tg, const T *wt, T *dx,     \
                                      double *loss, Py_ssize_t N, Py_ssize_t C,              \
                                      int64_t ignore, double eps, double sum_w, double scale) {\
        Py_ssize_t special = 0;                                                              \
        int parallel = N * C >= PARALLEL_MIN;                                                \
        /* no dx (the loss alone): exp(z) goes to the scratch row and is dropped */          \
        int stream = !dx || N * C * (Py_ssize_t)sizeof(T) >= STREAM_MIN;                     \
        double u = eps / (double)C;                                                          \
        _Pragma("omp parallel if(parallel) reduction(+ : special) num_threads(max_threads())")                          \
        {                                                                                    \
            /* large outputs: exp(z) goes to a scratch row, dx is streamed from it */        \
            T *scratch = stream ? (T *)malloc((size_t)C * sizeof(T)) : NULL;                 \
            _Pragma("omp for schedule(guided)")                                              \
            for (Py_ssize_t i = 0; i < N; i++) {                                             \
                const T *xi = x + i * C;                                                     \
                T *di = dx ? dx + i * C : NULL;                                              \
                T *ei = scratch ? scratch : di;                                              \
                int64_t t = tg[i];                                                           \
                if (t == ignore) {                                                           \
                    /* no loss and no gradient, except that NaN logits make the row's        \
                       gradient NaN: torch's backward gives 0 * (softmax - target) there */  \
                    if (di) {                                                                \
                        T fill = 0;                                                          \
                        for (Py_ssize_t c = 0; c < C; c++)                                   \
                            if (xi[c] != xi[c]) {                                            \
                                fill = (T)NAN;                                               \
                                break;                                                       \
                            }                                                                \
                        for (Py_ssize_t c = 0; c < C; c++) di[c] = fill;                     \
                    }                                                                        \
                    loss[i] = 0;                                                             \
                    continue;                                                                \
                }                                                                            \
                T m = max_##SUF(xi, C);                                                      \
                if (!(m > -INFINITY && m < INFINITY)) {                                      \
                    special++;                                                               \
                    continue;                                                                \
                }                                                                            \
                double s = 0, top = 0, lost = 0;                                             \
                for (Py_ssize_t c0 = 0; c0 < C; c0 += SUM_PIECE) {                           \
                    Py_ssize_t c1 = c0 + SUM_PIECE < C ? c0 + SUM_PIECE : C;                 \
                    T piece = 0, count = 0, neg = 0;                                         \
                    _Pragma("omp simd reduction(+ : piece, count, neg)")                     \
                    for (Py_ssize_t c = c0; c < c1; c++) {                                   \
                        T z = xi[c] - m;                                                     \
                        T e = EXPNEG(z);                                                     \
                        ei[c] = e;                                                           \
                        piece += z == 0 ? (T)0 : e;                                          \
                        count += z == 0 ? (T)1 : (T)0;                                       \
                        neg += xi[c] == -INFINITY ? (T)1 : (T)0;                             \
                    }                                                                        \
                    s += piece;                                                              \
                    top += count;                                                            \
                    lost += neg;                                                             \
                }                                                                            \
                /* a -inf logit with target mass (the target's, or any under smoothing):     \
                   its loss is inf, and the portable path decides its gradient */            \
                if (xi[t] == -INFINITY || (eps != 0 && lost != 0)) {                         \
                    special++;                                                               \
                    continue;                                                                \
                }                                                                            \
                /* log(sum) as log1p of the non-max terms: exact for a confident row; NaN   \
                   where the row holds NaN, which a zero weight keeps (0 * lrel, as torch's    \
                   0 * NaN) while 0 * log 0 stays 0 */                                       \
                double lrel = log1p(s + (top - 1)), total = s + top;                         \
                double w_t = wt ? (double)wt[t] : 1.0;                                       \
                double main = w_t == 0 ? 0 * lrel : w_t * ((double)m - (double)xi[t] + lrel); \
                double row = (1 - eps) * main, qsum = (1 - eps) * w_t + u * sum_w;           \
                if (eps != 0) {                                                              \
                    /* each class's share u w[c] multiplied in before the sum, as the portable \
                       path's q * -log p: with logits near the largest float the sum of the  \
                       bare -log p overflowed where the loss itself is finite */             \
                    double acc = 0;                                                          \
                    if (wt) {                                                                \
                        _Pragma("omp simd reduction(+ : acc)")                               \
                        for (Py_ssize_t c = 0; c < C; c++)                                   \
                            acc += wt[c] == 0 ? 0.0 * lrel                                   \
                                              : u * (double)wt[c] * ((double)m - (double)xi[c] + lrel); \
                    } else {                                                                 \
                        _Pragma("omp simd reduction(+ : acc)")                               \
                        for (Py_ssize_t c = 0; c < C; c++) acc += u * ((double)m - (double)xi[c] + lrel); \
                    }                                                                        \
                    row += acc;                                                              \
                }                                                                            \
                loss[i] = row;                                                               \
                if (!di) continue;                                                           \
                T a = (T)(qsum * scale / total), b = (T)(u * scale);                         \
                if (eps != 0 && wt) {                                                        \
                    _Pragma("omp simd")                                                      \
                    for (Py_ssize_t c = 0; c < C; c++) di[c] = a * ei[c] - b * wt[c];        \
                } else if (scratch) {                                                        \
                    stream_##SUF(ei, di, C, a, -b);                                          \
                } else {                                                                     \
                    _Pragma("omp simd")                                                      \
                    for (Py_ssize_t c = 0; c < C; c++) di[c] = a * di[c] - b;                \
                }                                                                            \
                di[t] -= (T)((1 - eps) * w_t * scale);                                       \
            }                                                                                \
            free(scratch);                                                                   \
        }                                                                                    \
        return special;                                                                      \
    }                                                                                        \
    /* For linear cross-entropy's backward: z = exp(z - lse) * scale - smooth * scale, row by row,\
       in place (a chunk of logits becomes its gradient in one pass). */                     \
    CLONES static void chunk_grad_##SUF(T *z, const double *lse, const double *scale,        \
                                        Py_ssize_t N, Py_ssize_t C, double smooth) {         \
        int parallel = N * C >= PARALLEL_MIN;                                                \
        _Pragma("omp parallel for schedule(guided) if(parallel) num_threads(max_threads())")                            \
        for (Py_ssize_t i = 0; i < N; i++) {                                                 \
            T *zi = z + i * C;                                                               \
            T L = (T)lse[i], a = (T)scale[i], b = (T)(smooth * scale[i]);                    \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t c = 0; c < C; c++) zi[c] = EXP(zi[c] - L) * a - b;               \
        }                                                                                    \
    }                                                                                        \

DEFINE_KERNELS(float, f, exp_f, expneg_f)
DEFINE_KERNELS(double, d, exp_d, expneg_d)

#endif /* SOFTMAXKIT_KERNELS_IMPL_H */
