/* Exact block-format kernels for tqpinn.quant.fastpath (compiled on first use, called via ctypes).
 *
 * tq_quantize: FP32 matrix -> any of: integer elements + 8-bit block exponents (packed), FP32
 *              values on the grid (fake-quant), bfloat16 values (exact for up to 8-bit
 *              elements), in one pass; tqpinn.formats semantics, integer elements, round half
 *              to even.
 * tq_unpack:   elements + exponents -> FP32 values and/or bfloat16 values (up to 8 bits).
 * tq_difference, tq_difference_backward: the DiffQuant activation identities and their
 *              partials, fused (see their comment); tq_difference_streams(_backward): a layer
 *              of difference streams through the activation in one pass.
 * tq_gemm:     C (M x N, FP32) = A (M x K) * B (N x K)^T from bfloat16 operands with AVX512-BF16
 *              dot products: every product of two bfloat16 values is exact in FP32 and the sums
 *              are FP32 additions rounded to nearest even (VDPBF16PS, which also flushes
 *              subnormal inputs and outputs to zero). Built only with -mavx512bf16.
 *
 * tq_quantize and tq_unpack are plain C that the compiler vectorises for the instruction set the
 * build targets (AVX-512, AVX2, or the baseline); their results do not depend on it: every step
 * is exact or correctly rounded (a multiply by a power of two, round-half-even, a clamp).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements (or multiply-adds) a kernel runs on one thread: waking a team costs
 * more than the work, and far more on an oversubscribed machine. */
#define PARALLEL_MIN 65536

#define MIN_EXP (-126)
#define MAX_EXP 127
#define NAN_EXP (-128)

