"""G.711 mu-law / A-law: exact against ITU-T G.711 (G.191 flavour) on every input.

The reference tables here are built from the standard's description (segment
decision intervals and reconstruction values), not from the implementation's
bit tricks, and are checked against the ITU-T G.191 test vectors when those
are available next to the checkout.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

from rtedge.audio import codec
from rtedge.errors import AudioError

pytestmark = pytest.mark.usefixtures("backend")

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


# --------------------------------------------------------------------------- references from the standard


def _magnitude(x: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """G.191 works on the truncated word v = x >> shift; a negative v stands for the
    interval [v, v+1), whose mirror image has magnitude index -v - 1."""
    v = x.astype(np.int32) >> shift
    return np.where(v < 0, -v - 1, v), v < 0


def ulaw_reference_tables() -> tuple[np.ndarray, np.ndarray]:
    """mu-law (G.711 table 2): 14-bit magnitude m; segment s, step q.

    Decision interval of (s, q): (16 + q) * 2^(s+1) - 33 <= m < (17 + q) * 2^(s+1) - 33,
    reconstruction value (2q + 33) * 2^s - 33; magnitudes past the last interval
    take the last code.  Code byte = ones' complement of sign | s << 4 | q.
    """
    m, neg = _magnitude(ALL_PCM, 2)
    idx = np.full(m.shape, 127, dtype=np.int32)
    values = np.empty(128, dtype=np.int32)
    for s in range(8):
        for q in range(16):
            lo = (16 + q) * 2 ** (s + 1) - 33
            hi = (17 + q) * 2 ** (s + 1) - 33
            idx[(m >= lo) & (m < hi)] = s * 16 + q
            values[s * 16 + q] = (2 * q + 33) * 2**s - 33
    enc = (~(idx | np.where(neg, 0x80, 0)) & 0xFF).astype(np.uint8)
    inv = ~ALL_CODES.astype(np.int32) & 0xFF
    mag16 = 4 * values[inv & 0x7F]  # 14-bit value, left-justified in 16 bits
    dec = np.where(inv & 0x80, -mag16, mag16).astype(np.int16)
    return enc, dec


def alaw_reference_tables() -> tuple[np.ndarray, np.ndarray]:
    """A-law (G.711 table 1): 12-bit magnitude m of the 13-bit word.

    Segment 0 covers [0, 32) in steps of 2; segment s >= 1 covers
    [32 * 2^(s-1), 64 * 2^(s-1)) in steps of 2^s.  Reconstruction is the
    interval midpoint.  Code byte = (0x80 for x >= 0) | s << 4 | q, even bits
    inverted (XOR 0x55).
    """
    m, neg = _magnitude(ALL_PCM, 3)
    idx = np.empty(m.shape, dtype=np.int32)
    values = np.empty(128, dtype=np.int32)
    for s in range(8):
        base, step = (0, 2) if s == 0 else (32 * 2 ** (s - 1), 2**s)
        for q in range(16):
            lo = base + q * step
            idx[(m >= lo) & (m < lo + step)] = s * 16 + q
            values[s * 16 + q] = lo + step // 2
    enc = ((idx | np.where(neg, 0, 0x80)) ^ 0x55).astype(np.uint8)
    raw = ALL_CODES.astype(np.int32) ^ 0x55
    mag16 = 8 * values[raw & 0x7F]  # 13-bit value, left-justified in 16 bits
    dec = np.where(ALL_CODES & 0x80, mag16, -mag16).astype(np.int16)
    return enc, dec


ULAW_ENC, ULAW_DEC = ulaw_reference_tables()
ALAW_ENC, ALAW_DEC = alaw_reference_tables()


# --------------------------------------------------------------------------- exactness


def test_ulaw_encode_matches_the_standard_for_every_input() -> None:
    out = codec.ulaw_encode(ALL_PCM)
    assert out.dtype == np.uint8 and out.shape == ALL_PCM.shape
    bad = np.flatnonzero(out != ULAW_ENC)
    assert bad.size == 0, f"{bad.size} mismatches, first at x={ALL_PCM[bad[:5]]}"


def test_alaw_encode_matches_the_standard_for_every_input() -> None:
    out = codec.alaw_encode(ALL_PCM)
    bad = np.flatnonzero(out != ALAW_ENC)
    assert bad.size == 0, f"{bad.size} mismatches, first at x={ALL_PCM[bad[:5]]}"


def test_decoders_match_the_standard_for_every_code() -> None:
    np.testing.assert_array_equal(codec.ulaw_decode(ALL_CODES), ULAW_DEC)
    np.testing.assert_array_equal(codec.alaw_decode(ALL_CODES), ALAW_DEC)


def test_round_trip_properties() -> None:
    # every code decodes to a value that encodes back to it, except mu-law's
    # "negative zero" 0x7F, which decodes to 0 (and 0 encodes to 0xFF)
    back_u = codec.ulaw_encode(codec.ulaw_decode(ALL_CODES))
    assert set(np.flatnonzero(back_u != ALL_CODES)) == {0x7F}
    assert back_u[0x7F] == 0xFF
    np.testing.assert_array_equal(codec.alaw_encode(codec.alaw_decode(ALL_CODES)), ALL_CODES)
    # decoding is odd-symmetric and monotonic in the magnitude code
    for dec, pos in (
        (codec.ulaw_decode, np.arange(0x80, 0x100)),
        (codec.alaw_decode, np.arange(0x80, 0x100)),
    ):
        vals = dec(pos.astype(np.uint8)).astype(np.int32)
        assert len(set(vals.tolist())) == 128


def test_quantisation_error_is_within_half_a_step() -> None:
    x = ALL_PCM.astype(np.int32)
    for enc, dec, shift in (
        (codec.ulaw_encode, codec.ulaw_decode, 2),
        (codec.alaw_encode, codec.alaw_decode, 3),
    ):
        y = dec(enc(ALL_PCM)).astype(np.int32)
        codes = enc(ALL_PCM)
        # the step at each code = distance to the neighbouring reconstruction level
        levels = np.sort(np.unique(dec(ALL_CODES).astype(np.int32)))
        pos = np.searchsorted(levels, y)
        step = np.maximum(
            np.diff(levels, prepend=levels[0] - 1)[pos], np.diff(levels, append=levels[-1] + 1)[pos]
        )
        err = np.abs(x - y)
        inside = np.abs(x) < 32000  # the top segment clips
        assert np.all(err[inside] <= step[inside] // 2 + (1 << shift)), codes[inside][np.argmax(err[inside])]


# --------------------------------------------------------------------------- ITU-T G.191 test vectors


def _read_vector(g711_dir, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    path = g711_dir / name
    if not path.exists():
        pytest.skip(
            f"ITU-T G.191 test vectors not found ({name}); they are read from ../shared/fixtures/g711"
        )
    return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.int16)


def test_g191_vectors_reproduced_exactly(g711_dir) -> None:  # type: ignore[no-untyped-def]
    src = _read_vector(g711_dir, "sweep.src")
    expected_crc = {"sweep.src": 0xC8BA7682, "sweep-r.u": 0xCD170E15, "sweep-r.a": 0x74719FE4}
    for name, crc in expected_crc.items():
        assert zlib.crc32((g711_dir / name).read_bytes()) == crc, f"{name} is not the STL file"
    u = _read_vector(g711_dir, "sweep-r.u")  # one code per 16-bit word
    a = _read_vector(g711_dir, "sweep-r.a")
    np.testing.assert_array_equal(codec.ulaw_encode(src), u.astype(np.uint8))
    np.testing.assert_array_equal(codec.alaw_encode(src), a.astype(np.uint8))
    np.testing.assert_array_equal(
        codec.ulaw_decode(u.astype(np.uint8)), _read_vector(g711_dir, "sweep-r.reu")
    )
    np.testing.assert_array_equal(
        codec.alaw_decode(a.astype(np.uint8)), _read_vector(g711_dir, "sweep-r.rea")
    )


def test_reference_tables_reproduce_the_g191_vectors(g711_dir) -> None:  # type: ignore[no-untyped-def]
    """The tables derived above from the standard are themselves the G.191 ones."""
    src = _read_vector(g711_dir, "sweep.src")
    assert np.unique(src).size == 65536
    np.testing.assert_array_equal(
        ULAW_ENC[src.astype(np.int32) + 32768], _read_vector(g711_dir, "sweep-r.u").astype(np.uint8)
    )
    np.testing.assert_array_equal(
        ALAW_ENC[src.astype(np.int32) + 32768], _read_vector(g711_dir, "sweep-r.a").astype(np.uint8)
    )


# --------------------------------------------------------------------------- audioop


def _audioop():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_audioop_ulaw_encoder_differs_from_g191_on_508_negative_inputs() -> None:
    audioop = _audioop()
    ours = codec.ulaw_encode(ALL_PCM)
    theirs = np.frombuffer(audioop.lin2ulaw(ALL_PCM.tobytes(), 2), dtype=np.uint8)
    diff = np.flatnonzero(ours != theirs)
    assert diff.size == 508
    x = ALL_PCM[diff]
    assert x.min() == -31612 and x.max() == -1
    # same sign, neighbouring magnitude codes: one quantisation step apart
    assert np.all((ours[diff] & 0x80) == (theirs[diff] & 0x80))
    assert np.all(np.abs((ours[diff] & 0x7F).astype(int) - (theirs[diff] & 0x7F)) == 1)
    # and audioop is the one that departs from the standard's tables
    assert np.all(theirs[diff] != ULAW_ENC[diff])


def test_audioop_agrees_on_alaw_and_both_decoders() -> None:
    audioop = _audioop()
    pcm = ALL_PCM.tobytes()
    codes = ALL_CODES.tobytes()
    np.testing.assert_array_equal(
        codec.alaw_encode(ALL_PCM), np.frombuffer(audioop.lin2alaw(pcm, 2), np.uint8)
    )
    np.testing.assert_array_equal(
        codec.ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2")
    )
    np.testing.assert_array_equal(
        codec.alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(codes, 2), "<i2")
    )


# --------------------------------------------------------------------------- inputs


def test_bytes_input_is_little_endian_pcm16() -> None:
    x = np.array([-32768, -1, 0, 1, 1000, 32767], dtype=np.int16)
    le = x.astype("<i2").tobytes()
    np.testing.assert_array_equal(codec.ulaw_encode(le), codec.ulaw_encode(x))
    np.testing.assert_array_equal(codec.alaw_encode(bytearray(le)), codec.alaw_encode(x))
    codes = codec.ulaw_encode(x)
    np.testing.assert_array_equal(codec.ulaw_decode(codes.tobytes()), codec.ulaw_decode(codes))
    np.testing.assert_array_equal(codec.alaw_decode(memoryview(codes.tobytes())), codec.alaw_decode(codes))


def test_empty_input() -> None:
    assert codec.ulaw_encode(np.zeros(0, np.int16)).shape == (0,)
    assert codec.alaw_decode(b"").dtype == np.int16


@pytest.mark.parametrize("fn", [codec.ulaw_encode, codec.alaw_encode])
def test_encoder_rejects_bad_input(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="int16"):
        fn(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="int16"):
        fn(np.zeros(4, np.int32))
    with pytest.raises(TypeError):
        fn([1, 2, 3])
    with pytest.raises(ValueError, match="1-D"):
        fn(np.zeros((2, 2), np.int16))
    with pytest.raises(ValueError, match="contiguous"):
        fn(np.zeros(8, np.int16)[::2])
    with pytest.raises(ValueError, match="3 bytes"):
        fn(b"\x00\x01\x02")
    with pytest.raises(AudioError):
        fn(b"\x00")


@pytest.mark.parametrize("fn", [codec.ulaw_decode, codec.alaw_decode])
def test_decoder_rejects_bad_input(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="uint8"):
        fn(np.zeros(4, np.int16))
    with pytest.raises(ValueError, match="1-D"):
        fn(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        fn(np.zeros(8, np.uint8)[::2])


def test_backends_identical_on_every_input(kernels) -> None:  # type: ignore[no-untyped-def]
    mods = kernels
    if mods["c"] is None:
        pytest.skip("the C extension is not built")
    for name, src, dtype in (
        ("ulaw_encode", ALL_PCM, np.uint8),
        ("alaw_encode", ALL_PCM, np.uint8),
        ("ulaw_decode", ALL_CODES, np.int16),
        ("alaw_decode", ALL_CODES, np.int16),
    ):
        outs = []
        for mod in (mods["numpy"], mods["c"]):
            out = np.empty(src.shape, dtype=dtype)
            getattr(mod, name)(src, out)
            outs.append(out)
        np.testing.assert_array_equal(outs[0], outs[1], err_msg=name)
