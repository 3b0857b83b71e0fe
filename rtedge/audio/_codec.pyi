# The typed contract shared by the C extension (_codec) and its numpy twin
# (_codec_numpy): same names, same signatures, same results.  Kernels write into
# the caller's output array and keep no state between calls; validation of
# dtypes and shapes is rtedge.audio.codec's job (the C side still refuses bad
# buffers with TypeError/ValueError instead of crashing).

import numpy as np
import numpy.typing as npt

BANK_DTYPE: str  # dtype the resample kernels want for the coefficient bank (C: "float32", numpy: "float64")
WORK_DTYPE: str  # ... and for the history/work buffers (same)

def ulaw_encode(src: npt.NDArray[np.int16], dst: npt.NDArray[np.uint8], /) -> None: ...
def alaw_encode(src: npt.NDArray[np.int16], dst: npt.NDArray[np.uint8], /) -> None: ...
def ulaw_decode(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.int16], /) -> None: ...
def alaw_decode(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.int16], /) -> None: ...
def i16_to_f32(src: npt.NDArray[np.int16], dst: npt.NDArray[np.float32], /) -> None: ...
def f32_to_i16(src: npt.NDArray[np.float32], dst: npt.NDArray[np.int16], /) -> None: ...
def stereo_to_mono_i16(src: npt.NDArray[np.int16], dst: npt.NDArray[np.int16], /) -> None: ...
def stereo_to_mono_f32(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32], /) -> None: ...
def gain_i16(src: npt.NDArray[np.int16], dst: npt.NDArray[np.int16], gain: float, /) -> None: ...
def gain_f32(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32], gain: float, /) -> None: ...
def resample(
    bank: npt.NDArray[np.floating],
    up: int,
    down: int,
    taps: int,
    work: npt.NDArray[np.floating],
    src: npt.NDArray[np.int16] | npt.NDArray[np.float32],
    acc: int,
    out: npt.NDArray[np.int16] | npt.NDArray[np.float32],
    /,
) -> int: ...
def resample2(
    bank1: npt.NDArray[np.floating],
    taps1: int,
    work1: npt.NDArray[np.floating],
    bank2: npt.NDArray[np.floating],
    up: int,
    down: int,
    taps2: int,
    work2: npt.NDArray[np.floating],
    src: npt.NDArray[np.int16] | npt.NDArray[np.float32],
    acc: int,
    out: npt.NDArray[np.int16] | npt.NDArray[np.float32],
    /,
) -> int: ...

# WebSocket framing for rtedge.transport (C only; the pure-Python twin is rtedge.transport._frame)
def ws_frame(opcode: int, payload: bytes, mask_key: bytes, /) -> bytes: ...
