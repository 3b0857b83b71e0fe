"""Pure-numpy twin of the ``_codec`` C extension.

Every function here has the same name, signature and result as its C
counterpart.  The kernels do no validation: ``rtedge.audio.codec`` checks
dtypes, shapes and lengths before calling them.  Outputs are written into a
caller-provided array (``dst``/``out``); nothing is kept between calls.

G.711 follows the ITU-T G.711 algorithm as the G.191 software tools library
implements it (ones'-complement magnitude for negative inputs, 14-bit mu-law
and 13-bit A-law linear domains).  The encoders are 65,536-entry lookup
tables built once from that algorithm.

The resampler works in exact integer arithmetic carried in float64: the
coefficients are integers (Q23, every polyphase row summing to exactly 2^23)
and the samples are integers (int16 values as they are; float32 values as
``round(x * 2^24)`` with ``x`` clipped to [-8, 8], NaN read as 0).  Every
product and partial sum stays below 2^53, so an output sample does not depend
on the summation order: BLAS may sum in any order and any split of the input
into chunks gives the same bits.  The C kernel uses the same coefficients in
float32 with a fixed summation order; the two agree within float32 rounding
(at most 1 LSB for int16 output).

Owns: the numpy twin of every C kernel, bit for bit.  Must not: differ from the C kernels (a test compares
them).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "f32_to_i16",
    "gain_f32",
    "gain_i16",
    "i16_to_f32",
    "resample",
    "resample2",
    "stereo_to_mono_f32",
    "stereo_to_mono_i16",
    "ulaw_decode",
    "ulaw_encode",
]

# --------------------------------------------------------------------------- G.711 tables


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Number of significant bits of each non-negative int32 value (0 for 0)."""
    out = np.zeros(v.shape, dtype=np.int32)
    w = v.copy()
    while np.any(w):
        nz = w != 0
        out += nz
        w >>= 1
    return out


def _ulaw_encode_table() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32)
    # 14-bit magnitude; negative values use the ones' complement (G.191).
    mag = np.where(x < 0, ~x, x) >> 2
    biased = np.minimum(mag + 33, 0x1FFF)
    seg = _bit_length(biased) - 6  # biased >= 33, so seg is 0..7
    mant = (biased >> (seg + 1)) & 0x0F
    code = 0xFF ^ ((seg << 4) | mant | np.where(x < 0, 0x80, 0))
    table = np.empty(65536, dtype=np.uint8)
    table[x.astype(np.uint16)] = code.astype(np.uint8)  # index by the int16 bit pattern
    return table


def _alaw_encode_table() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32)
    mag = np.where(x < 0, ~x, x) >> 4  # 12-bit magnitude, 0..2047
    seg = np.maximum(_bit_length(mag) - 4, 0)  # 0..7
    mant = np.where(seg == 0, mag, mag >> np.maximum(seg - 1, 0)) & 0x0F
    code = ((seg << 4) | mant | np.where(x < 0, 0, 0x80)) ^ 0x55
    table = np.empty(65536, dtype=np.uint8)
    table[x.astype(np.uint16)] = code.astype(np.uint8)
    return table


def _ulaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32)
    inv = ~code & 0xFF
    seg = (inv >> 4) & 0x07
    mant = inv & 0x0F
    mag = (((mant << 3) + 0x84) << seg) - 0x84
    return np.where(inv & 0x80, -mag, mag).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32)
    v = code ^ 0x55
    seg = (v >> 4) & 0x07
    mant = v & 0x0F
    mag = np.where(seg == 0, (mant << 4) + 8, ((mant + 16) << 4) + 8)
    mag = np.where(seg > 1, mag << np.maximum(seg - 1, 0), mag)
    return np.where(code & 0x80, mag, -mag).astype(np.int16)


ULAW_ENCODE_TABLE = _ulaw_encode_table()
ALAW_ENCODE_TABLE = _alaw_encode_table()
ULAW_DECODE_TABLE = _ulaw_decode_table()
ALAW_DECODE_TABLE = _alaw_decode_table()
for _t in (ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_DECODE_TABLE):
    _t.flags.writeable = False
del _t


def ulaw_encode(src: np.ndarray, dst: np.ndarray) -> None:
    np.take(ULAW_ENCODE_TABLE, src.view(np.uint16), out=dst)


def alaw_encode(src: np.ndarray, dst: np.ndarray) -> None:
    np.take(ALAW_ENCODE_TABLE, src.view(np.uint16), out=dst)


def ulaw_decode(src: np.ndarray, dst: np.ndarray) -> None:
    np.take(ULAW_DECODE_TABLE, src, out=dst)