static inline float pow2(int e) { /* normal range only */
    uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* floor(log2(a)) of a finite a > 0: the exponent field, or frexpf for a subnormal a (a block
 * maximum below 2^-126, rare enough for the library call). */
static inline int floor_log2(float a) {
    uint32_t u;
    memcpy(&u, &a, 4);
    int biased = (int)(u >> 23);
    if (biased) return biased - 127;
    int fe;
    frexpf(a, &fe); /* a = f 2^fe, f in [0.5, 1) */
    return fe - 1;
}

static inline uint16_t bf16_bits(float f) { /* exact when f has at most 8 significant bits */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* The exponent, 1/scale and scale of every 4-column block of a strip (SMX blocks), as the
 * general loop in tq_quantize computes them, without its branches and library calls. The
 * block maximum's exponent field is floor(log2) for a normal maximum; for zero or a subnormal
 * one (field 0) it gives -127 - emax, clamped to MIN_EXP as floor(log2) <= -127 would be. */
static void block_scales_4(const float *restrict colmax, const int8_t *restrict colbad,
                           int64_t nbc, int emax, int8_t *restrict exps, float *restrict inv,
                           float *restrict scale) {
    for (int64_t b = 0; b < nbc; b++) {
        const float *c = colmax + 4 * b;
        float m01 = c[1] > c[0] ? c[1] : c[0], m23 = c[3] > c[2] ? c[3] : c[2];
        float amax = m23 > m01 ? m23 : m01;
        int bad = colbad[4 * b] | colbad[4 * b + 1] | colbad[4 * b + 2] | colbad[4 * b + 3];
        uint32_t u;
        memcpy(&u, &amax, 4);
        /* colmax >= 0: no sign bit. Zero and subnormal maxima (field 0) clamp to MIN_EXP. */
        int e = (int)(u >> 23) - 127 - emax;
        e = e < MIN_EXP ? MIN_EXP : (e > MAX_EXP ? MAX_EXP : e);
        e = bad ? NAN_EXP : e;
        exps[b] = (int8_t)e;
        /* bit patterns: 2^-e (0x00400000 is 2^-127, subnormal), 2^e, 0 and NaN for bad */
        uint32_t inv_bits = e < MAX_EXP ? (uint32_t)(127 - e) << 23 : 0x00400000u;
        uint32_t scale_bits = (uint32_t)(e + 127) << 23;
        inv_bits = bad ? 0u : inv_bits;
        scale_bits = bad ? 0x7fc00000u : scale_bits;
        float s_inv, s;
        memcpy(&s_inv, &inv_bits, 4);
        memcpy(&s, &scale_bits, 4);
        inv[4 * b] = inv[4 * b + 1] = inv[4 * b + 2] = inv[4 * b + 3] = s_inv;
        scale[4 * b] = scale[4 * b + 1] = scale[4 * b + 2] = scale[4 * b + 3] = s;
    }
}

/* x: R x C row-major (row stride ldx); blocks pr x pc from (0, 0). Outputs, each R x C
 * contiguous and each optional (NULL): elements (int8 if ebytes is 1, else int16), values
 * (FP32), bf16. exps (ceil(R/pr) x ceil(C/pc), int8) is always written. */
void tq_quantize(const float *x, int64_t R, int64_t C, int64_t ldx, int pr, int pc, int emax,
                 float limit, int8_t *exps, void *elements, int ebytes, float *values,
                 uint16_t *bf16) {
    int64_t nbr = (R + pr - 1) / pr, nbc = (C + pc - 1) / pc;
#pragma omp parallel if (R * C >= PARALLEL_MIN)
    {
        float *colmax = malloc(sizeof(float) * C);
        int8_t *colbad = malloc(C);
        float *inv = malloc(sizeof(float) * C);
        float *scale = malloc(sizeof(float) * C);
        float *v = malloc(sizeof(float) * C);
#pragma omp for schedule(static)
        for (int64_t br = 0; br < nbr; br++) {
            int64_t r0 = br * pr, r1 = r0 + pr < R ? r0 + pr : R;
            for (int64_t j = 0; j < C; j++) {
                colmax[j] = 0.0f;
                colbad[j] = 0;
            }
            for (int64_t i = r0; i < r1; i++) {
                const float *row = x + i * ldx;
                for (int64_t j = 0; j < C; j++) {
                    float a = fabsf(row[j]);
                    colbad[j] |= !(a <= 3.4028234663852886e38f); /* NaN or Inf */
                    colmax[j] = a > colmax[j] ? a : colmax[j];
                }
            }
            int8_t *erow = exps + br * nbc;
            if (pc == 4 && C % 4 == 0) {
                block_scales_4(colmax, colbad, nbc, emax, erow, inv, scale);
            } else {
                for (int64_t bc = 0; bc < nbc; bc++) {
                    int64_t c0 = bc * pc, c1 = c0 + pc < C ? c0 + pc : C;
                    float amax = 0.0f;
                    int bad = 0;
                    for (int64_t j = c0; j < c1; j++) {
                        amax = colmax[j] > amax ? colmax[j] : amax;
                        bad |= colbad[j];
                    }
                    int e = MIN_EXP;
                    if (bad) {
                        e = NAN_EXP;
                    } else if (amax > 0.0f) {
                        e = floor_log2(amax) - emax;
                        e = e < MIN_EXP ? MIN_EXP : (e > MAX_EXP ? MAX_EXP : e);
                    }
                    erow[bc] = (int8_t)e;
                    /* 1/scale = 2^-e is exact (subnormal only for e = 127, when |x| >= 2^127);
                     * a non-finite block gets inv 0 (finite elements -> 0) and scale NaN. */
                    float s_inv = bad ? 0.0f : (e < MAX_EXP ? pow2(-e) : ldexpf(1.0f, -e));
                    float s = bad ? NAN : pow2(e);
                    for (int64_t j = c0; j < c1; j++) {
                        inv[j] = s_inv;
                        scale[j] = s;
                    }
                }
            }
            for (int64_t i = r0; i < r1; i++) {
                const float *row = x + i * ldx;
                for (int64_t j = 0; j < C; j++) {
                    float m = nearbyintf(row[j] * inv[j]);
                    m = m > limit ? limit : (m < -limit ? -limit : m);
                    v[j] = m == m ? m : 0.0f;
                }
                if (elements && ebytes == 1) {
                    int8_t *out = (int8_t *)elements + i * C;
                    for (int64_t j = 0; j < C; j++) out[j] = (int8_t)v[j];
                } else if (elements) {
                    int16_t *out = (int16_t *)elements + i * C;
                    for (int64_t j = 0; j < C; j++) out[j] = (int16_t)v[j];
                }
                if (values) {
                    float *out = values + i * C;
                    for (int64_t j = 0; j < C; j++) out[j] = v[j] * scale[j]; /* exact */
                }
                if (bf16) {
                    uint16_t *out = bf16 + i * C;
                    for (int64_t j = 0; j < C; j++) out[j] = bf16_bits(v[j] * scale[j]);
                }
            }
        }
        free(colmax);
        free(colbad);
        free(inv);
        free(scale);
        free(v);
    }
}

/* elements (R x C, int8 or int16, contiguous), exps as in tq_quantize. Outputs (each optional):
 * values (FP32), bf16 (only for elements of at most 8 significant bits), R x C contiguous. */
void tq_unpack(const void *elements, int ebytes, const int8_t *exps, int64_t R, int64_t C, int pr,
               int pc, float *values, uint16_t *bf16) {
    int64_t nbr = (R + pr - 1) / pr, nbc = (C + pc - 1) / pc;
#pragma omp parallel if (R * C >= PARALLEL_MIN)
    {
        float *scale = malloc(sizeof(float) * C);
        float *v = malloc(sizeof(float) * C);
#pragma omp for schedule(static)
        for (int64_t br = 0; br < nbr; br++) {
            const int8_t *erow = exps + br * nbc;
            for (int64_t bc = 0; bc < nbc; bc++) {
                float s = erow[bc] == NAN_EXP ? NAN : pow2(erow[bc]);
                int64_t c1 = (bc + 1) * pc < C ? (bc + 1) * pc : C;
                for (int64_t j = bc * pc; j < c1; j++) scale[j] = s;
            }
            int64_t r1 = (br + 1) * pr < R ? (br + 1) * pr : R;
            for (int64_t i = br * pr; i < r1; i++) {
                if (ebytes == 1) {
                    const int8_t *m = (const int8_t *)elements + i * C;
                    for (int64_t j = 0; j < C; j++) v[j] = (float)m[j] * scale[j]; /* exact */
                } else {
                    const int16_t *m = (const int16_t *)elements + i * C;
                    for (int64_t j = 0; j < C; j++) v[j] = (float)m[j] * scale[j];
                }
                if (values) memcpy(values + i * C, v, sizeof(float) * C);
                if (bf16) {
                    uint16_t *out = bf16 + i * C;
                    for (int64_t j = 0; j < C; j++) out[j] = bf16_bits(v[j]);
                }
            }
        }
        free(scale);
        free(v);
    }
}

/* DiffQuant difference identities (tqpinn.nn.activations): for a (N x Ka x F, Ka = 1 broadcast
 * over the K rows of b, or Ka = K) and b (N x K x F), all contiguous FP32,
 *   tanh: tanh(a+b) - tanh(a) = tanh(b) / (cosh(a)^2 (1 + tanh(a) tanh(b)))
 *   sin:  sin(a+b) - sin(a)   = 2 cos(a + b/2) sin(b/2)
 * and, in backward, the partials of the same identities times the incoming gradient (grad_b
 * N x K x F; grad_a N x Ka x F, summed over the K rows when Ka = 1). The operations are those
 * of the PyTorch formulas, in the same order (the build contracts no multiply-add); only the
 * elementary functions come from another library, and grad_a sums its K terms in order. One
 * pass over b per call: nothing of the size of b is written besides the outputs. */

#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
/* glibc's vector math library has SIMD variants of these (tanhf since 2.35): declaring them lets
 * the compiler vectorise the loops below; elsewhere they stay scalar calls. */
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern float sinf(float);
#pragma omp declare simd notinbranch
extern float cosf(float);
#endif

enum { TQ_TANH = 0, TQ_SIN = 1 };

/* tanh(a) and cosh(a)^2 of one row of a: shared by the K rows of b it is broadcast against. */
static void tanh_prep(const float *restrict a, int64_t F, float *restrict ta,
                      float *restrict c2) {
    for (int64_t f = 0; f < F; f++) {
        float c = coshf(a[f]);
        ta[f] = tanhf(a[f]);
        c2[f] = c * c;
    }
}

static void difference_row(int act, const float *restrict a, const float *restrict ta,
                           const float *restrict c2, const float *restrict b, int64_t F,
                           float *restrict out) {
    if (act == TQ_TANH) {
        for (int64_t f = 0; f < F; f++) {
            float tb = tanhf(b[f]);
            out[f] = tb / (c2[f] * (1.0f + ta[f] * tb));
        }
    } else {
        for (int64_t f = 0; f < F; f++) {
            float h = 0.5f * b[f];
            out[f] = 2.0f * cosf(a[f] + h) * sinf(h);
        }
    }
}

/* grad_b = g * d/db and ga += g * d/da for one row (either output may be NULL). */
static void difference_backward_row(int act, const float *restrict a, const float *restrict ta,
                                    const float *restrict c2, const float *restrict b,
                                    const float *restrict g, int64_t F, float *restrict ga,
                                    float *restrict gb) {
    if (act == TQ_TANH) {
        for (int64_t f = 0; f < F; f++) {
            float tb = tanhf(b[f]);
            float d = tb / (c2[f] * (1.0f + ta[f] * tb));
            float t1 = ta[f] + d; /* tanh(a + b) */
            if (ga) ga[f] += g[f] * (-d * (ta[f] + t1));
            if (gb) gb[f] = g[f] * (1.0f - t1 * t1);
        }
    } else {
        for (int64_t f = 0; f < F; f++) {
            float h = 0.5f * b[f];
            float s = sinf(h);
            if (ga) ga[f] += g[f] * (-2.0f * sinf(a[f] + h) * s);
            if (gb) gb[f] = g[f] * cosf(a[f] + b[f]);
        }
    }
}

void tq_difference(int act, const float *a, const float *b, int64_t N, int64_t K, int64_t F,
                   int a_per_k, float *out) {
#pragma omp parallel if (N * K * F >= PARALLEL_MIN)
    {
        float *ta = malloc(sizeof(float) * F), *c2 = malloc(sizeof(float) * F);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t k = 0; k < K; k++) {
                const float *arow = a + (a_per_k ? n * K + k : n) * F;
                if (act == TQ_TANH && (a_per_k || k == 0)) tanh_prep(arow, F, ta, c2);
                difference_row(act, arow, ta, c2, b + (n * K + k) * F, F, out + (n * K + k) * F);
            }
        }
        free(ta);
        free(c2);
    }
}

