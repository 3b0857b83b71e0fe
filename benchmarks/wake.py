#!/usr/bin/env python3
"""Wake word (``rtedge[wake]``, microWakeWord through pymicro-wakeword): detection, false wakes, CPU.

What it measures
----------------
1. **Detection**: the wake phrase synthesized by espeak-ng in 12 voices x 4 speeds x 3 pitches x
   2 noise draws (``--utterances`` caps the count; default all 288), each with 0.5 s of noise before and
   1 s after, noise at a random 10-20 dB SNR: pink (1/f, like room noise), and side by side white noise
   (broadband hiss, much harder for the model) at the model's cutoff and at 0.5, and espeak-ng's en-us
   *female* variants, which the shipped ``okay_nabu`` model misses even without noise (a model
   limitation, reported, not hidden).  Detected = the detector fires within the utterance or the second
   after it.  Two splits: ``--split tuning`` (``WAKE_VOICES``, the set any decision rule was tuned on) and
   ``--split held-out`` (the default: ``HELDOUT_VOICES``, other noise and false-wake seeds), the figures to
   report.
2. **False wakes**: ``--hours`` (1) of non-wake speech, streamed in 20 ms frames: clips of one to three
   sentences run together (0.1-0.4 s gaps, then 0.2-1 s of pause) in a random voice, speed (120-200 wpm) and
   pitch, with pink or white noise at 10-30 dB SNR; about three quarters of the time is speech.  The
   sentences (``_wake_text``: conversation, questions, assistant answers, kiosk commands, a few words that
   sound a little like a wake phrase, as everyday speech has) are split: each split has ``OTHER`` and its own
   half of the written pool (about 225 distinct sentences), and its own 12 voices and seed.  The clips that
   woke the detector are listed.  Each sentence appears only a few times in the hour, so the sentences that
   woke a model in earlier, narrower runs (``CONFUSIONS``) are also swept over every voice, speed and pitch
   and reported apart: how often a known confusion wakes the detector.
3. **CPU**: thread CPU time of the detector per second of audio (one core = 100 %), over the false-wake
   run; the baseline is the feature front end alone (what any wake word engine must compute).

Run from the repo root (needs rtedge[wake], espeak-ng and sox)::

    nice -n 10 python benchmarks/wake.py                  # about 2 min of CPU, 5-10 min on a busy machine
    nice -n 10 python benchmarks/wake.py --hours 0.05 --utterances 48   # quick
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

import rtedge
from rtedge.voice import wake
from rtedge.testing import room, speech

import _wake_text

RATE = 16000
WAKE_VOICES = ("en-us", "en-us+m1", "en-us+m2", "en-us+m3", "en-us+m4", "en-us+m6", "en-us+m7",
               "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+klatt", "en-us+klatt2")
#: held-out voices (male, none of them in WAKE_VOICES; chosen before any of them was measured): a decision rule
#: tuned on WAKE_VOICES (noise seed 1, false-wake seed 3) is reported on these (noise seed 11, false-wake seed 13)
HELDOUT_VOICES = ("en-gb", "en-us+m5", "en-us+m8", "en-us-nyc", "en-us-nyc+m2", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-gb-x-rp+m3", "en-029+m6", "en-gb-scotland+m4", "en-us+klatt3", "en-us+klatt4")
SPLITS = {"tuning": (WAKE_VOICES, 1, 3), "held-out": (HELDOUT_VOICES, 11, 13)}
FEMALE_VOICES = ("en-us+f1", "en-us+f2", "en-us+f4")
SPEEDS, PITCHES = (130, 150, 170, 190), (35, 50, 65)
PHRASES = {"okay_nabu": "okay nabu", "alexa": "alexa", "hey_jarvis": "hey jarvis", "hey_mycroft": "hey mycroft"}
OTHER = speech.ANSWERS + ("Turn on the kitchen lights.", "What's the weather tomorrow?", "Stop.",
                          "Set a timer for ten minutes.", "Okay, thank you.", "Play some music.",
                          "No, the other one.", "Hey, can you hear me?", "Call my brother.")
#: false-wake speakers: the tuning split's are speech.VOICES; the held-out split's are 12 others (each checked
#: to give audio different from its base voice: variants of en-gb do not, so there are none here)
FALSE_WAKE_HELDOUT_VOICES = ("en-us+f2", "en-gb-x-rp", "en-us+m6", "en-029", "en-gb-x-gbclan+f1", "en-us-nyc+f4",
                             "en-gb-scotland+m2", "en-us+klatt2", "en-us+f1", "en-gb-x-gbcwmd+m1", "en-us+croak",
                             "en-gb-x-rp+f5")
#: sentences that woke alexa or okay_nabu in earlier runs (a smaller, older false-wake set); each is also swept
#: over the split's false-wake voices x SPEEDS x PITCHES, so a confusion the hour's random draw misses is shown
CONFUSIONS = ("Play some music.", "What's the weather tomorrow?", "I have set a timer for ten minutes, starting now.",
              "Okay, thank you.")
FALSE_WAKE_SPLITS = {"tuning": (speech.VOICES, 3), "held-out": (FALSE_WAKE_HELDOUT_VOICES, 13)}


def false_wake_sentences(split: str) -> list[str]:
    """The split's non-wake sentences: OTHER (in both splits: the known confusions stay in the held-out set)
    and half of the written pool (even positions for tuning, odd for held-out)."""
    new = _wake_text.pool(exclude=OTHER)
    return [*OTHER, *new[split != "tuning"::2]]


@dataclass
class FalseWakes:
    """What the false-wake run measured (CPU in thread seconds)."""

    wakes: int = 0  #: detections at the model's cutoff
    low_wakes: int = 0  #: detections at cutoff 0.5
    seconds: float = 0.0  #: audio streamed
    speech_seconds: float = 0.0  #: of which synthesized speech
    cpu: float = 0.0
    cpu_front: float = 0.0  #: the feature front end alone
    by_text: dict[str, int] = field(default_factory=dict)  #: wakes at the model's cutoff per clip text
    texts: set[str] = field(default_factory=set)  #: distinct sentences spoken


def noise(n: int, rng: np.random.Generator, pink: bool) -> np.ndarray:
    w = rng.standard_normal(n)
    if not pink:
        return w
    spec = np.fft.rfft(w)
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))
    return np.fft.irfft(spec, n)


def noisy(x: np.ndarray, rng: np.random.Generator, snr: float, pink: bool, *, lead: int = RATE // 2,
          tail: int = RATE) -> np.ndarray:
    """``x`` padded with ``lead`` and ``tail`` samples, noise added at ``snr`` dB below its speech level."""
    level = room.level_dbfs(x[np.abs(x) > 300])
    pad = np.concatenate([np.zeros(lead), x, np.zeros(tail)])
    return room.to_int16(pad + room.scale_to(noise(len(pad), rng, pink), level - snr))


def detect(det: wake.WakeWordDetector, x: np.ndarray) -> bool:
    det.reset()
    hits = []
    for i in range(0, len(x), 320):
        hits += det.process(x[i:i + 320])
    return bool(hits)


def detection(model: str, voices: tuple[str, ...], limit: int, seed: int, *, pink: bool = True,
              cutoff: float | None = None) -> tuple[int, int, dict[str, str]]:
    det, rng = wake.WakeWordDetector(model, cutoff=cutoff), np.random.default_rng(seed)
    grid = [(v, s, p, k) for v in voices for s in SPEEDS for p in PITCHES for k in range(2)][:limit]
    per: dict[str, list[bool]] = {}
    for v, s, p, _ in grid:
        x = speech.synthesize(PHRASES[model], voice=v, speed=s, pitch=p, rate=RATE)
        per.setdefault(v, []).append(detect(det, noisy(x, rng, 10 + 10 * rng.random(), pink=pink)))
    hits = sum(sum(r) for r in per.values())
    return hits, len(grid), {v: f"{sum(r)}/{len(r)}" for v, r in per.items()}


def confusions(model: str, split: str) -> dict[str, tuple[int, int]]:
    """Per CONFUSIONS sentence: (clips that woke the detector, clips), each clip with noise at 10-30 dB SNR."""
    voices, seed = FALSE_WAKE_SPLITS[split]
    det, rng = wake.WakeWordDetector(model), np.random.default_rng(seed + 100)
    out = {}
    for text in CONFUSIONS:
        woke = [detect(det, noisy(speech.synthesize(text, voice=v, speed=s, pitch=p, rate=RATE), rng,
                                  10 + 20 * rng.random(), pink=bool(rng.integers(2))))
                for v in voices for s in SPEEDS for p in PITCHES]
        out[text] = (sum(woke), len(woke))
    return out


def stream(voices: tuple[str, ...], sentences: list[str], hours: float,
           seed: int) -> Iterator[tuple[np.ndarray, tuple[str, ...], int]]:
    """The false-wake audio, clip by clip: (int16 clip, its sentences, speech samples in it), ``hours`` in all.

    A clip is one to three sentences (one voice, speed and pitch) run together with 0.1-0.4 s gaps, then
    0.2-1 s of pause, with pink or white noise at 10-30 dB SNR from 0.25 s before it to its end."""
    rng, total = np.random.default_rng(seed), 0
    while total < hours * 3600 * RATE:
        voice = voices[int(rng.integers(len(voices)))]
        speed, pitch = int(rng.integers(120, 200)), int(rng.integers(30, 70))
        texts = tuple(sentences[int(rng.integers(len(sentences)))] for _ in range(int(rng.integers(1, 4))))
        parts: list[np.ndarray] = []
        for text in texts:
            if parts:
                parts.append(np.zeros(int(rng.integers(1, 5)) * RATE // 10, np.int16))
            parts.append(speech.synthesize(text, voice=voice, speed=speed, pitch=pitch, rate=RATE))
        spoken = sum(len(p) for p in parts[::2])
        parts.append(np.zeros(int(rng.integers(2, 11)) * RATE // 10, np.int16))
        x = noisy(np.concatenate(parts), rng, 10 + 20 * rng.random(), pink=bool(rng.integers(2)),
                  lead=RATE // 4, tail=0)
        total += len(x)
        yield x, texts, spoken


def false_wakes(model: str, split: str, hours: float) -> FalseWakes:
    """Stream the split's false-wake audio through the detector at the model's cutoff and at 0.5 (and the
    feature front end alone, for the CPU baseline) in 20 ms frames."""
    det, low = wake.WakeWordDetector(model), wake.WakeWordDetector(model, cutoff=0.5)
    front = wake._library().MicroWakeWordFeatures()
    out = FalseWakes()
    voices, seed = FALSE_WAKE_SPLITS[split]
    for x, texts, spoken in stream(voices, false_wake_sentences(split), hours, seed):
        for i in range(0, len(x) - 319, 320):
            frame = x[i:i + 320]
            t0 = time.thread_time()
            fired = len(det.process(frame))
            t1 = time.thread_time()
            for _ in front.process_streaming(frame.tobytes()):
                pass
            out.cpu, out.cpu_front = out.cpu + t1 - t0, out.cpu_front + time.thread_time() - t1
            out.low_wakes += len(low.process(frame))
            if fired:
                out.wakes += fired
                out.by_text[" / ".join(texts)] = out.by_text.get(" / ".join(texts), 0) + fired
        out.seconds += len(x) / RATE
        out.speech_seconds += spoken / RATE
        out.texts.update(texts)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="okay_nabu", choices=sorted(PHRASES))
    parser.add_argument("--utterances", type=int, default=288, help="detection set size (max 288)")
    parser.add_argument("--hours", type=float, default=1.0, help="non-wake audio for false wakes")
    parser.add_argument("--split", default="held-out", choices=sorted(SPLITS),
                        help="voices and seeds: tune decision rules on 'tuning', report 'held-out' (default)")
    args = parser.parse_args()
    voices, seed, fw_seed = SPLITS[args.split]
    if not wake.available() or not speech.available():
        print("needs rtedge[wake] (pymicro-wakeword), espeak-ng and sox")
        return 1
    print(f"python {platform.python_version()}, {platform.machine()}, rtedge {rtedge.__version__}, "
          f"model {args.model}, {args.split} split")
    grid = f"{len(voices)} voices x {len(SPEEDS)} speeds x {len(PITCHES)} pitches x 2"
    rows = [(f"{grid}, pink (1/f) noise, model cutoff", detection(args.model, voices, args.utterances, seed)),
            (f"{grid}, white noise, model cutoff",
             detection(args.model, voices, args.utterances, seed, pink=False)),
            (f"{grid}, white noise, cutoff 0.5",
             detection(args.model, voices, args.utterances, seed, pink=False, cutoff=0.5)),
            ("en-us female variants, pink noise, model cutoff", detection(args.model, FEMALE_VOICES, 72, 2))]
    print("\n## Detection (espeak-ng utterances, noise at 10-20 dB SNR)\n")
    print("| set | utterances | detected | rate |")
    print("|---|---|---|---|")
    for name, (hits, n, _) in rows:
        print(f"| {name} | {n} | {hits} | {100 * hits / n:.1f} % |")
    for name, (_, _, per) in rows:
        print(f"\nper voice ({name}): " + ", ".join(f"{v} {r}" for v, r in per.items()))
    fw = false_wakes(args.model, args.split, args.hours)
    hours = fw.seconds / 3600
    print(f"\n## False wakes and CPU over {hours:.2f} h of non-wake speech and noise\n")
    print(f"{len(fw.texts)} distinct sentences, {len(FALSE_WAKE_SPLITS[args.split][0])} voices; "
          f"speech {fw.speech_seconds / 60:.1f} min of {fw.seconds / 60:.1f} min\n")
    print("| measure | value | baseline: feature front end alone | ratio |")
    print("|---|---|---|---|")
    print(f"| false wakes, model cutoff | {fw.wakes} ({fw.wakes / hours:.1f} per hour) | - | - |")
    print(f"| false wakes, cutoff 0.5 | {fw.low_wakes} ({fw.low_wakes / hours:.1f} per hour) | - | - |")
    print(f"| detector CPU, % of one core | {100 * fw.cpu / fw.seconds:.2f} | {100 * fw.cpu_front / fw.seconds:.2f} | "
          f"{fw.cpu / max(fw.cpu_front, 1e-9):.1f}x |")
    for text, n in sorted(fw.by_text.items(), key=lambda kv: -kv[1]):
        print(f"\nfalse wake x{n}: {text}")
    print(f"\n## Known confusions: each sentence in {len(FALSE_WAKE_SPLITS[args.split][0])} voices x "
          f"{len(SPEEDS)} speeds x {len(PITCHES)} pitches, noise at 10-30 dB SNR, model cutoff\n")
    print("| sentence | clips | woke |")
    print("|---|---|---|")
    for text, (woke, n) in confusions(args.model, args.split).items():
        print(f"| {text} | {n} | {woke} ({100 * woke / n:.1f} %) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
