#!/usr/bin/env python3
"""rtedge.audio.codec against the usual libraries, speed at known quality, one table.

What it measures (all in one run, same machine, same signals)
---------------------------------------------------------------
G.711 mu-law/A-law encode and decode: rtedge (C extension and numpy twin) against
``audioop`` (stdlib up to 3.12, ``audioop-lts`` on 3.13+).  rtedge is timed on
numpy arrays, audioop on ``bytes`` (its native interface, no conversions), so the
ratio is conservative.

Resampling 48k->16k, 44.1k->16k, 24k->16k, 16k->24k, 8k->16k and 16k->8k:
rtedge (C and numpy) against soxr HQ and LQ (``ResampleStream``), libsamplerate
(``samplerate``, sinc_fastest and sinc_medium), speexdsp (through ctypes when
``libspeexdsp.so.1`` is installed; quality 3 "VoIP" and 5 "desktop") and scipy
``resample_poly``.  Every candidate is int16 in / int16 out, conversions
included.  Columns:

* ``rej dB``: worst alias/image level, float path, one-shot.  Downsampling: a
  tone above the new Nyquist frequency (1.003x, 1.05x, 1.25x, 1.5x, ... up to
  0.49 x the input rate) goes in, the whole output level is the alias.
  Upsampling: tones at 0.1/0.3/0.45/0.49 x the input rate go in; everything but
  the tone (the images) is counted.
* ``@0.45 dB``: gain at 0.45 x the lower rate (passband edge).
* ``60 s``: one call on a 60 s buffer (white noise -20 dBFS + 997 Hz tone),
  milliseconds and x realtime.
* ``20 ms``: one stream object fed 20 ms chunks, microseconds per chunk.
* ``vs ref``: reference time / candidate time (reference: audioop for G.711,
  soxr HQ for resampling); > 1 means faster than the reference.

Timings are the best of several rounds, candidates interleaved within a round.
scipy ``resample_poly`` has no stream state: its 20 ms figure is a stateless call
per chunk (it clicks at every boundary) and is marked ``(stateless)``.

Run from the repo root::

    python benchmarks/codec.py            # full: 60 s buffers, 1000 chunks/stream, 5 rounds
    python benchmarks/codec.py --quick    # a few seconds: 2 s buffers, 100 chunks, 2 rounds
    python benchmarks/codec.py --cpu 1    # pin to one core (less noise)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtedge.audio import _codec_numpy, codec  # noqa: E402

PAIRS = [(48000, 16000), (44100, 16000), (24000, 16000), (16000, 24000), (8000, 16000), (16000, 8000)]


# --------------------------------------------------------------------------- timing helpers


def fmt_time(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} us"


def best_of(fns: dict[str, Callable[[], Any]], rounds: int, inner: int = 1) -> dict[str, float]:
    """Best wall time per call (seconds) of each fn, interleaving candidates within a round."""
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / inner)
    return best


@contextlib.contextmanager
def rtedge_backend(name: str) -> Iterator[None]:
    """Make rtedge.audio.codec use one kernel module while the block runs."""
    saved = codec._impl
    if name == "numpy":
        codec._impl = _codec_numpy
    try:
        yield
    finally:
        codec._impl = saved


def call_on(mod: Any, fn: Callable[[np.ndarray], Any], arr: np.ndarray) -> Any:
    """Call a public codec function with ``mod`` as its kernel module."""
    saved = codec._impl
    codec._impl = mod
    try:
        return fn(arr)
    finally:
        codec._impl = saved


def c_available() -> bool:
    try:
        import rtedge.audio._codec  # noqa: F401
    except ImportError:
        return False
    return True


def load_audioop() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


# --------------------------------------------------------------------------- candidates


def to_i16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)


class Candidate:
    """A resampler under test: int16 one-shot, an int16 stream, a float one-shot for quality."""

    name = ""
    stateless = False

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Rtedge(Candidate):
    def __init__(self, src: int, dst: int, backend: str) -> None:
        super().__init__(src, dst)
        self.backend = backend
        self.name = f"rtedge ({backend})"

    def _make(self) -> codec.Resampler:
        with rtedge_backend(self.backend):
            return codec.Resampler(self.src, self.dst)

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        r = self._make()
        return np.concatenate([r.process(x), r.flush()])

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        return self._make().process

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        r = self._make()
        return np.concatenate([r.process(x), r.flush()]).astype(np.float64)


class Soxr(Candidate):
    def __init__(self, src: int, dst: int, quality: str) -> None:
        super().__init__(src, dst)
        import soxr

        self.soxr, self.quality = soxr, quality
        self.name = f"soxr {quality}"

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        return self.soxr.resample(x, self.src, self.dst, quality=self.quality)

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        st = self.soxr.ResampleStream(self.src, self.dst, 1, dtype="int16", quality=self.quality)
        return st.resample_chunk

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        return self.soxr.resample(x, self.src, self.dst, quality=self.quality).astype(np.float64)


class Samplerate(Candidate):
    def __init__(self, src: int, dst: int, converter: str) -> None:
        super().__init__(src, dst)
        import samplerate

        self.sr, self.converter = samplerate, converter
        self.ratio = dst / src
        self.name = f"libsamplerate {converter}"

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        y = self.sr.resample(x.astype(np.float32) * np.float32(1 / 32768), self.ratio, self.converter)
        return to_i16(y)

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        r = self.sr.Resampler(self.converter, channels=1)
        ratio = self.ratio

        def step(x: np.ndarray) -> np.ndarray:
            return to_i16(r.process(x.astype(np.float32) * np.float32(1 / 32768), ratio))

        return step

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        return self.sr.resample(x, self.ratio, self.converter).astype(np.float64)


class ScipyPoly(Candidate):
    stateless = True

    def __init__(self, src: int, dst: int) -> None:
        super().__init__(src, dst)
        from scipy import signal

        g = math.gcd(src, dst)
        self.up, self.down = dst // g, src // g
        self.signal = signal
        self.name = "scipy resample_poly"

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        return to_i16(self.signal.resample_poly(x.astype(np.float64) / 32768.0, self.up, self.down))

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.oneshot

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        return self.signal.resample_poly(x.astype(np.float64), self.up, self.down)


class _Speex:
    """Minimal ctypes binding to libspeexdsp's resampler (optional)."""

    lib: Any = None

    @classmethod
    def load(cls) -> Any:
        if cls.lib is None:
            path = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                cls.lib = False
                return False
            u32p = ctypes.POINTER(ctypes.c_uint32)
            lib.speex_resampler_init.restype = ctypes.c_void_p
            lib.speex_resampler_init.argtypes = [ctypes.c_uint32] * 4 + [ctypes.POINTER(ctypes.c_int)]
            lib.speex_resampler_destroy.argtypes = [ctypes.c_void_p]
            lib.speex_resampler_skip_zeros.argtypes = [ctypes.c_void_p]
            lib.speex_resampler_process_int.argtypes = [
                ctypes.c_void_p,
                ctypes.c_uint32,
                ctypes.c_void_p,
                u32p,
                ctypes.c_void_p,
                u32p,
            ]
            lib.speex_resampler_process_float.argtypes = lib.speex_resampler_process_int.argtypes
            cls.lib = lib
        return cls.lib