void tq_difference_backward(int act, const float *a, const float *b, const float *grad, int64_t N,
                            int64_t K, int64_t F, int a_per_k, float *grad_a, float *grad_b) {
#pragma omp parallel if (N * K * F >= PARALLEL_MIN)
    {
        float *ta = malloc(sizeof(float) * F), *c2 = malloc(sizeof(float) * F);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            if (grad_a && !a_per_k) memset(grad_a + n * F, 0, sizeof(float) * F);
            for (int64_t k = 0; k < K; k++) {
                int64_t row = n * K + k, arow = a_per_k ? row : n;
                if (act == TQ_TANH && (a_per_k || k == 0)) tanh_prep(a + arow * F, F, ta, c2);
                float *ga = grad_a ? grad_a + arow * F : NULL;
                if (ga && a_per_k) memset(ga, 0, sizeof(float) * F);
                difference_backward_row(act, a + arow * F, ta, c2, b + row * F, grad + row * F, F,
                                        ga, grad_b ? grad_b + row * F : NULL);
            }
        }
        free(ta);
        free(c2);
    }
}

/* A whole layer of difference streams (tqpinn.nn.streams.DifferenceStreams) through the
 * activation in one pass: from odd and even (N x K x F) the one-sided differences
 *   plus = (even + odd) / 2,  minus = (even - odd) / 2            (written: saved for backward)
 * and the streams after the activation, with D(a, b) = act(a + b) - act(a) as above,
 *   odd' = D(a, plus) - D(a, minus),  even' = D(a, plus) + D(a, minus).
 * The operations of the unfused PyTorch path, in the same order, one row of F at a time (the
 * row's intermediates stay in cache). */
