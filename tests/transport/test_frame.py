"""rtedge.transport._frame: client frames byte-identical to websocket-client's, in C and in the Python twin."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import websocket

from rtedge.transport import _frame

BUILDERS = {"python": _frame.py_frame}
try:
    from rtedge.audio._codec import ws_frame
except ImportError:  # extension not built: the twin alone is tested
    pass
else:
    BUILDERS["c"] = ws_frame


def _reference(opcode: int, payload: bytes, key: bytes) -> bytes:
    frame = websocket.ABNF.create_frame(payload, opcode)
    frame.get_mask_key = lambda n: key
    return frame.format()


@pytest.fixture(params=sorted(BUILDERS))
def build(request):  # type: ignore[no-untyped-def]
    return BUILDERS[request.param]


@pytest.mark.parametrize("size", [0, 1, 3, 4, 7, 8, 9, 125, 126, 127, 1327, 65535, 65536, 70001])
@pytest.mark.parametrize("opcode", [websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY])
def test_frames_match_websocket_client(build, size: int, opcode: int) -> None:  # type: ignore[no-untyped-def]
    payload, key = os.urandom(size), os.urandom(4)
    assert build(opcode, payload, key) == _reference(opcode, payload, key)


def test_masking_round_trips_and_takes_any_buffer(build) -> None:  # type: ignore[no-untyped-def]
    payload, key = bytearray(os.urandom(1000)), memoryview(b"\x01\x80\xff\x00")
    frame = build(1, payload, key)
    assert frame[:2] == b"\x81\xfe" and frame[4:8] == bytes(key)
    body = frame[8:]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == payload


@pytest.mark.parametrize("opcode, key", [(16, b"abcd"), (-1, b"abcd"), (1, b"abc"), (1, b"abcde")])
def test_bad_arguments_raise(build, opcode: int, key: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        build(opcode, b"x", key)


def test_mask_keys_are_fresh_four_byte_keys_across_refills() -> None:
    keys = _frame.MaskKeys()
    drawn = [keys.next() for _ in range(600)]  # more than two pools of 256
    assert all(len(k) == 4 for k in drawn)
    assert len(set(drawn)) > 590  # random 32-bit keys: a handful of repeats at most


def test_the_twin_is_used_when_asked_for() -> None:
    code = "from rtedge.transport import _frame; print(_frame.BACKEND, _frame.build is _frame.py_frame)"
    env = {**os.environ, "RTEDGE_CODEC": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "True"]


@pytest.mark.skipif("c" not in BUILDERS, reason="the C extension is not built")
def test_the_extension_is_used_when_built() -> None:
    assert _frame.BACKEND == "c"


def test_each_thread_draws_its_own_keys() -> None:
    import threading

    seen: dict[str, list[bytes]] = {}

    def draw(name: str) -> None:
        seen[name] = [_frame.mask_key() for _ in range(300)]

    threads = [threading.Thread(target=draw, args=(f"t{i}",), name=f"t{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    keys = seen["t0"] + seen["t1"]
    assert len(keys) == 600 and len(set(keys)) > 590
