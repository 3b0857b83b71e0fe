/*
 * rtedge.audio._codec -- small C kernels over buffers for rtedge.audio.codec.
 *
 * The numpy twin (_codec_numpy.py) has the same functions, signatures and
 * results.  Validation of dtypes, shapes and rates happens in codec.py; the
 * checks here only keep a bad call from crashing or writing out of bounds.
 * Nothing is kept between calls: the resampler's stream state (input history
 * and phase accumulator) is passed in and returned.  The G.711 lookup tables
 * are constants computed once at import.  Every kernel releases the GIL.
 *
 * Buffers are taken through the buffer protocol (no numpy headers needed).
 *
 * Build switches: RTEDGE_NO_CLONES (no AVX2 clone), RTEDGE_PORTABLE (plain C
 * instead of GCC/clang vector extensions; same results, slower).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Hot loops get an AVX2 + FMA clone picked at load time on x86-64 CPUs that have it
 * (GCC function multi-versioning); elsewhere the baseline build is used. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(RTEDGE_NO_CLONES)
/* An AVX2 + FMA clone is picked at load time on CPUs that have it; baseline x86-64 otherwise. */
#define KERNEL_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define KERNEL_CLONES
#endif

/* ------------------------------------------------------------------ buffers */

typedef struct {
    Py_buffer view;
    int held;
} buf_t;

static void
buf_release(buf_t *b)
{
    if (b->held) {
        PyBuffer_Release(&b->view);
        b->held = 0;
    }
}

/* Native-order format character of a buffer, or 0 if it is not native. */
static char
fmt_char(const Py_buffer *v)
{
    const char *f = v->format ? v->format : "B";
    if (f[0] == '@' || f[0] == '=') {
        f++;
    }
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<') {
        f++;
    }
#else
    else if (f[0] == '>' || f[0] == '!') {
        f++;
    }
#endif
    if (f[0] == '\0' || f[1] != '\0') {
        return 0;
    }
    return f[0];
}

/* Get a 1-D C-contiguous buffer whose format is one of `fmts` (e.g. "hf").
 * `names` gives a readable dtype name for the error message. */
static int
buf_get(PyObject *obj, buf_t *b, int writable, const char *fmts, const char *what,
        const char *expect)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer of %s", what,
                     writable ? " writable" : "", expect);
        return -1;
    }
    b->held = 1;
    if (b->view.ndim > 1) {
        PyErr_Format(PyExc_ValueError, "%s must be 1-D, got %d dimensions", what, b->view.ndim);
        buf_release(b);
        return -1;
    }
    char c = fmt_char(&b->view);
    if (c == 0 || strchr(fmts, c) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s must hold %s, got buffer format '%s'", what, expect,
                     b->view.format ? b->view.format : "B");
        buf_release(b);
        return -1;
    }
    return 0;
}

static Py_ssize_t
buf_len(const buf_t *b)
{
    return b->view.len / (b->view.itemsize ? b->view.itemsize : 1);
}

static int
check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *fn)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", fn, want, nargs);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ G.711 */
/*
 * ITU-T G.711 as the G.191 tools implement it: negative inputs use the ones'
 * complement magnitude.  mu-law works on the 14-bit value x >> 2, A-law on the
 * 12-bit magnitude of x >> 4 (13-bit signed), so the encoders only depend on
 * x >> 2 resp. x >> 4 and are tabulated on that index.
 */
static uint8_t ulaw_enc_tab[1 << 14];
static uint8_t alaw_enc_tab[1 << 12];

static int
bit_length(int v)
{
    int n = 0;
    while (v) {
        n++;
        v >>= 1;
    }
    return n;
}

static uint8_t
ulaw_code(int x) /* x: int16 value */
{
    int mag = (x < 0 ? ~x : x) >> 2;
    int biased = mag + 33;
    if (biased > 0x1FFF) {
        biased = 0x1FFF;
    }
    int seg = bit_length(biased) - 6;
    int mant = (biased >> (seg + 1)) & 0x0F;
    return (uint8_t)(0xFF ^ ((seg << 4) | mant | (x < 0 ? 0x80 : 0)));
}

static uint8_t
alaw_code(int x)
{
    int mag = (x < 0 ? ~x : x) >> 4;
    int seg = bit_length(mag) - 4;
    int mant;
    if (seg <= 0) {
        seg = 0;
        mant = mag & 0x0F;
    }
    else {
        mant = (mag >> (seg - 1)) & 0x0F;
    }
    return (uint8_t)(((seg << 4) | mant | (x < 0 ? 0 : 0x80)) ^ 0x55);
}

static int g711_ready = 0;

static void
g711_init(void)
{
    /* constant tables, filled once per process (every interpreter would write the same bytes) */
    if (g711_ready) {
        return;
    }
    for (int i = 0; i < (1 << 14); i++) {
        int x = (int)(int16_t)(uint16_t)(i << 2); /* any x with (uint16)x >> 2 == i */
        ulaw_enc_tab[i] = ulaw_code(x);
    }
    for (int i = 0; i < (1 << 12); i++) {
        int x = (int)(int16_t)(uint16_t)(i << 4);
        alaw_enc_tab[i] = alaw_code(x);
    }
    g711_ready = 1;
}

/* Decoders as branch-free arithmetic (same values as the tables; vectorises). */
KERNEL_CLONES
static void
ulaw_decode_loop(const uint8_t *restrict s, int16_t *restrict d, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        int inv = s[i] ^ 0xFF;
        int seg = (inv >> 4) & 7;
        /* the shift is done 8 bits up so compilers keep it in 32-bit lanes (AVX2 vpsllvd) */
        uint32_t base = (uint32_t)((inv & 0x0F) << 3) + 0x84;
        int mag = (int)((base << (seg + 8)) >> 8) - 0x84;
        int neg = ((s[i] >> 7) & 1) - 1; /* 0 for codes >= 0x80 (positive), -1 otherwise */
        d[i] = (int16_t)((mag ^ neg) - neg);
    }
}