void tq_difference_streams(int act, const float *a, const float *odd, const float *even,
                           int64_t N, int64_t K, int64_t F, int a_per_k, float *plus,
                           float *minus, float *odd_out, float *even_out) {
#pragma omp parallel if (N * K * F >= PARALLEL_MIN)
    {
        float *ta = malloc(sizeof(float) * F), *c2 = malloc(sizeof(float) * F);
        float *dp = malloc(sizeof(float) * F), *dm = malloc(sizeof(float) * F);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t k = 0; k < K; k++) {
                int64_t row = (n * K + k) * F;
                const float *arow = a + (a_per_k ? n * K + k : n) * F;
                const float *o = odd + row, *e = even + row;
                float *p = plus + row, *m = minus + row;
                if (act == TQ_TANH && (a_per_k || k == 0)) tanh_prep(arow, F, ta, c2);
                for (int64_t f = 0; f < F; f++) {
                    p[f] = 0.5f * (e[f] + o[f]);
                    m[f] = 0.5f * (e[f] - o[f]);
                }
                difference_row(act, arow, ta, c2, p, F, dp);
                difference_row(act, arow, ta, c2, m, F, dm);
                for (int64_t f = 0; f < F; f++) {
                    odd_out[row + f] = dp[f] - dm[f];
                    even_out[row + f] = dp[f] + dm[f];
                }
            }
        }
        free(ta);
        free(c2);
        free(dp);
        free(dm);
    }
}

