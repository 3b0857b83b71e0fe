/*
 * rtedge.audio._aec -- libspeexdsp's acoustic echo canceller and preprocessor, bound for
 * rtedge.audio.aec.  Optional: built only where libspeexdsp's headers and library are present
 * (Debian/Pi OS: libspeexdsp-dev); rtedge.audio.aec says so clearly when it is missing.
 *
 * One Canceller holds a SpeexEchoState (MDF adaptive filter, frame_size samples per call,
 * filter_length samples of echo tail) and, optionally, a SpeexPreprocessState tied to it for
 * residual echo and noise suppression.  All validation of rates and settings is done in aec.py;
 * here only buffer types and lengths are checked so a bad call cannot write out of bounds.
 * process() releases the GIL; a Canceller must be fed from one thread at a time (a second
 * concurrent call raises RuntimeError instead of corrupting the filter state).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    SpeexEchoState *echo;
    SpeexPreprocessState *pre;
    int frame_size;
    int filter_length;
    int rate;
    int preprocess;
    int denoise;
    int echo_suppress;
    int echo_suppress_active;
    int noise_suppress;
    int busy;
} Canceller;

static void
canceller_free_states(Canceller *self)
{
    if (self->pre) {
        speex_preprocess_state_destroy(self->pre);
        self->pre = NULL;
    }
    if (self->echo) {
        speex_echo_state_destroy(self->echo);
        self->echo = NULL;
    }
}

static int
canceller_make_states(Canceller *self)
{
    self->echo = speex_echo_state_init(self->frame_size, self->filter_length);
    if (!self->echo) {
        PyErr_NoMemory();
        return -1;
    }
    speex_echo_ctl(self->echo, SPEEX_ECHO_SET_SAMPLING_RATE, &self->rate);
    if (!self->preprocess) {
        return 0;
    }
    self->pre = speex_preprocess_state_init(self->frame_size, self->rate);
    if (!self->pre) {
        canceller_free_states(self);
        PyErr_NoMemory();
        return -1;
    }
    speex_preprocess_ctl(self->pre, SPEEX_PREPROCESS_SET_ECHO_STATE, self->echo);
    speex_preprocess_ctl(self->pre, SPEEX_PREPROCESS_SET_DENOISE, &self->denoise);
    speex_preprocess_ctl(self->pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &self->noise_suppress);
    speex_preprocess_ctl(self->pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, &self->echo_suppress);
    speex_preprocess_ctl(self->pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, &self->echo_suppress_active);
    return 0;
}

static int
canceller_init(Canceller *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"frame_size", "filter_length", "rate", "preprocess", "denoise",
                             "echo_suppress_db", "echo_suppress_active_db", "noise_suppress_db", NULL};
    int frame_size, filter_length, rate, preprocess = 1, denoise = 1;
    int echo_suppress = -40, echo_suppress_active = -15, noise_suppress = -15;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iii|ppiii", kwlist, &frame_size, &filter_length, &rate,
                                     &preprocess, &denoise, &echo_suppress, &echo_suppress_active,
                                     &noise_suppress)) {
        return -1;
    }
    if (frame_size <= 0 || filter_length < frame_size || rate <= 0) {
        PyErr_SetString(PyExc_ValueError, "need frame_size > 0, filter_length >= frame_size, rate > 0");
        return -1;
    }
    canceller_free_states(self);
    self->frame_size = frame_size;
    self->filter_length = filter_length;
    self->rate = rate;
    self->preprocess = preprocess;
    self->denoise = denoise;
    self->echo_suppress = echo_suppress;
    self->echo_suppress_active = echo_suppress_active;
    self->noise_suppress = noise_suppress;
    self->busy = 0;
    return canceller_make_states(self);
}

static void
canceller_dealloc(Canceller *self)
{
    canceller_free_states(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A 1-D C-contiguous buffer of exactly n int16 samples ('h'; raw bytes of 2n are accepted too). */