def alaw_decode(src: np.ndarray, dst: np.ndarray) -> None:
    np.take(ALAW_DECODE_TABLE, src, out=dst)


# --------------------------------------------------------------------------- sample formats

_SCALE_IN = np.float32(1.0 / 32768.0)
_SCALE_OUT = np.float32(32768.0)


def i16_to_f32(src: np.ndarray, dst: np.ndarray) -> None:
    np.multiply(src, _SCALE_IN, out=dst, dtype=np.float32)


def _round_saturate_into(v: np.ndarray, dst: np.ndarray) -> None:
    """float array (modified in place) -> int16 dst: NaN -> 0, round half to even, saturate."""
    np.nan_to_num(v, copy=False, nan=0.0, posinf=32767.0, neginf=-32768.0)
    np.minimum(v, 32767.0, out=v)
    np.maximum(v, -32768.0, out=v)
    np.rint(v, out=v)
    dst[...] = v  # exact: v holds integers in range


def f32_to_i16(src: np.ndarray, dst: np.ndarray) -> None:
    v = np.multiply(src, _SCALE_OUT, dtype=np.float32)
    _round_saturate_into(v, dst)


def stereo_to_mono_i16(src: np.ndarray, dst: np.ndarray) -> None:
    s = src[0::2].astype(np.int32)
    s += src[1::2]
    np.right_shift(s, 1, out=s)  # floor((l + r) / 2)
    dst[...] = s


def stereo_to_mono_f32(src: np.ndarray, dst: np.ndarray) -> None:
    np.add(src[0::2], src[1::2], out=dst)
    np.multiply(dst, np.float32(0.5), out=dst)


def gain_i16(src: np.ndarray, dst: np.ndarray, gain: float) -> None:
    v = np.multiply(src, np.float64(gain), dtype=np.float64)  # exact product
    _round_saturate_into(v, dst)