/* Backward of tq_difference_streams from a, plus, minus and the gradients of odd' and even':
 * grad_odd, grad_even (N x K x F) and grad_a (N x Ka x F, summed over K when Ka = 1; NULL if
 * not needed). */
void tq_difference_streams_backward(int act, const float *a, const float *plus,
                                    const float *minus, const float *grad_odd_out,
                                    const float *grad_even_out, int64_t N, int64_t K, int64_t F,
                                    int a_per_k, float *grad_a, float *grad_odd,
                                    float *grad_even) {
#pragma omp parallel if (N * K * F >= PARALLEL_MIN)
    {
        float *ta = malloc(sizeof(float) * F), *c2 = malloc(sizeof(float) * F);
        float *gdp = malloc(sizeof(float) * F), *gdm = malloc(sizeof(float) * F);
        float *gp = malloc(sizeof(float) * F), *gm = malloc(sizeof(float) * F);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            if (grad_a && !a_per_k) memset(grad_a + n * F, 0, sizeof(float) * F);
            for (int64_t k = 0; k < K; k++) {
                int64_t row = (n * K + k) * F, arow = a_per_k ? n * K + k : n;
                const float *go = grad_odd_out + row, *ge = grad_even_out + row;
                if (act == TQ_TANH && (a_per_k || k == 0)) tanh_prep(a + arow * F, F, ta, c2);
                float *ga = grad_a ? grad_a + arow * F : NULL;
                if (ga && a_per_k) memset(ga, 0, sizeof(float) * F);
                for (int64_t f = 0; f < F; f++) {
                    gdp[f] = go[f] + ge[f]; /* odd' and even' both hold D(a, plus) */
                    gdm[f] = ge[f] - go[f];
                }
                difference_backward_row(act, a + arow * F, ta, c2, plus + row, gdp, F, ga, gp);
                difference_backward_row(act, a + arow * F, ta, c2, minus + row, gdm, F, ga, gm);
                for (int64_t f = 0; f < F; f++) {
                    grad_odd[row + f] = 0.5f * gp[f] - 0.5f * gm[f];
                    grad_even[row + f] = 0.5f * gp[f] + 0.5f * gm[f];
                }
            }
        }
        free(ta);
        free(c2);
        free(gdp);
        free(gdm);
        free(gp);
        free(gm);
    }
}

#if defined(__AVX512BF16__)
#include <immintrin.h>

#define MR 12
#define NR 32  /* two vectors of 16 FP32 lanes */
#define KC 384 /* pairs per K block: A tile 18 KiB, a B panel block 48 KiB */

/* Pack all pairs of B (N x K, strides bsn, bsk) into panels of NR columns: dst[panel][p][NR],
 * each uint32 the pair (b_2p, b_2p+1). Called inside a parallel region. */
static void pack_b(const uint16_t *b, int64_t N, int64_t K, int64_t bsn, int64_t bsk, int64_t P,
                   uint32_t *dst) {
    int64_t npanel = (N + NR - 1) / NR;
#pragma omp for schedule(static) collapse(2)
    for (int64_t q = 0; q < npanel; q++) {
        for (int64_t p0 = 0; p0 < P; p0 += KC) {
            int64_t p1 = p0 + KC < P ? p0 + KC : P;
            for (int64_t p = p0; p < p1; p++) {
                int64_t k = 2 * p;
                uint32_t *d = dst + (q * P + p) * NR;
                for (int64_t c = 0; c < NR; c++) {
                    int64_t n = q * NR + c;
                    uint32_t x0 = 0, x1 = 0;
                    if (n < N) {
                        x0 = b[n * bsn + k * bsk];
                        if (k + 1 < K) x1 = b[n * bsn + (k + 1) * bsk];
                    }
                    d[c] = x0 | (x1 << 16);
                }
            }
        }
    }
}

