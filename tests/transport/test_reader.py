"""The server-frame parser (rtedge.transport._reader): what RFC 6455 says a client must accept and refuse,
for every way the bytes can be split across reads."""

from __future__ import annotations

import struct

import pytest

from rtedge.transport._reader import BINARY, CLOSE, CONT, PING, PONG, TEXT, FrameError, FrameReader


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None,
          length_form: int | None = None) -> bytes:
    """One frame as a server (or, with ``mask``, a misbehaving one) writes it; ``length_form`` forces
    the 7-, 16- or 64-bit length encoding."""
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    b1 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if mask is not None else 0
    if form == 7:
        head = struct.pack("!BB", b1, m | n)
    elif form == 16:
        head = struct.pack("!BBH", b1, m | 126, n)
    else:
        head = struct.pack("!BBQ", b1, m | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def drain(reader: FrameReader) -> list[tuple[int, bytes]]:
    out = []
    while (got := reader.next()) is not None:
        out.append(got)
    return out


def feed_split(stream: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    """Feed ``stream`` cut at ``cuts``, taking what is ready after each piece (as the socket loop does)."""
    reader = FrameReader()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        reader.feed(stream[a:b])
        out += drain(reader)
    assert reader.buffered() == 0 and not reader.ready()
    return out


# a conversation's worth of frames: short, 16-bit and 64-bit lengths, a fragmented text message with a
# ping and a pong between its fragments, a binary message, an empty text, and the close
FRAGMENTED = [frame(TEXT, b'{"type":', fin=False), frame(PING, b"are you there"), frame(CONT, b'"resp', fin=False),
              frame(PONG, b""), frame(CONT, b'onse.done"}')]
STREAM = b"".join([frame(TEXT, b'{"type":"session.created"}'), frame(TEXT, b"x" * 300),
                   frame(TEXT, b"y" * 70000), *FRAGMENTED, frame(BINARY, bytes(range(256))), frame(TEXT, b""),
                   frame(CLOSE, struct.pack("!H", 1000) + b"bye")])
EXPECTED = [(TEXT, b'{"type":"session.created"}'), (TEXT, b"x" * 300), (TEXT, b"y" * 70000),
            (PING, b"are you there"), (PONG, b""), (TEXT, b'{"type":"response.done"}'), (BINARY, bytes(range(256))),
            (TEXT, b""), (CLOSE, b"\x03\xe8bye")]


def test_a_stream_read_whole_gives_every_message_in_order():
    assert feed_split(STREAM, []) == EXPECTED


def test_every_split_in_two_gives_the_same_messages():
    small = b"".join(f for f in [frame(TEXT, b"x" * 300), *FRAGMENTED, frame(CLOSE, b"")])
    expected = [(TEXT, b"x" * 300), (PING, b"are you there"), (PONG, b""), (TEXT, b'{"type":"response.done"}'),
                (CLOSE, b"")]
    for cut in range(len(small) + 1):
        assert feed_split(small, [cut]) == expected, cut


def test_one_byte_at_a_time_gives_the_same_messages():
    assert feed_split(STREAM, list(range(1, len(STREAM)))) == EXPECTED


def test_each_message_is_handed_out_as_soon_as_its_last_byte_arrives():
    first, second = frame(TEXT, b"a" * 200), frame(TEXT, b"b")
    reader = FrameReader()
    reader.feed(first[:-1])
    assert not reader.ready() and reader.next() is None
    reader.feed(first[-1:] + second[:1])
    assert reader.ready()
    assert reader.next() == (TEXT, b"a" * 200)
    assert not reader.ready() and reader.buffered() == 1
    reader.feed(second[1:])
    assert drain(reader) == [(TEXT, b"b")]


@pytest.mark.parametrize("form", [7, 16, 64])
@pytest.mark.parametrize("size", [0, 1, 125])
def test_every_length_form_is_accepted_for_any_size_it_can_hold(form, size):
    payload = bytes(i % 251 for i in range(size))
    assert feed_split(frame(BINARY, payload, length_form=form), []) == [(BINARY, payload)]


@pytest.mark.parametrize("size", [125, 126, 127, 65535, 65536, 200_000])
def test_sizes_at_the_length_boundaries(size):
    payload = bytes(i % 253 for i in range(size))
    data = frame(TEXT, payload)
    assert feed_split(data, list(range(4096, len(data), 4096))) == [(TEXT, payload)]


def _error(stream: bytes) -> str:
    """The FrameError message ``stream`` raises, fed whole and then byte by byte (the same rule fires)."""
    whole = FrameReader()
    whole.feed(stream)
    with pytest.raises(FrameError) as info:
        drain(whole)
    with pytest.raises(FrameError):  # the reader stays failed
        whole.next()
    assert whole.ready()
    piecewise = FrameReader()
    with pytest.raises(FrameError) as again:
        for i in range(len(stream)):
            piecewise.feed(stream[i:i + 1])
            drain(piecewise)
    assert str(again.value) == str(info.value)
    return str(info.value)


@pytest.mark.parametrize("stream, rule", [
    (frame(TEXT, b"hi", mask=b"\x01\x02\x03\x04"), "masked"),
    (frame(TEXT, b"hi", rsv=4), "reserved bits"),
    (frame(TEXT, b"hi", rsv=1), "reserved bits"),
    (frame(0x3, b"hi"), "unknown opcode 0x3"),
    (frame(0xB, b""), "unknown opcode 0xb"),
    (frame(PING, b"p" * 126), "control frame of 126 bytes"),
    (frame(CLOSE, b"\x03\xe8" + b"r" * 124), "control frame of 126 bytes"),
    (frame(PONG, b"p", fin=False), "fragmented control frame"),
    (frame(CLOSE, b"\x03"), "one-byte payload"),
    (frame(CLOSE, struct.pack("!H", 1005)), "invalid status code 1005"),
    (frame(CLOSE, struct.pack("!H", 999)), "invalid status code 999"),
    (frame(CONT, b"lost"), "continuation frame without a message"),
    (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "new message began"),
    (frame(TEXT, b"a", fin=False) + frame(BINARY, b"b", fin=False), "new message began"),
    (struct.pack("!BBQ", 0x82, 127, 1 << 63), "top bit set"),
])
def test_each_protocol_violation_is_refused_with_its_rule(stream, rule):
    assert rule in _error(stream)


def test_an_oversized_control_frame_is_refused_before_its_payload_arrives():
    reader = FrameReader()
    reader.feed(frame(PING, b"p" * 200)[:4])
    with pytest.raises(FrameError, match="control frame of 200 bytes"):
        reader.next()


def test_a_message_over_the_limit_is_refused_from_its_header_whole_or_in_fragments():
    reader = FrameReader(max_message=1000)
    reader.feed(frame(TEXT, b"z" * 1000) + frame(BINARY, b"b" * 600, fin=False) + frame(CONT, b"c" * 400))
    assert reader.next() == (TEXT, b"z" * 1000)  # at the limit: taken
    assert reader.next() == (BINARY, b"b" * 600 + b"c" * 400)  # fragments up to the limit: taken
    reader.feed(frame(TEXT, b"a" * 600, fin=False) + frame(PING, b"") + frame(CONT, b"d" * 401)[:4])
    assert reader.next() == (PING, b"")  # a control frame between fragments does not count
    with pytest.raises(FrameError, match="more than 1000 bytes"):
        reader.next()  # only the continuation's header is here: refused before its payload is buffered
    big = FrameReader()  # the default limit: a header claiming 2**40 bytes is refused at once
    big.feed(struct.pack("!BBQ", 0x81, 127, 2**40))
    with pytest.raises(FrameError, match="more than"):
        big.next()


def test_frames_before_a_violation_are_handed_out_first():
    reader = FrameReader()
    reader.feed(frame(TEXT, b"good") + frame(TEXT, b"bad", rsv=2))
    assert reader.next() == (TEXT, b"good")
    with pytest.raises(FrameError, match="reserved bits"):
        reader.next()


def test_valid_close_codes_and_application_codes_are_accepted():
    for code in (1000, 1001, 1011, 1014, 3000, 4999):
        assert feed_split(frame(CLOSE, struct.pack("!H", code)), []) == [(CLOSE, struct.pack("!H", code))]
