"""The numpy twin on a 32-bit platform, emulated on any machine.

On 32-bit ARM (armhf, 32-bit Raspberry Pi OS) numpy's ``intp`` is int32 and ``np.take`` casts its
indices to ``intp`` with the "safe" rule, so an int64 index array raises ``TypeError``.  On a 64-bit
host int64 *is* ``intp`` and such a bug passes unnoticed.  These tests run the twin against a numpy
whose ``intp`` is int32 and whose ``take`` casts like a 32-bit build, and require the same bits as
the twin run on plain numpy.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from rtedge.audio import _codec_numpy, codec
from rtedge.audio.codec import Resampler


def _as_intp32(indices: Any) -> np.ndarray:
    """Index array cast the way numpy does on a 32-bit build (raises for int64, like armhf)."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iub":
        raise IndexError(f"arrays used as indices must be of integer type, got {idx.dtype}")
    return idx.astype(np.int32, casting="safe")


class Numpy32:
    """``numpy`` as the twin sees it on a 32-bit platform: everything delegates to numpy except
    ``intp`` (int32) and the index-taking functions, which cast their indices to int32 safely."""

    intp = np.int32

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    def take(self, a: Any, indices: Any, axis: int | None = None, out: Any = None) -> Any:
        self.calls.append("take")
        return np.take(a, _as_intp32(indices), axis=axis, out=out)

    def take_along_axis(self, arr: Any, indices: Any, axis: int) -> Any:
        self.calls.append("take_along_axis")
        return np.take_along_axis(arr, _as_intp32(indices), axis=axis)


@pytest.fixture
def numpy32(monkeypatch: pytest.MonkeyPatch) -> Numpy32:
    shim = Numpy32()
    monkeypatch.setattr(codec, "_impl", _codec_numpy)
    return shim


def _run(monkeypatch: pytest.MonkeyPatch, np_module: Any, src: int, dst: int, x: np.ndarray) -> np.ndarray:
    monkeypatch.setattr(_codec_numpy, "np", np_module)
    r = Resampler(src, dst)
    parts = [r.process(x[: len(x) // 3]), r.process(x[len(x) // 3 :]), r.flush()]
    return np.concatenate(parts)


def test_the_shim_rejects_int64_indices_as_armhf_does(numpy32: Numpy32) -> None:
    with pytest.raises(TypeError, match="according to the rule 'safe'"):
        numpy32.take(np.arange(10.0), np.arange(3, dtype=np.int64))
    assert numpy32.take(np.arange(10.0), np.arange(3, dtype=np.int32)).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("src,dst", list(itertools.permutations(codec.SUPPORTED_RATES, 2)))
def test_resampler_twin_on_32bit_numpy(
    numpy32: Numpy32, monkeypatch: pytest.MonkeyPatch, src: int, dst: int
) -> None:
    """Every conversion pair, int16 and float32: same output as on the host's numpy."""
    rng = np.random.default_rng(src + dst)
    for x in (
        np.clip(rng.normal(0, 8000, src // 8), -32768, 32767).astype(np.int16),
        rng.normal(0, 0.25, src // 8).astype(np.float32),
    ):
        ref = _run(monkeypatch, np, src, dst, x)
        numpy32.calls.clear()
        got = _run(monkeypatch, numpy32, src, dst, x)
        assert numpy32.calls, "the twin gathered its windows without np.take"
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["ulaw", "alaw"])
def test_g711_twin_on_32bit_numpy(numpy32: Numpy32, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    enc, dec = getattr(codec, f"{name}_encode"), getattr(codec, f"{name}_decode")
    ref_codes = enc(pcm)
    ref_pcm = dec(ref_codes)
    monkeypatch.setattr(_codec_numpy, "np", numpy32)
    np.testing.assert_array_equal(enc(pcm), ref_codes)
    np.testing.assert_array_equal(dec(ref_codes), ref_pcm)
    assert numpy32.calls.count("take") == 2



def test_c_kernel_compares_the_bank_size_in_64_bit(c_module: Any) -> None:
    """``up * taps`` = 2^32 wraps to 0 in a 32-bit size: an empty bank must still be refused, not read."""
    up = taps = 65536
    empty_bank = np.zeros(0, np.float32)
    work, src, out = np.zeros(taps + 8, np.float32), np.zeros(8, np.int16), np.zeros(8 * up, np.int16)
    with pytest.raises(ValueError, match="bank must hold up \\* taps"):
        c_module.resample(empty_bank, up, 1, taps, work, src, 0, out)