/* Pack MR rows [m0, m0 + MR) of A (strides asm_, ask) for pairs [p0, p0 + np): dst[p][MR].
 * Pairs outer, rows inner: a transposed A (rows contiguous) is then read sequentially. */
static void pack_a(const uint16_t *a, int64_t M, int64_t K, int64_t asm_, int64_t ask, int64_t m0,
                   int64_t p0, int64_t np, uint32_t *dst) {
    for (int64_t p = 0; p < np; p++) {
        int64_t k = 2 * (p0 + p);
        for (int64_t r = 0; r < MR; r++) {
            int64_t m = m0 + r;
            uint32_t x0 = 0, x1 = 0;
            if (m < M) {
                x0 = a[m * asm_ + k * ask];
                if (k + 1 < K) x1 = a[m * asm_ + (k + 1) * ask];
            }
            dst[p * MR + r] = x0 | (x1 << 16);
        }
    }
}

static void micro(const uint32_t *a, const uint32_t *b, int64_t np, float *c, int64_t ldc,
                  int64_t rows, int64_t cols, int load) {
    __m512 acc[MR][2];
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xFFFF : (cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0);
    for (int r = 0; r < MR; r++) {
        if (load && r < rows) {
            acc[r][0] = _mm512_maskz_loadu_ps(m0, c + r * ldc);
            acc[r][1] = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);
        } else {
            acc[r][0] = _mm512_setzero_ps();
            acc[r][1] = _mm512_setzero_ps();
        }
    }
    for (int64_t p = 0; p < np; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
        const uint32_t *ap = a + p * MR;
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
        _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);
    }
}

/* C (M x N, row stride ldc) = A B^T for bfloat16 A (M x K, strides asm_, ask) and B (N x K,
 * strides bsn, bsk). One parallel region, one barrier (after packing B): a thread owns a
 * contiguous range of row tiles and walks the K blocks over them, so no further
 * synchronisation is needed (spinning barriers are costly on an oversubscribed machine). */
void tq_gemm(int64_t M, int64_t N, int64_t K, const uint16_t *a, int64_t asm_, int64_t ask,
             const uint16_t *b, int64_t bsn, int64_t bsk, float *c, int64_t ldc) {
    int64_t P = (K + 1) / 2;
    int64_t npanel = (N + NR - 1) / NR, ntile = (M + MR - 1) / MR;
    uint32_t *bp = aligned_alloc(64, sizeof(uint32_t) * npanel * NR * ((P + 15) / 16 * 16));
#pragma omp parallel if (M * N * K >= 64 * PARALLEL_MIN)
    {
        pack_b(b, N, K, bsn, bsk, P, bp);
        uint32_t *ap = aligned_alloc(64, sizeof(uint32_t) * MR * KC);
        int nth = omp_get_num_threads(), me = omp_get_thread_num();
        int64_t t0 = ntile * me / nth, t1 = ntile * (me + 1) / nth;
        for (int64_t p0 = 0; p0 < P; p0 += KC) {
            int64_t np = P - p0 < KC ? P - p0 : KC;
            for (int64_t t = t0; t < t1; t++) {
                int64_t m0 = t * MR, rows = M - m0 < MR ? M - m0 : MR;
                pack_a(a, M, K, asm_, ask, m0, p0, np, ap);
                for (int64_t q = 0; q < npanel; q++) {
                    int64_t n0 = q * NR, cols = N - n0 < NR ? N - n0 : NR;
                    micro(ap, bp + (q * P + p0) * NR, np, c + m0 * ldc + n0, ldc, rows, cols,
                          p0 > 0);
                }
            }
        }
        free(ap);
    }
    free(bp);
}
#endif /* __AVX512BF16__ */

void tq_set_threads(int n) { omp_set_num_threads(n); }