KERNEL_CLONES
static void
alaw_decode_loop(const uint8_t *restrict s, int16_t *restrict d, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        int v = s[i] ^ 0x55;
        int seg = (v >> 4) & 7;
        int base = ((v & 0x0F) << 4) + 8 + (seg ? 256 : 0);
        int mag = base << (seg ? seg - 1 : 0);
        d[i] = (int16_t)((s[i] & 0x80) ? mag : -mag);
    }
}

typedef enum { ULAW_ENC, ALAW_ENC, ULAW_DEC, ALAW_DEC } g711_op;

static PyObject *
g711(PyObject *const *args, Py_ssize_t nargs, g711_op op, const char *fn)
{
    buf_t src, dst;
    int enc = (op == ULAW_ENC || op == ALAW_ENC);
    if (check_nargs(nargs, 2, fn) < 0) {
        return NULL;
    }
    if (buf_get(args[0], &src, 0, enc ? "h" : "B", "src", enc ? "int16" : "uint8") < 0) {
        return NULL;
    }
    if (buf_get(args[1], &dst, 1, enc ? "B" : "h", "dst", enc ? "uint8" : "int16") < 0) {
        buf_release(&src);
        return NULL;
    }
    Py_ssize_t n = buf_len(&src);
    if (buf_len(&dst) != n) {
        PyErr_Format(PyExc_ValueError, "%s: dst has %zd samples, src has %zd", fn, buf_len(&dst), n);
        buf_release(&src);
        buf_release(&dst);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    switch (op) {
    case ULAW_ENC: {
        const uint16_t *s = (const uint16_t *)src.view.buf;
        uint8_t *d = (uint8_t *)dst.view.buf;
        for (Py_ssize_t i = 0; i < n; i++) d[i] = ulaw_enc_tab[s[i] >> 2];
        break;
    }
    case ALAW_ENC: {
        const uint16_t *s = (const uint16_t *)src.view.buf;
        uint8_t *d = (uint8_t *)dst.view.buf;
        for (Py_ssize_t i = 0; i < n; i++) d[i] = alaw_enc_tab[s[i] >> 4];
        break;
    }
    case ULAW_DEC: {
        const uint8_t *s = (const uint8_t *)src.view.buf;
        int16_t *d = (int16_t *)dst.view.buf;
        ulaw_decode_loop(s, d, n);
        break;
    }
    case ALAW_DEC: {
        const uint8_t *s = (const uint8_t *)src.view.buf;
        int16_t *d = (int16_t *)dst.view.buf;
        alaw_decode_loop(s, d, n);
        break;
    }
    }
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static PyObject *
py_ulaw_encode(PyObject *m, PyObject *const *a, Py_ssize_t n) { return g711(a, n, ULAW_ENC, "ulaw_encode"); }
static PyObject *
py_alaw_encode(PyObject *m, PyObject *const *a, Py_ssize_t n) { return g711(a, n, ALAW_ENC, "alaw_encode"); }
static PyObject *
py_ulaw_decode(PyObject *m, PyObject *const *a, Py_ssize_t n) { return g711(a, n, ULAW_DEC, "ulaw_decode"); }
static PyObject *
py_alaw_decode(PyObject *m, PyObject *const *a, Py_ssize_t n) { return g711(a, n, ALAW_DEC, "alaw_decode"); }

/* ------------------------------------------------------------------ sample formats */

/* Round half to even without libm: valid for |v| < 2^22 (float) / 2^51 (double)
 * in the default rounding mode.  The clamps below keep v in that range. */
static inline float
round_even_f(float v)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

static inline double
round_even_d(double v)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    return (v + magic) - magic;
}

static inline int16_t
sat_round_f(float v)
{
    if (v != v) {
        v = 0.0f;
    }
    if (v > 32767.0f) {
        v = 32767.0f;
    }
    else if (v < -32768.0f) {
        v = -32768.0f;
    }
    return (int16_t)round_even_f(v);
}

static inline int16_t
sat_round_d(double v)
{
    if (v != v) {
        v = 0.0;
    }
    if (v > 32767.0) {
        v = 32767.0;
    }
    else if (v < -32768.0) {
        v = -32768.0;
    }
    return (int16_t)round_even_d(v);
}

/* Two-buffer elementwise helper: src format/dst format, dst length = src length / ratio. */
static int
get_pair(PyObject *const *args, buf_t *src, buf_t *dst, const char *sf, const char *sname,
         const char *df, const char *dname, Py_ssize_t ratio, const char *fn, Py_ssize_t *n_out)
{
    if (buf_get(args[0], src, 0, sf, "src", sname) < 0) {
        return -1;
    }
    if (buf_get(args[1], dst, 1, df, "dst", dname) < 0) {
        buf_release(src);
        return -1;
    }
    Py_ssize_t n = buf_len(src);
    if (n % ratio || buf_len(dst) != n / ratio) {
        PyErr_Format(PyExc_ValueError, "%s: dst has %zd samples, src has %zd", fn, buf_len(dst), n);
        buf_release(src);
        buf_release(dst);
        return -1;
    }
    *n_out = n / ratio;
    return 0;
}

static PyObject *
py_i16_to_f32(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    if (check_nargs(nargs, 2, "i16_to_f32") < 0 ||
        get_pair(args, &src, &dst, "h", "int16", "f", "float32", 1, "i16_to_f32", &n) < 0) {
        return NULL;
    }
    const int16_t *s = (const int16_t *)src.view.buf;
    float *d = (float *)dst.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) d[i] = (float)s[i] * (1.0f / 32768.0f);
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static PyObject *
py_f32_to_i16(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    if (check_nargs(nargs, 2, "f32_to_i16") < 0 ||
        get_pair(args, &src, &dst, "f", "float32", "h", "int16", 1, "f32_to_i16", &n) < 0) {
        return NULL;
    }
    const float *s = (const float *)src.view.buf;
    int16_t *d = (int16_t *)dst.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) d[i] = sat_round_f(s[i] * 32768.0f);
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static PyObject *
py_stereo_to_mono_i16(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    if (check_nargs(nargs, 2, "stereo_to_mono_i16") < 0 ||
        get_pair(args, &src, &dst, "h", "int16", "h", "int16", 2, "stereo_to_mono_i16", &n) < 0) {
        return NULL;
    }
    const int16_t *s = (const int16_t *)src.view.buf;
    int16_t *d = (int16_t *)dst.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) d[i] = (int16_t)(((int32_t)s[2 * i] + (int32_t)s[2 * i + 1]) >> 1);
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static PyObject *
py_stereo_to_mono_f32(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    if (check_nargs(nargs, 2, "stereo_to_mono_f32") < 0 ||
        get_pair(args, &src, &dst, "f", "float32", "f", "float32", 2, "stereo_to_mono_f32", &n) < 0) {
        return NULL;
    }
    const float *s = (const float *)src.view.buf;
    float *d = (float *)dst.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) d[i] = (s[2 * i] + s[2 * i + 1]) * 0.5f;
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static int
get_gain(PyObject *obj, double *g)
{
    *g = PyFloat_AsDouble(obj);
    if (*g == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static PyObject *
py_gain_i16(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    double g;
    if (check_nargs(nargs, 3, "gain_i16") < 0 || get_gain(args[2], &g) < 0 ||
        get_pair(args, &src, &dst, "h", "int16", "h", "int16", 1, "gain_i16", &n) < 0) {
        return NULL;
    }
    const int16_t *s = (const int16_t *)src.view.buf;
    int16_t *d = (int16_t *)dst.view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) d[i] = sat_round_d((double)s[i] * g);
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

static PyObject *
py_gain_f32(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    buf_t src, dst;
    Py_ssize_t n;
    double g;
    if (check_nargs(nargs, 3, "gain_f32") < 0 || get_gain(args[2], &g) < 0 ||
        get_pair(args, &src, &dst, "f", "float32", "f", "float32", 1, "gain_f32", &n) < 0) {
        return NULL;
    }
    const float *s = (const float *)src.view.buf;
    float *d = (float *)dst.view.buf;
    const float gf = (float)g;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        float v = s[i] * gf;
        if (v != v) {
            v = 0.0f;
        }
        d[i] = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
    }
    Py_END_ALLOW_THREADS
    buf_release(&src);
    buf_release(&dst);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ resampler */
/*
 * Rational polyphase FIR.  The bank holds the filter as integers in Q23 (each
 * phase row sums to exactly 2^23), stored as float32 (exact: |c| < 2^24), each
 * row time-reversed; the work buffer holds the input as float32 (int16 values
 * exactly; float32 input clipped to [-8, 8], NaN read as 0), its first
 * taps - 1 entries being the history carried between calls.
 *
 * Every output is a float32 dot product in one fixed order: four 8-lane
 * accumulators (8-tap block j goes to accumulator j % 4; fused multiply-add
 * where the CPU has it), combined as (A0 + A1) + (A2 + A3), then across lanes
 * as ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)).  The pair and quad paths do
 * exactly these operations for each of their outputs, so a sample's value does
 * not depend on which path computed it nor on how the input was split into
 * chunks.  The numpy twin computes the same sums exactly (integer arithmetic in
 * float64); the two agree within float32 rounding, i.e. within 1 LSB for int16.
 *
 * Outputs k, k + up, k + 2*up, ... use one coefficient row on windows `down`
 * samples apart; they are computed four (or two) at a time so each coefficient
 * load serves several outputs.  Outputs are visited in tiles of 4*up so the
 * windows in use stay in cache for long inputs.
 */

#define TAP_BLOCK 8 /* taps per phase are a multiple of this */
#define FLOAT_IN_LIMIT 8.0f
#define COEF_UNIT (1.0f / 8388608.0f) /* 2^-23 */


#if (defined(__GNUC__) || defined(__clang__)) && !defined(RTEDGE_PORTABLE)
/* 8 x float vectors: one AVX register in the x86-64-v3 clone, two SSE/NEON
 * registers elsewhere.  aligned(4) + may_alias allow loads from any float*. */
typedef float v8f __attribute__((vector_size(32), aligned(4), __may_alias__));
#define LD(p) (*(const v8f *)(p))
#define INLINE static inline __attribute__((always_inline))

#if defined(__clang__)
#define SHUF2(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
typedef int v8i __attribute__((vector_size(32)));
#define SHUF2(a, b, ...) __builtin_shuffle((a), (b), (v8i){__VA_ARGS__})
#endif

/* Lane sums of a, b (and c, d) in the fixed tree order
 *   u_i = v_i + v_{i+4};  sum = (u_0 + u_2) + (u_1 + u_3),
 * done with vector shuffles, several outputs at once. */
INLINE void
reduce_pair(v8f a, v8f b, float *y)
{
    v8f u = SHUF2(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + SHUF2(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    /* u = [ua0 ua1 ua2 ua3 | ub0 ub1 ub2 ub3] */
    v8f w = SHUF2(u, u, 0, 1, 4, 5, 0, 1, 4, 5) + SHUF2(u, u, 2, 3, 6, 7, 2, 3, 6, 7);
    /* w = [ua0+ua2, ua1+ua3, ub0+ub2, ub1+ub3, ...] */
    v8f r = SHUF2(w, w, 0, 2, 0, 2, 0, 2, 0, 2) + SHUF2(w, w, 1, 3, 1, 3, 1, 3, 1, 3);
    y[0] = r[0];
    y[1] = r[1];
}

INLINE void
reduce_quad(v8f a, v8f b, v8f c, v8f d, float *y)
{
    v8f uab = SHUF2(a, b, 0, 1, 2, 3, 8, 9, 10, 11) + SHUF2(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    v8f ucd = SHUF2(c, d, 0, 1, 2, 3, 8, 9, 10, 11) + SHUF2(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    /* w = [a02 a13 c02 c13 | b02 b13 d02 d13] with x02 = ux0 + ux2 etc. */
    v8f w = SHUF2(uab, ucd, 0, 1, 8, 9, 4, 5, 12, 13) + SHUF2(uab, ucd, 2, 3, 10, 11, 6, 7, 14, 15);
    /* r = [a c b d | a c b d] */
    v8f r = SHUF2(w, w, 0, 2, 4, 6, 0, 2, 4, 6) + SHUF2(w, w, 1, 3, 5, 7, 1, 3, 5, 7);
    y[0] = r[0];
    y[1] = r[2];
    y[2] = r[1];
    y[3] = r[3];
}

INLINE void
fir_pair(const float *restrict c, const float *restrict x0, const float *restrict x1, Py_ssize_t taps,
         float *restrict y)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    v8f b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    Py_ssize_t t = 0;
    for (; t + 32 <= taps; t += 32) {
        v8f c0 = LD(c + t), c1 = LD(c + t + 8), c2 = LD(c + t + 16), c3 = LD(c + t + 24);
        a0 += c0 * LD(x0 + t);
        b0 += c0 * LD(x1 + t);
        a1 += c1 * LD(x0 + t + 8);
        b1 += c1 * LD(x1 + t + 8);
        a2 += c2 * LD(x0 + t + 16);
        b2 += c2 * LD(x1 + t + 16);
        a3 += c3 * LD(x0 + t + 24);
        b3 += c3 * LD(x1 + t + 24);
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a0 += cj * LD(x0 + t);
        b0 += cj * LD(x1 + t);
        t += 8;
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a1 += cj * LD(x0 + t);
        b1 += cj * LD(x1 + t);
        t += 8;
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a2 += cj * LD(x0 + t);
        b2 += cj * LD(x1 + t);
    }
    reduce_pair((a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3), y);
}

INLINE void
fir_one(const float *restrict c, const float *restrict x0, Py_ssize_t taps, float *restrict y)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    Py_ssize_t t = 0;
    for (; t + 32 <= taps; t += 32) {
        a0 += LD(c + t) * LD(x0 + t);
        a1 += LD(c + t + 8) * LD(x0 + t + 8);
        a2 += LD(c + t + 16) * LD(x0 + t + 16);
        a3 += LD(c + t + 24) * LD(x0 + t + 24);
    }
    if (t < taps) {
        a0 += LD(c + t) * LD(x0 + t);
        t += 8;
    }
    if (t < taps) {
        a1 += LD(c + t) * LD(x0 + t);
        t += 8;
    }
    if (t < taps) {
        a2 += LD(c + t) * LD(x0 + t);
    }
    v8f s = (a0 + a1) + (a2 + a3);
    float yy[2];
    reduce_pair(s, s, yy);
    *y = yy[0];
}

INLINE void
fir_quad(const float *restrict c, const float *restrict x0, Py_ssize_t stride, Py_ssize_t taps,
         float *restrict y)
{
    const float *x1 = x0 + stride, *x2 = x0 + 2 * stride, *x3 = x0 + 3 * stride;
    v8f a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
    v8f a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
    v8f a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
    v8f a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
    Py_ssize_t t = 0;
    for (; t + 32 <= taps; t += 32) {
        {
            v8f cj = LD(c + t + 0);
            a00 += cj * LD(x0 + t + 0);
            a10 += cj * LD(x1 + t + 0);
            a20 += cj * LD(x2 + t + 0);
            a30 += cj * LD(x3 + t + 0);
        }
        {
            v8f cj = LD(c + t + 8);
            a01 += cj * LD(x0 + t + 8);
            a11 += cj * LD(x1 + t + 8);
            a21 += cj * LD(x2 + t + 8);
            a31 += cj * LD(x3 + t + 8);
        }
        {
            v8f cj = LD(c + t + 16);
            a02 += cj * LD(x0 + t + 16);
            a12 += cj * LD(x1 + t + 16);
            a22 += cj * LD(x2 + t + 16);
            a32 += cj * LD(x3 + t + 16);
        }
        {
            v8f cj = LD(c + t + 24);
            a03 += cj * LD(x0 + t + 24);
            a13 += cj * LD(x1 + t + 24);
            a23 += cj * LD(x2 + t + 24);
            a33 += cj * LD(x3 + t + 24);
        }
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a00 += cj * LD(x0 + t);
        a10 += cj * LD(x1 + t);
        a20 += cj * LD(x2 + t);
        a30 += cj * LD(x3 + t);
        t += 8;
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a01 += cj * LD(x0 + t);
        a11 += cj * LD(x1 + t);
        a21 += cj * LD(x2 + t);
        a31 += cj * LD(x3 + t);
        t += 8;
    }
    if (t < taps) {
        v8f cj = LD(c + t);
        a02 += cj * LD(x0 + t);
        a12 += cj * LD(x1 + t);
        a22 += cj * LD(x2 + t);
        a32 += cj * LD(x3 + t);
        t += 8;
    }
    reduce_quad((a00 + a01) + (a02 + a03), (a10 + a11) + (a12 + a13), (a20 + a21) + (a22 + a23),
                (a30 + a31) + (a32 + a33), y);
}
#else /* portable scalar version of the same arithmetic */
static void
fir_one(const float *c, const float *x, Py_ssize_t taps, float *y)
{
    float a[4][8] = {{0}};
    for (Py_ssize_t t = 0; t < taps; t++) {
        a[(t / 8) % 4][t % 8] += c[t] * x[t];
    }
    float v[8];
    for (int l = 0; l < 8; l++) v[l] = (a[0][l] + a[1][l]) + (a[2][l] + a[3][l]);
    *y = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static void
fir_pair(const float *c, const float *x0, const float *x1, Py_ssize_t taps, float *y)
{
    fir_one(c, x0, taps, y);
    fir_one(c, x1, taps, y + 1);
}

static void
fir_quad(const float *c, const float *x0, Py_ssize_t stride, Py_ssize_t taps, float *y)
{
    for (int o = 0; o < 4; o++) fir_one(c, x0 + o * stride, taps, y + o);
}
#endif

/* Compute `count` outputs (unscaled dot products) into y. */
KERNEL_CLONES
static void
resample_core(const float *h, const float *w, Py_ssize_t up, Py_ssize_t down, Py_ssize_t taps,
              long long acc, Py_ssize_t count, float *y)
{
    const Py_ssize_t dq = down / up, dr = down % up;
    const Py_ssize_t tile = 4 * up;
    /* output 0: window start and phase */
    const Py_ssize_t start0 = (Py_ssize_t)(acc / up);
    const Py_ssize_t phase0 = (Py_ssize_t)(acc % up);
    float q[4];
    for (Py_ssize_t k0 = 0, tbase = start0; k0 < count; k0 += tile, tbase += 4 * down) {
        Py_ssize_t start = tbase, phase = phase0;
        const Py_ssize_t kend = k0 + up < count ? k0 + up : count;
        for (Py_ssize_t k = k0; k < kend; k++) {
            const float *c = h + phase * taps;
            const Py_ssize_t left = (count - 1 - k) / up + 1; /* outputs of this class from k on */
            if (left >= 4) {
                fir_quad(c, w + start, down, taps, q);
                y[k] = q[0];
                y[k + up] = q[1];
                y[k + 2 * up] = q[2];
                y[k + 3 * up] = q[3];
            }
            else if (left >= 2) {
                fir_pair(c, w + start, w + start + down, taps, q);
                y[k] = q[0];
                y[k + up] = q[1];
                if (left == 3) {
                    fir_one(c, w + start + 2 * down, taps, y + k + 2 * up);
                }
            }
            else {
                fir_one(c, w + start, taps, y + k);
            }
            start += dq;
            phase += dr;
            if (phase >= up) {
                phase -= up;
                start++;
            }
        }
    }
}

#if (defined(__GNUC__) || defined(__clang__)) && !defined(RTEDGE_PORTABLE)
/* 2:1 decimation with a short filter, vectorised across outputs: the window is
 * split into its even and odd samples so eight consecutive outputs read eight
 * consecutive values.  Every output is the plain sequential sum over the taps,
 * sum_t c[t] * x[2q + t] for t = 0, 1, ..., in the vector blocks and in the
 * scalar tail alike.  `scratch` holds 2 * (count + taps / 2 + 1) floats. */
KERNEL_CLONES
static void
decim2_core(const float *c, const float *w, Py_ssize_t taps, Py_ssize_t count, float *y, float *scratch)
{
    const Py_ssize_t half = count + taps / 2 + 1;
    float *ev = scratch, *od = scratch + half;
    for (Py_ssize_t i = 0; i < half; i++) {
        ev[i] = w[2 * i];
        od[i] = w[2 * i + 1];
    }
    Py_ssize_t q = 0;
    for (; q + 32 <= count; q += 32) {
        v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (Py_ssize_t t = 0; t < taps; t++) {
            const float *src = ((t & 1) ? od : ev) + q + (t >> 1);
            const v8f ct = {c[t], c[t], c[t], c[t], c[t], c[t], c[t], c[t]};
            a0 += ct * LD(src);
            a1 += ct * LD(src + 8);
            a2 += ct * LD(src + 16);
            a3 += ct * LD(src + 24);
        }
        memcpy(y + q, &a0, sizeof a0);
        memcpy(y + q + 8, &a1, sizeof a1);
        memcpy(y + q + 16, &a2, sizeof a2);
        memcpy(y + q + 24, &a3, sizeof a3);
    }
    for (; q + 8 <= count; q += 8) {
        v8f a0 = {0};
        for (Py_ssize_t t = 0; t < taps; t++) {
            const float *src = ((t & 1) ? od : ev) + q + (t >> 1);
            const v8f ct = {c[t], c[t], c[t], c[t], c[t], c[t], c[t], c[t]};
            a0 += ct * LD(src);
        }
        memcpy(y + q, &a0, sizeof a0);
    }
    for (; q < count; q++) {
        /* same lane arithmetic as above, one lane used */
        v8f a0 = {0};
        for (Py_ssize_t t = 0; t < taps; t++) {
            const float *src = ((t & 1) ? od : ev) + q + (t >> 1);
            const v8f ct = {c[t], 0, 0, 0, 0, 0, 0, 0};
            const v8f xv = {src[0], 0, 0, 0, 0, 0, 0, 0};
            a0 += ct * xv;
        }
        y[q] = a0[0];
    }
}
#else
static void
decim2_core(const float *c, const float *w, Py_ssize_t taps, Py_ssize_t count, float *y, float *scratch)
{
    for (Py_ssize_t q = 0; q < count; q++) {
        float a = 0.0f;
        for (Py_ssize_t t = 0; t < taps; t++) a += c[t] * w[2 * q + t];
        y[q] = a;
    }
}
#endif

/* Append src (int16 or float32) to a work buffer as float32. */
static void
load_input(const void *src, int is_f, Py_ssize_t n, float *w)
{
    if (is_f) {
        const float *s = (const float *)src;
        for (Py_ssize_t i = 0; i < n; i++) {
            float v = s[i];
            if (v != v) {
                v = 0.0f;
            }
            w[i] = v > FLOAT_IN_LIMIT ? FLOAT_IN_LIMIT : (v < -FLOAT_IN_LIMIT ? -FLOAT_IN_LIMIT : v);
        }
    }
    else {
        const int16_t *s = (const int16_t *)src;
        for (Py_ssize_t i = 0; i < n; i++) w[i] = (float)s[i];
    }
}

/* Number of outputs `n` inputs complete; in 64-bit arithmetic on every platform (with up, down <=
 * 100000 and n < 2^63 / 100000 nothing overflows).  -1 (with an exception set) when the count would not
 * fit a Py_ssize_t (32 bits on armhf). */
static Py_ssize_t
n_outputs(Py_ssize_t n, Py_ssize_t up, Py_ssize_t down, long long acc)
{
    const long long total = (long long)n * up - acc;
    const long long count = total > 0 ? (total + down - 1) / down : 0;
    if (count > (long long)(PY_SSIZE_T_MAX / (Py_ssize_t)(2 * sizeof(float)))) {
        PyErr_SetString(PyExc_OverflowError, "resample: too many output samples for one call");
        return -1;
    }
    return (Py_ssize_t)count;
}

/* Geometry arguments as Py_ssize_t (no assumption on the size of `long`); -1 on error. */
static int
get_size(PyObject *obj, Py_ssize_t *v)
{
    *v = PyLong_AsSsize_t(obj);
    return (*v == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
check_geometry(const char *fn, Py_ssize_t up, Py_ssize_t down, Py_ssize_t taps, long long acc)
{
    if (up < 1 || down < 1 || taps < TAP_BLOCK || taps % TAP_BLOCK || up > 100000 || down > 100000 ||
        taps > 100000 || acc < 0 || acc >= down) {
        PyErr_Format(PyExc_ValueError,
                     "%s: bad geometry up=%zd down=%zd taps=%zd acc=%lld "
                     "(need taps a positive multiple of %d, 0 <= acc < down)",
                     fn, up, down, taps, acc, TAP_BLOCK);
        return -1;
    }
    return 0;
}

static void
release_all(buf_t *bufs, int n)
{
    for (int i = 0; i < n; i++) buf_release(&bufs[i]);
}

/* Final stage: outputs (unscaled sums) -> out, scaled by 2^-23. */
static void
store_output(const float *h, const float *w, Py_ssize_t up, Py_ssize_t down, Py_ssize_t taps, long long acc,
             Py_ssize_t count, void *out, int out_is_f, float *tmp)
{
    float *y = out_is_f ? (float *)out : tmp;
    resample_core(h, w, up, down, taps, acc, count, y);
    if (out_is_f) {
        for (Py_ssize_t i = 0; i < count; i++) y[i] *= COEF_UNIT;
    }
    else {
        int16_t *o = (int16_t *)out;
        for (Py_ssize_t i = 0; i < count; i++) o[i] = sat_round_f(y[i] * COEF_UNIT);
    }
}

#define TMP_STACK 1024

static PyObject *
py_resample(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    /* resample(bank, up, down, taps, work, src, acc, out) -> new acc */
    buf_t b[4]; /* bank, work, src, out */
    Py_ssize_t up, down, taps;
    long long acc;
    if (check_nargs(nargs, 8, "resample") < 0 || get_size(args[1], &up) < 0 || get_size(args[2], &down) < 0 ||
        get_size(args[3], &taps) < 0) {
        return NULL;
    }
    acc = PyLong_AsLongLong(args[6]);
    if ((acc == -1 && PyErr_Occurred()) || check_geometry("resample", up, down, taps, acc) < 0) {
        return NULL;
    }
    if (buf_get(args[0], &b[0], 0, "f", "bank", "float32") < 0) {
        return NULL;
    }
    if (buf_get(args[4], &b[1], 1, "f", "work", "float32") < 0) {
        release_all(b, 1);
        return NULL;
    }
    if (buf_get(args[5], &b[2], 0, "hf", "src", "int16 or float32") < 0) {
        release_all(b, 2);
        return NULL;
    }
    if (buf_get(args[7], &b[3], 1, "hf", "out", "int16 or float32") < 0) {
        release_all(b, 3);
        return NULL;
    }
    const Py_ssize_t n = buf_len(&b[2]);
    const Py_ssize_t hist = taps - 1;
    const Py_ssize_t count = n_outputs(n, up, down, acc);
    if (count < 0) {
        release_all(b, 4);
        return NULL;
    }
    const int src_is_f = fmt_char(&b[2].view) == 'f';
    const int out_is_f = fmt_char(&b[3].view) == 'f';
    const char *err = NULL;
    if ((long long)buf_len(&b[0]) != (long long)up * taps) { /* up * taps may exceed a 32-bit size */
        err = "resample: bank must hold up * taps coefficients";
    }
    else if (buf_len(&b[1]) < hist + n) {
        err = "resample: work buffer shorter than taps - 1 + len(src)";
    }
    else if (buf_len(&b[3]) != count) {
        err = "resample: out must hold exactly ceil((len(src) * up - acc) / down) samples";
    }
    else if (src_is_f != out_is_f) {
        err = "resample: src and out must have the same dtype";
    }
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        release_all(b, 4);
        return NULL;
    }
    const float *h = (const float *)b[0].view.buf;
    float *w = (float *)b[1].view.buf;
    float stack_tmp[TMP_STACK];
    float *tmp = stack_tmp;
    if (!out_is_f && count > TMP_STACK) {
        tmp = (float *)PyMem_RawMalloc((size_t)count * sizeof(float));
        if (tmp == NULL) {
            release_all(b, 4);
            return PyErr_NoMemory();
        }
    }
    Py_BEGIN_ALLOW_THREADS
    load_input(b[2].view.buf, src_is_f, n, w + hist);
    store_output(h, w, up, down, taps, acc, count, b[3].view.buf, out_is_f, tmp);
    memmove(w, w + n, (size_t)hist * sizeof(float)); /* the last taps - 1 samples are the history */
    Py_END_ALLOW_THREADS
    if (tmp != stack_tmp) {
        PyMem_RawFree(tmp);
    }
    release_all(b, 4);
    return PyLong_FromLongLong(acc + (long long)count * down - (long long)n * up);
}

static PyObject *
py_resample2(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    /* resample2(bank1, taps1, work1, bank2, up, down, taps2, work2, src, acc, out) -> new acc
     *
     * A 2:1 decimating stage (bank1, taps1) feeding a rational stage (bank2, up/down).
     * acc = acc1 + 2 * acc2 packs both phase accumulators.  The intermediate signal
     * goes straight into work2 as float32 (scaled, not rounded). */
    buf_t b[6]; /* bank1, work1, bank2, work2, src, out */
    Py_ssize_t taps1, up, down, taps2;
    long long acc;
    if (check_nargs(nargs, 11, "resample2") < 0 || get_size(args[1], &taps1) < 0 || get_size(args[4], &up) < 0 ||
        get_size(args[5], &down) < 0 || get_size(args[6], &taps2) < 0) {
        return NULL;
    }
    acc = PyLong_AsLongLong(args[9]);
    if (acc == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const long long acc1 = acc >= 0 ? acc % 2 : -1, acc2 = acc >= 0 ? acc / 2 : -1;
    if (check_geometry("resample2 (stage 1)", 1, 2, taps1, acc1) < 0 ||
        check_geometry("resample2 (stage 2)", up, down, taps2, acc2) < 0) {
        return NULL;
    }
    static const struct {
        int arg, writable;
        const char *fmt, *name, *expect;
    } spec[6] = {
        {0, 0, "f", "bank1", "float32"},        {2, 1, "f", "work1", "float32"},
        {3, 0, "f", "bank2", "float32"},        {7, 1, "f", "work2", "float32"},
        {8, 0, "hf", "src", "int16 or float32"}, {10, 1, "hf", "out", "int16 or float32"},
    };
    for (int i = 0; i < 6; i++) {
        if (buf_get(args[spec[i].arg], &b[i], spec[i].writable, spec[i].fmt, spec[i].name, spec[i].expect) < 0) {
            release_all(b, i);
            return NULL;
        }
    }
    const Py_ssize_t n = buf_len(&b[4]);
    const Py_ssize_t hist1 = taps1 - 1, hist2 = taps2 - 1;
    const Py_ssize_t count1 = n_outputs(n, 1, 2, acc1);
    const Py_ssize_t count = count1 < 0 ? -1 : n_outputs(count1, up, down, acc2);
    if (count < 0) {
        release_all(b, 6);
        return NULL;
    }
    const int src_is_f = fmt_char(&b[4].view) == 'f';
    const int out_is_f = fmt_char(&b[5].view) == 'f';
    const char *err = NULL;
    if (buf_len(&b[0]) != taps1 || (long long)buf_len(&b[2]) != (long long)up * taps2) {
        err = "resample2: bank1 must hold taps1 and bank2 up * taps2 coefficients";
    }
    else if (buf_len(&b[1]) < hist1 + n || buf_len(&b[3]) < hist2 + count1) {
        err = "resample2: work buffer too short";
    }
    else if (buf_len(&b[5]) != count) {
        err = "resample2: out has the wrong length";
    }
    else if (src_is_f != out_is_f) {
        err = "resample2: src and out must have the same dtype";
    }
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        release_all(b, 6);
        return NULL;
    }
    const float *h1 = (const float *)b[0].view.buf, *h2 = (const float *)b[2].view.buf;
    float *w1 = (float *)b[1].view.buf, *w2 = (float *)b[3].view.buf;
    /* tmp: int16 output staging (count floats) + even/odd split for stage 1 */
    /* count and count1 are below PY_SSIZE_T_MAX / 8 (n_outputs), so this fits a size_t even on 32 bits */
    const size_t need = (size_t)count + 2 * (size_t)(count1 + taps1 / 2 + 1);
    float stack_tmp[4 * TMP_STACK];
    float *tmp = stack_tmp;
    if (need > 4 * TMP_STACK) {
        tmp = (float *)PyMem_RawMalloc(need * sizeof(float));
        if (tmp == NULL) {
            release_all(b, 6);
            return PyErr_NoMemory();
        }
    }
    Py_BEGIN_ALLOW_THREADS
    load_input(b[4].view.buf, src_is_f, n, w1 + hist1);
    float *mid = w2 + hist2;
    decim2_core(h1, w1 + acc1, taps1, count1, mid, tmp + count);
    for (Py_ssize_t i = 0; i < count1; i++) mid[i] *= COEF_UNIT;
    memmove(w1, w1 + n, (size_t)hist1 * sizeof(float));
    store_output(h2, w2, up, down, taps2, acc2, count, b[5].view.buf, out_is_f, tmp);
    memmove(w2, w2 + count1, (size_t)hist2 * sizeof(float));
    Py_END_ALLOW_THREADS
    if (tmp != stack_tmp) {
        PyMem_RawFree(tmp);
    }
    release_all(b, 6);
    const long long new1 = acc1 + 2LL * count1 - n;
    const long long new2 = acc2 + (long long)count * down - (long long)count1 * up;
    return PyLong_FromLongLong(new1 + 2 * new2);
}

/* ------------------------------------------------------------------ WebSocket frames
 *
 * Self-contained (nothing above is used): the transport builds its client frames here, because
 * websocket-client masks in Python (or in wsaccel, when installed).  The pure-Python twin is
 * rtedge/transport/_frame.py; tests compare both with websocket-client's own frames. */

static PyObject *
py_ws_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ws_frame(opcode, payload, mask_key) takes 3 arguments");
        return NULL;
    }
    const long opcode = PyLong_AsLong(args[0]);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (opcode < 0 || opcode > 15) {
        PyErr_SetString(PyExc_ValueError, "ws_frame: opcode must be in 0..15");
        return NULL;
    }
    Py_buffer payload, key;
    if (PyObject_GetBuffer(args[1], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    PyObject *out = NULL;
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "ws_frame: the mask key must be 4 bytes");
        goto done;
    }
    const uint64_t n = (uint64_t)payload.len;
    const Py_ssize_t head = n < 126 ? 2 : (n < 65536 ? 4 : 10);
    if (payload.len > PY_SSIZE_T_MAX - head - 4) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, head + 4 + payload.len);
    if (out == NULL) {
        goto done;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    o[0] = (unsigned char)(0x80 | opcode); /* FIN: rtedge never fragments */
    if (n < 126) {
        o[1] = (unsigned char)(0x80 | n); /* 0x80: masked, as every client frame must be */
    } else if (n < 65536) {
        o[1] = 0x80 | 126;
        o[2] = (unsigned char)(n >> 8);
        o[3] = (unsigned char)n;
    } else {
        o[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) {
            o[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        }
    }
    const unsigned char *k = (const unsigned char *)key.buf;
    const unsigned char *src = (const unsigned char *)payload.buf;
    unsigned char *dst = o + head + 4;
    memcpy(o + head, k, 4);
    /* the 4-byte key repeated to a 64-bit word; byte order does not matter: bytes map to bytes */
    unsigned char k8b[8];
    for (int i = 0; i < 8; i++) {
        k8b[i] = k[i & 3];
    }
    uint64_t k8;
    memcpy(&k8, k8b, sizeof k8);
    const Py_ssize_t len = payload.len;
    Py_ssize_t i = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i + 8 <= len; i += 8) { /* memcpy: no alignment assumption (ARM) */
        uint64_t w;
        memcpy(&w, src + i, sizeof w);
        w ^= k8;
        memcpy(dst + i, &w, sizeof w);
    }
    for (; i < len; i++) {
        dst[i] = src[i] ^ k[i & 3];
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&payload);
    PyBuffer_Release(&key);
    return out;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef codec_methods[] = {
    {"ulaw_encode", (PyCFunction)(void (*)(void))py_ulaw_encode, METH_FASTCALL, "ulaw_encode(src, dst)"},
    {"alaw_encode", (PyCFunction)(void (*)(void))py_alaw_encode, METH_FASTCALL, "alaw_encode(src, dst)"},
    {"ulaw_decode", (PyCFunction)(void (*)(void))py_ulaw_decode, METH_FASTCALL, "ulaw_decode(src, dst)"},
    {"alaw_decode", (PyCFunction)(void (*)(void))py_alaw_decode, METH_FASTCALL, "alaw_decode(src, dst)"},
    {"i16_to_f32", (PyCFunction)(void (*)(void))py_i16_to_f32, METH_FASTCALL, "i16_to_f32(src, dst)"},
    {"f32_to_i16", (PyCFunction)(void (*)(void))py_f32_to_i16, METH_FASTCALL, "f32_to_i16(src, dst)"},
    {"stereo_to_mono_i16", (PyCFunction)(void (*)(void))py_stereo_to_mono_i16, METH_FASTCALL,
     "stereo_to_mono_i16(src, dst)"},
    {"stereo_to_mono_f32", (PyCFunction)(void (*)(void))py_stereo_to_mono_f32, METH_FASTCALL,
     "stereo_to_mono_f32(src, dst)"},
    {"gain_i16", (PyCFunction)(void (*)(void))py_gain_i16, METH_FASTCALL, "gain_i16(src, dst, gain)"},
    {"gain_f32", (PyCFunction)(void (*)(void))py_gain_f32, METH_FASTCALL, "gain_f32(src, dst, gain)"},
    {"resample", (PyCFunction)(void (*)(void))py_resample, METH_FASTCALL,
     "resample(bank, up, down, taps, work, src, acc, out) -> acc"},
    {"resample2", (PyCFunction)(void (*)(void))py_resample2, METH_FASTCALL,
     "resample2(bank1, taps1, work1, bank2, up, down, taps2, work2, src, acc, out) -> acc"},
    {"ws_frame", (PyCFunction)(void (*)(void))py_ws_frame, METH_FASTCALL,
     "ws_frame(opcode, payload, mask_key) -> bytes: one masked, final WebSocket frame"},
    {NULL, NULL, 0, NULL},
};

static int
codec_exec(PyObject *m)
{
    g711_init();
    /* dtypes the resample kernel wants for its bank and work buffers */
    if (PyModule_AddStringConstant(m, "BANK_DTYPE", "float32") < 0 ||
        PyModule_AddStringConstant(m, "WORK_DTYPE", "float32") < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot codec_slots[] = {
    {Py_mod_exec, codec_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef codec_module = {
    PyModuleDef_HEAD_INIT,
    "rtedge.audio._codec",
    "C kernels for rtedge.audio.codec (see _codec_numpy.py for the numpy twin).",
    0,
    codec_methods,
    codec_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__codec(void)
{
    return PyModuleDef_Init(&codec_module);
}