def gain_f32(src: np.ndarray, dst: np.ndarray, gain: float) -> None:
    np.multiply(src, np.float32(gain), out=dst)
    np.nan_to_num(dst, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    np.minimum(dst, np.float32(1.0), out=dst)
    np.maximum(dst, np.float32(-1.0), out=dst)


# --------------------------------------------------------------------------- resampler


BANK_DTYPE = "float64"  # dtype the resample kernel wants for ``bank``
WORK_DTYPE = "float64"  # ... and for ``work``
FIX_IN = 16777216.0  # 2^24, float32 input scale
FIX_COEF = 8388608.0  # 2^23, coefficient scale
FLOAT_IN_LIMIT = 8.0


def _load_input(src: np.ndarray, dst: np.ndarray) -> bool:
    """Write src into dst (float64) as exact integers; return True for float input."""
    if src.dtype == np.float32:
        dst[...] = src
        np.nan_to_num(dst, copy=False, nan=0.0, posinf=FLOAT_IN_LIMIT, neginf=-FLOAT_IN_LIMIT)
        np.clip(dst, -FLOAT_IN_LIMIT, FLOAT_IN_LIMIT, out=dst)
        np.multiply(dst, FIX_IN, out=dst)
        np.rint(dst, out=dst)
        return True
    dst[...] = src
    return False


_BLOCK_ELEMENTS = 1 << 19  # bound on window elements gathered at once (4 MiB of float64)


def _fir_exact(
    bank: np.ndarray, up: int, down: int, taps: int, buf: np.ndarray, acc: int, count: int
) -> np.ndarray:
    """The ``count`` next outputs as exact integer sums (float64).

    Every index array handed to numpy has the platform's ``intp`` dtype (int32 on 32-bit ARM, where
    ``np.take`` refuses int64 indices), and stays small: positions are split into a block base kept
    as a Python int and offsets within the block, so nothing overflows a 32-bit index on long input.
    """
    y = np.empty(count, dtype=np.float64)
    if not count:
        return y
    rows = bank.reshape(up, taps)
    windows_all = np.lib.stride_tricks.sliding_window_view(buf, taps)
    block = max(1, _BLOCK_ELEMENTS // taps)
    for first in range(0, count, block):
        n = min(block, count - first)
        base, phase0 = divmod(acc + down * first, up)  # window start and phase of output `first`
        offset = phase0 + down * np.arange(n, dtype=np.intp)  # < up + down * block: fits any intp
        start, phase = np.divmod(offset, up)
        windows = np.take(windows_all, start + base, axis=0)
        if up == 1:
            y[first : first + n] = windows @ rows[0]
        elif up <= 4:
            y[first : first + n] = np.take_along_axis(windows @ rows.T, phase[:, None], axis=1)[:, 0]
        else:
            y[first : first + n] = np.einsum("ij,ij->i", windows, np.take(rows, phase, axis=0))
    return y


def _n_outputs(n: int, up: int, down: int, acc: int) -> int:
    total = n * up - acc
    return (total + down - 1) // down if total > 0 else 0


def _store_output(y: np.ndarray, out: np.ndarray, scale: float) -> None:
    if out.dtype == np.float32:
        np.multiply(y, scale, out=out, casting="same_kind")
    else:
        np.multiply(y, scale, out=y)
        _round_saturate_into(y, out)


def resample(
    bank: np.ndarray,
    up: int,
    down: int,
    taps: int,
    work: np.ndarray,
    src: np.ndarray,
    acc: int,
    out: np.ndarray,
) -> int:
    """One streaming step of the rational polyphase resampler.

    ``bank`` is ``BANK_DTYPE``, 1-D, ``up * taps`` integer coefficients: ``up`` rows
    of ``taps`` (phase-major), each row time-reversed so a dot product with a
    forward input window gives one output sample.  ``work`` is a
    ``WORK_DTYPE`` buffer of at least ``taps - 1 + len(src)`` samples whose
    first ``taps - 1`` entries are the input history; on return they hold the
    new history.  ``acc`` is the phase accumulator ``K*down - N*up`` (K
    outputs made, N inputs consumed), in ``[0, down)``.  ``out`` (same dtype as
    ``src``: int16 or float32) must have exactly
    ``max(0, ceil((len(src)*up - acc) / down))`` samples.  Returns the new
    ``acc``.
    """
    n = src.shape[0]
    hist = taps - 1
    buf = work[: hist + n]
    is_float = _load_input(src, buf[hist:])
    count = out.shape[0]
    y = _fir_exact(bank, up, down, taps, buf, acc, count)
    _store_output(y, out, 1.0 / (FIX_IN * FIX_COEF) if is_float else 1.0 / FIX_COEF)
    if hist:
        work[:hist] = buf[n:]
    return int(acc + count * down - n * up)


# Stage-1 output of resample2 is kept on a fixed-point grid so stage 2 stays exact:
# int16 input -> units of 2^-8 LSB, float input -> units of 2^-24.
_MID_SHIFT_INT = 2.0**-15  # S1 (Q23 * int16) -> 2^-8 LSB grid
_MID_SHIFT_FLOAT = 2.0**-23  # S1 (Q23 * 2^24 fixed) -> 2^24 fixed


def resample2(
    bank1: np.ndarray,
    taps1: int,
    work1: np.ndarray,
    bank2: np.ndarray,
    up: int,
    down: int,
    taps2: int,
    work2: np.ndarray,
    src: np.ndarray,
    acc: int,
    out: np.ndarray,
) -> int:
    """Two cascaded stages: a 2:1 decimator (``bank1``) then ``up/down`` (``bank2``).

    ``acc`` packs both phase accumulators as ``acc1 + 2 * acc2``.  ``work1``
    needs ``taps1 - 1 + len(src)`` samples, ``work2`` ``taps2 - 1 + n1`` where
    ``n1`` is the number of stage-1 outputs.  Here the intermediate signal is
    rounded to a fine fixed-point grid (2^-8 LSB for int16, 2^-24 for float
    input) so both stages stay exact; the C kernel keeps it in float32.
    """
    acc1, acc2 = acc % 2, acc // 2
    n = src.shape[0]
    hist1, hist2 = taps1 - 1, taps2 - 1
    buf1 = work1[: hist1 + n]
    is_float = _load_input(src, buf1[hist1:])
    count1 = _n_outputs(n, 1, 2, acc1)
    buf2 = work2[: hist2 + count1]
    mid = buf2[hist2:]
    mid[...] = _fir_exact(bank1, 1, 2, taps1, buf1, acc1, count1)
    np.multiply(mid, _MID_SHIFT_FLOAT if is_float else _MID_SHIFT_INT, out=mid)
    np.rint(mid, out=mid)
    work1[:hist1] = buf1[n:]
    count = out.shape[0]
    y = _fir_exact(bank2, up, down, taps2, buf2, acc2, count)
    _store_output(y, out, 1.0 / (FIX_IN * FIX_COEF) if is_float else 1.0 / (FIX_COEF * 256.0))
    work2[:hist2] = buf2[count1:]
    new1 = acc1 + 2 * count1 - n
    new2 = acc2 + count * down - count1 * up
    return int(new1 + 2 * new2)