class Speex(Candidate):
    def __init__(self, src: int, dst: int, quality: int) -> None:
        super().__init__(src, dst)
        self.lib = _Speex.load()
        if not self.lib:
            raise RuntimeError("libspeexdsp not found")
        self.quality = quality
        self.name = f"speexdsp q{quality}"

    def _state(self) -> int:
        err = ctypes.c_int(0)
        st = self.lib.speex_resampler_init(1, self.src, self.dst, self.quality, ctypes.byref(err))
        if not st or err.value:
            raise RuntimeError("speex_resampler_init failed")
        self.lib.speex_resampler_skip_zeros(st)
        return st

    def _run(self, st: int, x: np.ndarray, fn: Any) -> np.ndarray:
        cap = len(x) * self.dst // self.src + 64
        out = np.empty(cap, dtype=x.dtype)
        done_in = done_out = 0
        while done_in < len(x):
            n_in = ctypes.c_uint32(len(x) - done_in)
            n_out = ctypes.c_uint32(cap - done_out)
            fn(
                st,
                0,
                x.ctypes.data + done_in * x.itemsize,
                ctypes.byref(n_in),
                out.ctypes.data + done_out * out.itemsize,
                ctypes.byref(n_out),
            )
            if n_in.value == 0 and n_out.value == 0:
                break
            done_in += n_in.value
            done_out += n_out.value
        return out[:done_out]

    def oneshot(self, x: np.ndarray) -> np.ndarray:
        st = self._state()
        try:
            return self._run(st, np.ascontiguousarray(x), self.lib.speex_resampler_process_int)
        finally:
            self.lib.speex_resampler_destroy(st)

    def stream(self) -> Callable[[np.ndarray], np.ndarray]:
        st = self._state()  # kept for the process lifetime (a benchmark)
        fn = self.lib.speex_resampler_process_int
        return lambda x: self._run(st, x, fn)

    def oneshot_float(self, x: np.ndarray) -> np.ndarray:
        st = self._state()
        try:
            return self._run(st, x.astype(np.float32), self.lib.speex_resampler_process_float).astype(
                np.float64
            )
        finally:
            self.lib.speex_resampler_destroy(st)


