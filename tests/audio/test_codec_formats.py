"""Sample-format helpers: int16 <-> float32, stereo -> mono, gain with saturation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rtedge.audio import codec
from rtedge.errors import AudioError

pytestmark = pytest.mark.usefixtures("backend")

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def test_int16_to_float32_scales_by_2_pow_minus_15_exactly() -> None:
    f = codec.int16_to_float32(ALL_PCM)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.astype(np.float64) * 32768.0, ALL_PCM.astype(np.float64))
    assert f.min() == -1.0 and f.max() < 1.0


def test_float32_round_trip_is_lossless() -> None:
    np.testing.assert_array_equal(codec.float32_to_int16(codec.int16_to_float32(ALL_PCM)), ALL_PCM)


def test_float32_to_int16_rounds_half_to_even_and_saturates() -> None:
    lsb = 1.0 / 32768.0
    x = np.array(
        [
            0.5 * lsb,
            1.5 * lsb,
            2.5 * lsb,
            -0.5 * lsb,
            -1.5 * lsb,
            0.49 * lsb,
            1.0,
            1.5,
            -1.0,
            -2.0,
            1e30,
            -1e30,
        ],
        dtype=np.float32,
    )
    expected = [0, 2, 2, 0, -2, 0, 32767, 32767, -32768, -32768, 32767, -32768]
    np.testing.assert_array_equal(codec.float32_to_int16(x), np.array(expected, np.int16))


def test_float32_to_int16_non_finite() -> None:
    x = np.array([np.nan, np.inf, -np.inf, -np.nan], dtype=np.float32)
    np.testing.assert_array_equal(codec.float32_to_int16(x), np.array([0, 32767, -32768, 0], np.int16))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 300), elements=st.floats(-2.0, 2.0, width=32)))
def test_float32_to_int16_matches_definition(x: np.ndarray) -> None:
    expected = np.clip(np.rint(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(codec.float32_to_int16(x), expected)


def test_stereo_to_mono_int16_floor_average_no_overflow() -> None:
    left = np.array([32767, -32768, 1, -1, 3, 0], dtype=np.int16)
    right = np.array([32767, -32768, 0, 0, -4, -1], dtype=np.int16)
    inter = np.stack([left, right], axis=1).reshape(-1)
    out = codec.stereo_to_mono(inter)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, (left.astype(np.int32) + right) // 2)


def test_stereo_to_mono_float32() -> None:
    rng = np.random.default_rng(1)
    inter = rng.uniform(-1, 1, 2000).astype(np.float32)
    out = codec.stereo_to_mono(inter)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (inter[0::2] + inter[1::2]) * np.float32(0.5))


def test_stereo_to_mono_bytes_and_errors() -> None:
    inter = np.array([100, 300, -5, 5], dtype=np.int16)
    np.testing.assert_array_equal(codec.stereo_to_mono(inter.tobytes()), [200, 0])
    with pytest.raises(AudioError, match="even sample count"):
        codec.stereo_to_mono(np.zeros(3, np.int16))
    with pytest.raises(ValueError, match="even sample count"):
        codec.stereo_to_mono(b"\x00\x00" * 3)
    with pytest.raises(ValueError, match="3 bytes"):
        codec.stereo_to_mono(b"\x00\x00\x00")
    with pytest.raises(TypeError, match="int16 or float32"):
        codec.stereo_to_mono(np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        codec.stereo_to_mono(np.zeros((4, 2), np.int16))


def test_apply_gain_int16_rounds_and_saturates() -> None:
    x = np.array([0, 1, 3, -3, 1000, -1000, 20000, -20000, 32767, -32768], dtype=np.int16)
    out = codec.apply_gain(x, 2.5)
    expected = np.clip(np.rint(x.astype(np.float64) * 2.5), -32768, 32767)
    np.testing.assert_array_equal(out, expected.astype(np.int16))
    assert out[6] == 32767 and out[7] == -32768
    np.testing.assert_array_equal(codec.apply_gain(ALL_PCM, 1.0), ALL_PCM)
    np.testing.assert_array_equal(codec.apply_gain(ALL_PCM, 0.0), np.zeros_like(ALL_PCM))
    # -1 saturates only the most negative value
    neg = codec.apply_gain(ALL_PCM, -1.0)
    assert neg[0] == 32767 and np.array_equal(neg[1:], -ALL_PCM[1:])


def test_apply_gain_float32_clips_to_unit_range() -> None:
    x = np.array([0.1, -0.1, 0.6, -0.6, np.nan], dtype=np.float32)
    out = codec.apply_gain(x, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.2, -0.2, 1.0, -1.0, 0.0], np.float32))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.int16, st.integers(0, 300)),
    st.floats(-8.0, 8.0, allow_nan=False),
)
def test_apply_gain_int16_matches_definition(x: np.ndarray, gain: float) -> None:
    expected = np.clip(np.rint(x.astype(np.float64) * gain), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(codec.apply_gain(x, gain), expected)


def test_apply_gain_rejects_bad_gain_and_input() -> None:
    x = np.zeros(4, np.int16)
    with pytest.raises(ValueError, match="finite"):
        codec.apply_gain(x, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        codec.apply_gain(x, float("inf"))
    with pytest.raises(TypeError, match="real number"):
        codec.apply_gain(x, "loud")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int16 or float32"):
        codec.apply_gain(np.zeros(4, np.int64), 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        codec.apply_gain(np.zeros(8, np.int16)[::2], 1.0)


def test_float_helpers_reject_wrong_dtypes() -> None:
    with pytest.raises(TypeError, match="float32"):
        codec.float32_to_int16(np.zeros(4, np.float64))
    with pytest.raises(TypeError, match="int16"):
        codec.int16_to_float32(np.zeros(4, np.uint16))
    with pytest.raises(TypeError):
        codec.int16_to_float32(None)


def test_backends_identical(kernels) -> None:  # type: ignore[no-untyped-def]
    if kernels["c"] is None:
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(7)
    f = rng.normal(0, 0.7, 50_000).astype(np.float32)
    f[:6] = [np.nan, np.inf, -np.inf, 0.5 / 32768, 1.5 / 32768, -2.5 / 32768]
    cases = [
        ("i16_to_f32", ALL_PCM, np.float32, ()),
        ("f32_to_i16", f, np.int16, ()),
        ("stereo_to_mono_i16", ALL_PCM, np.int16, ()),
        ("stereo_to_mono_f32", f, np.float32, ()),
        ("gain_i16", ALL_PCM, np.int16, (1.37,)),
        ("gain_i16", ALL_PCM, np.int16, (-3.0,)),
        ("gain_f32", f, np.float32, (2.1,)),
    ]
    for name, src, dtype, extra in cases:
        n = src.shape[0] // 2 if "stereo" in name else src.shape[0]
        outs = []
        for mod in (kernels["numpy"], kernels["c"]):
            out = np.empty(n, dtype=dtype)
            getattr(mod, name)(src, out, *extra)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[1], err_msg=name)


def test_c_kernels_validate_their_buffers(c_module) -> None:  # type: ignore[no-untyped-def]
    """Called directly (bypassing codec.py), the C side still refuses bad buffers."""
    src = np.zeros(8, np.int16)
    with pytest.raises(ValueError, match="samples"):
        c_module.ulaw_encode(src, np.empty(7, np.uint8))
    with pytest.raises(TypeError):
        c_module.ulaw_encode(np.zeros(8, np.float32), np.empty(8, np.uint8))
    with pytest.raises(TypeError):
        c_module.ulaw_decode(np.zeros(8, np.uint8), np.empty(8, np.int16).tobytes())  # read-only dst
    with pytest.raises(TypeError):
        c_module.i16_to_f32(src)
    with pytest.raises(TypeError):
        c_module.gain_i16(src, np.empty(8, np.int16), "x")
    with pytest.raises(ValueError):
        c_module.stereo_to_mono_i16(np.zeros(7, np.int16), np.empty(3, np.int16))