static int
get_frame(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t n, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') {
        f++;
    }
    int is_h = (f[0] == 'h' && f[1] == '\0' && view->itemsize == 2);
    int is_bytes = ((f[0] == 'B' || f[0] == 'b' || f[0] == 'c') && f[1] == '\0');
    if ((!is_h && !is_bytes) || view->len != n * 2) {
        PyErr_Format(PyExc_ValueError, "%s must hold exactly %zd int16 samples", what, n);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
canceller_process(Canceller *self, PyObject *args)
{
    PyObject *mic_obj, *ref_obj, *out_obj, *linear_obj = Py_None;
    Py_buffer mic, ref, out, linear;
    int have_linear = 0;
    if (!PyArg_ParseTuple(args, "OOO|O", &mic_obj, &ref_obj, &out_obj, &linear_obj)) {
        return NULL;
    }
    if (self->echo == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Canceller is not initialised");
        return NULL;
    }
    Py_ssize_t n = self->frame_size;
    if (get_frame(mic_obj, &mic, 0, n, "mic") < 0) {
        return NULL;
    }
    if (get_frame(ref_obj, &ref, 0, n, "ref") < 0) {
        PyBuffer_Release(&mic);
        return NULL;
    }
    if (get_frame(out_obj, &out, 1, n, "out") < 0) {
        PyBuffer_Release(&mic);
        PyBuffer_Release(&ref);
        return NULL;
    }
    if (linear_obj != Py_None) {
        if (get_frame(linear_obj, &linear, 1, n, "linear") < 0) {
            PyBuffer_Release(&mic);
            PyBuffer_Release(&ref);
            PyBuffer_Release(&out);
            return NULL;
        }
        have_linear = 1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Canceller.process called from two threads at once");
        goto fail;
    }
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    speex_echo_cancellation(self->echo, (const spx_int16_t *)mic.buf, (const spx_int16_t *)ref.buf,
                            (spx_int16_t *)out.buf);
    if (have_linear) {
        memcpy(linear.buf, out.buf, (size_t)n * 2);
    }
    if (self->pre) {
        speex_preprocess_run(self->pre, (spx_int16_t *)out.buf);
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&mic);
    PyBuffer_Release(&ref);
    PyBuffer_Release(&out);
    if (have_linear) {
        PyBuffer_Release(&linear);
    }
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&mic);
    PyBuffer_Release(&ref);
    PyBuffer_Release(&out);
    if (have_linear) {
        PyBuffer_Release(&linear);
    }
    return NULL;
}

static PyObject *
canceller_reset(Canceller *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Canceller.reset called during process");
        return NULL;
    }
    canceller_free_states(self);
    if (canceller_make_states(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Copy the adaptive filter's current impulse response (filter_length int32 samples, speexdsp's
 * scaling) into a writable buffer: what the drift tracker in aec.py follows. */
static PyObject *
canceller_impulse_response(Canceller *self, PyObject *args)
{
    PyObject *out_obj;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "O", &out_obj)) {
        return NULL;
    }
    if (self->echo == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Canceller is not initialised");
        return NULL;
    }
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    spx_int32_t size = 0;
    speex_echo_ctl(self->echo, SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE, &size);
    const char *f = out.format ? out.format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') {
        f++;
    }
    int is_i32 = ((f[0] == 'i' || f[0] == 'l') && f[1] == '\0' && out.itemsize == 4);
    if (!is_i32 || out.len != (Py_ssize_t)size * 4) {
        PyErr_Format(PyExc_ValueError, "out must hold exactly %d int32 samples", (int)size);
        PyBuffer_Release(&out);
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Canceller.impulse_response called during process");
        PyBuffer_Release(&out);
        return NULL;
    }
    speex_echo_ctl(self->echo, SPEEX_ECHO_GET_IMPULSE_RESPONSE, out.buf);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef canceller_methods[] = {
    {"impulse_response", (PyCFunction)canceller_impulse_response, METH_VARARGS,
     "impulse_response(out): fill out (filter_length int32) with the adaptive filter's impulse response."},
    {"process", (PyCFunction)canceller_process, METH_VARARGS,
     "process(mic, ref, out, linear=None): cancel one frame; out (and linear, the canceller's output "
     "before the preprocessor) receive frame_size int16 samples."},
    {"reset", (PyCFunction)canceller_reset, METH_NOARGS, "Forget the adapted filter and the preprocessor state."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CancellerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rtedge.audio._aec.Canceller",
    .tp_basicsize = sizeof(Canceller),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Canceller(frame_size, filter_length, rate, preprocess=True, denoise=True, "
              "echo_suppress_db=-40, echo_suppress_active_db=-15, noise_suppress_db=-15)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)canceller_init,
    .tp_dealloc = (destructor)canceller_dealloc,
    .tp_methods = canceller_methods,
};

static struct PyModuleDef aec_module = {
    PyModuleDef_HEAD_INIT, "_aec", "libspeexdsp echo canceller + preprocessor (see aec.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__aec(void)
{
    if (PyType_Ready(&CancellerType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&aec_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&CancellerType);
    if (PyModule_AddObject(m, "Canceller", (PyObject *)&CancellerType) < 0) {
        Py_DECREF(&CancellerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