def candidates(src: int, dst: int, quick: bool) -> list[Candidate]:
    out: list[Candidate] = []
    if c_available():
        out.append(Rtedge(src, dst, "c"))
    out.append(Rtedge(src, dst, "numpy"))
    makers: list[Callable[[], Candidate]] = [
        lambda: Soxr(src, dst, "HQ"),
        lambda: Soxr(src, dst, "LQ"),
        lambda: Samplerate(src, dst, "sinc_fastest"),
        lambda: Samplerate(src, dst, "sinc_medium"),
        lambda: Speex(src, dst, 3),
        lambda: Speex(src, dst, 5),
        lambda: ScipyPoly(src, dst),
    ]
    for make in makers:
        try:
            out.append(make())
        except (ImportError, RuntimeError):
            pass
    return out


# --------------------------------------------------------------------------- quality


def fit_tone(y: np.ndarray, freq: float, rate: float) -> tuple[float, float]:
    """(amplitude, residual rms) of a DC + sine fit over the middle 60 % of y."""
    a, b = int(0.2 * len(y)), int(0.8 * len(y))
    k = np.arange(a, b, dtype=np.float64)
    w = 2 * np.pi * freq / rate * k
    basis = np.stack([np.cos(w), np.sin(w), np.ones_like(w)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y[a:b], rcond=None)
    resid = y[a:b] - basis @ coef
    return float(np.hypot(coef[0], coef[1])), float(np.sqrt(np.mean(resid**2)))


def quality(c: Candidate, seconds: float) -> tuple[float, float]:
    """(worst alias/image level dB, gain dB at 0.45 x the lower rate)."""
    src, dst = c.src, c.dst
    amp = 0.5
    n = int(src * seconds)
    t = np.arange(n)

    def tone(f: float) -> np.ndarray:
        return c.oneshot_float((amp * np.sin(2 * np.pi * f / src * t)).astype(np.float32))

    worst = -math.inf
    if dst < src:
        nyq = dst / 2
        for f in (1.003 * nyq, 1.05 * nyq, 1.25 * nyq, 1.5 * nyq, 0.5 * (nyq + src / 2), 0.49 * src):
            if f < src / 2:
                y = tone(f)
                mid = y[int(0.2 * len(y)) : int(0.8 * len(y))]
                worst = max(worst, 20 * math.log10(math.sqrt(2 * np.mean(mid**2)) / amp + 1e-30))
    else:
        for frac in (0.1, 0.3, 0.45, 0.49):
            _, resid = fit_tone(tone(frac * src), frac * src, dst)
            worst = max(worst, 20 * math.log10(resid * math.sqrt(2) / amp + 1e-30))
    f_edge = 0.45 * min(src, dst)
    gain, _ = fit_tone(tone(f_edge), f_edge, dst)
    return worst, 20 * math.log10(gain / amp)


# --------------------------------------------------------------------------- measurements


def test_signal(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(2026)
    n = int(rate * seconds)
    x = 0.1 * 32768 * rng.standard_normal(n) + 8000 * np.sin(2 * np.pi * 997 / rate * np.arange(n))
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def g711_rows(args: argparse.Namespace) -> list[list[str]]:
    audioop = load_audioop()
    rate = 8000
    x = test_signal(rate, args.seconds)
    chunk = x[: rate // 50]
    codes = codec.ulaw_encode(x)
    codes_chunk = codes[: rate // 50]
    xb, chunkb, codesb, codes_chunkb = x.tobytes(), chunk.tobytes(), codes.tobytes(), codes_chunk.tobytes()
    backends = (["c"] if c_available() else []) + ["numpy"]
    rows = []
    for op in ("ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode"):
        enc = op.endswith("encode")
        fn = getattr(codec, op)
        big, small = (x, chunk) if enc else (codes, codes_chunk)
        impls_big: dict[str, Callable[[], Any]] = {}
        impls_small: dict[str, Callable[[], Any]] = {}
        for be in backends:
            if be == "c":
                impls_big["rtedge (c)"] = functools.partial(fn, big)
                impls_small["rtedge (c)"] = functools.partial(fn, small)
            else:
                impls_big["rtedge (numpy)"] = functools.partial(call_on, _codec_numpy, fn, big)
                impls_small["rtedge (numpy)"] = functools.partial(call_on, _codec_numpy, fn, small)
        if audioop is not None:
            a_fn = {
                "ulaw_encode": audioop.lin2ulaw,
                "alaw_encode": audioop.lin2alaw,
                "ulaw_decode": audioop.ulaw2lin,
                "alaw_decode": audioop.alaw2lin,
            }[op]
            bb, sb = (xb, chunkb) if enc else (codesb, codes_chunkb)
            impls_big["audioop"] = functools.partial(a_fn, bb, 2)
            impls_small["audioop"] = functools.partial(a_fn, sb, 2)
        t_big = best_of(impls_big, args.rounds)
        t_small = best_of(impls_small, args.rounds, inner=args.g711_inner)
        ref_big, ref_small = t_big.get("audioop"), t_small.get("audioop")
        for name in impls_big:
            qual = (
                "G.191 exact"
                if name.startswith("rtedge")
                else ("508 mu-law diffs vs G.191" if op == "ulaw_encode" else "= G.191")
            )
            rows.append(
                [
                    f"G.711 {op.replace('_', ' ')}",
                    name,
                    qual,
                    "",
                    f"{fmt_time(t_big[name])} ({t_big[name] / len(x) * 1e9:.2f} ns/sample)",
                    f"{args.seconds / t_big[name]:,.0f}x",
                    f"{ref_big / t_big[name]:.1f}x" if ref_big else "-",
                    f"{t_small[name] * 1e6:.2f}",
                    f"{ref_small / t_small[name]:.2f}x" if ref_small else "-",
                ]
            )
    return rows


def resample_rows(args: argparse.Namespace, src: int, dst: int) -> list[list[str]]:
    cands = candidates(src, dst, args.quick)
    x = test_signal(src, args.seconds)
    frame = src // 50
    n_chunks = min(args.chunks, len(x) // frame)
    chunks = [x[i * frame : (i + 1) * frame] for i in range(n_chunks)]

    streams = {c.name: c.stream() for c in cands}
    for step in streams.values():  # warm up: fill the filters, settle allocations
        for ch in chunks[:20]:
            step(ch)

    def feed(step: Callable[[np.ndarray], np.ndarray]) -> None:
        for ch in chunks:
            step(ch)

    t_stream = best_of({name: (lambda s=s: feed(s)) for name, s in streams.items()}, args.rounds)
    t_stream = {k: v / n_chunks for k, v in t_stream.items()}
    t_oneshot = best_of({c.name: (lambda c=c: c.oneshot(x)) for c in cands}, args.oneshot_rounds)
    ref_o, ref_s = t_oneshot.get("soxr HQ"), t_stream.get("soxr HQ")
    rows = []
    for c in cands:
        rej, edge = quality(c, args.tone_seconds)
        stateless = " (stateless)" if c.stateless else ""
        rows.append(
            [
                f"resample {src / 1000:g}k->{dst / 1000:g}k",
                c.name,
                f"{rej:.1f}",
                f"{edge:+.2f}",
                fmt_time(t_oneshot[c.name]),
                f"{args.seconds / t_oneshot[c.name]:,.0f}x",
                f"{ref_o / t_oneshot[c.name]:.2f}x" if ref_o else "-",
                f"{t_stream[c.name] * 1e6:.2f}{stateless}",
                f"{ref_s / t_stream[c.name]:.2f}x" if ref_s else "-",
            ]
        )
    return rows


def print_table(rows: list[list[str]], seconds: float) -> None:
    head = [
        "task",
        "implementation",
        "rej dB",
        "@0.45 dB",
        f"{seconds:g} s buffer",
        "x realtime",
        "vs ref",
        "20 ms chunk (us)",
        "vs ref",
    ]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) + " |")


def versions() -> str:
    parts = [
        f"Python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"rtedge backend {codec.BACKEND}",
    ]
    for mod in ("soxr", "samplerate", "scipy"):
        try:
            m = __import__(mod)
            parts.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            parts.append(f"{mod} missing")
    parts.append("speexdsp " + ("ctypes" if _Speex.load() else "missing"))
    parts.append("audioop " + ("yes" if load_audioop() is not None else "missing"))
    return ", ".join(parts)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few seconds: short buffers, few rounds")
    p.add_argument("--seconds", type=float, default=None, help="buffer length (default 60, quick 2)")
    p.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU")
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 60.0
    args.rounds = 2 if args.quick else 5
    args.oneshot_rounds = 2 if args.quick else 3
    args.chunks = 100 if args.quick else 1000
    args.g711_inner = 200 if args.quick else 2000
    args.tone_seconds = 0.2 if args.quick else 0.5
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    started = time.time()
    print(
        f"# rtedge codec benchmark ({'quick' if args.quick else 'full'}): {cpu_name()}, {os.cpu_count()} CPUs"
    )
    print(f"# {versions()}")
    print(
        f"# buffers {args.seconds:g} s, streams of {args.chunks} x 20 ms chunks, best of {args.rounds} rounds"
    )
    print()
    rows = g711_rows(args)
    for src, dst in PAIRS:
        rows += resample_rows(args, src, dst)
    print_table(rows, args.seconds)
    print()
    print(
        "vs ref: reference time / this time (G.711: audioop on bytes; resampling: soxr HQ). "
        "rej dB: worst alias/image level; @0.45 dB: gain at 0.45 x the lower rate."
    )
    print(f"# wall time {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
