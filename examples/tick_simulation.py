"""A scripted phone caller against the local server, in 200 ms ticks of 8 kHz mu-law.

    python examples/tick_simulation.py --out /tmp/sim.wav          # writes /tmp/sim.wav and /tmp/sim.txt
    python examples/tick_simulation.py --out /tmp/sim.wav --realtime   # the server paced at real time

The caller asks for the kitchen lights (the model calls a ``set_lights`` tool, answered inside
the tick), asks again when the agent is done, and talks over the agent's long second answer
(barge-in: the agent's audio stops at the caller's speech onset and the item is truncated
there).  The stereo WAV has the caller on the left and the agent on the right, exactly as the
ticks delivered them; the transcript file has one timed line per utterance and event.
"""

from __future__ import annotations

import argparse
import json
import wave
from importlib.resources import files
from pathlib import Path

import numpy as np

import rtedge
from rtedge import TickResult, TickSession, TickSettings
from rtedge.audio import codec
from rtedge.audio.wavio import read_wav
from rtedge.testing import RealtimeServer, Reply, Turn

LONG_ANSWER = ("The kitchen lights are already on. I can also dim them, change their colour, "
               "or turn on the lights in the living room and the hallway if you like.")


def set_lights(room: str, on: bool) -> dict:
    """Switch the lights of a room.

    Args:
        room: the room, e.g. "kitchen".
        on: True to switch them on.
    """
    return {"room": room, "on": on, "ok": True}


def caller_phrase() -> np.ndarray:
    """The bundled recording, as 8 kHz mu-law."""
    pcm, rate = read_wav(files("rtedge") / "data" / "demo_phrase.wav")
    return codec.ulaw_encode(np.concatenate([codec.Resampler(rate, 8000).process(pcm)]))


def responder() -> object:
    """The scripted model: a real recorded answer first, then a long synthetic one, then short ones."""
    reply, _rate = read_wav(files("rtedge") / "data" / "demo_reply.wav")  # 24 kHz, as Reply wants
    answers = iter([Reply("Okay. The kitchen lights are on.", reply), Reply(LONG_ANSWER)])

    def answer(turn: Turn) -> Reply:
        return next(answers, Reply("Sure, done."))
    return answer


class Caller:
    """Speaks on a script: waits, speaks, waits for the agent, talks over it."""

    def __init__(self, phrase: np.ndarray, n: int) -> None:
        self.phrase, self.n = phrase, n
        self.script = [("wait", 2), ("say", 0), ("quiet", 5), ("say", 0), ("agent_for", 8), ("say", 0),
                       ("quiet", 5)]
        self.pending = np.zeros(0, dtype=np.uint8)
        self.count = 0

    def next_tick(self, last: TickResult | None) -> np.ndarray | None:
        """The caller's audio for the next tick, or None when the script is over."""
        agent_on = last is not None and (last.agent_samples > 0 or last.carried_samples > 0)
        while not len(self.pending) and self.script:
            step, arg = self.script[0]
            if step == "say":
                self.pending = self.phrase
            else:
                waiting = {"wait": self.count < arg, "quiet": agent_on or self.count < arg,
                           "agent_for": not agent_on or self.count < arg}[step]
                if waiting:  # quiet: ticks without the agent; agent_for: ticks of the agent talking
                    reset = (step == "quiet" and agent_on) or (step == "agent_for" and not agent_on)
                    self.count = 0 if reset else self.count + 1
                    return np.full(self.n, 0xFF, dtype=np.uint8)
            self.script.pop(0)
            self.count = 0
        if not len(self.pending):
            return None
        chunk, self.pending = self.pending[:self.n], self.pending[self.n:]
        return np.concatenate([chunk, np.full(self.n - len(chunk), 0xFF, dtype=np.uint8)])


def stamp(ms: int) -> str:
    return f"[{ms // 60000:02d}:{ms % 60000 / 1000:06.3f}]"


class Log:
    """Timed transcript: one line per event, agent words gathered per utterance."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.words, self.since = "", 0

    def tick(self, r: TickResult) -> None:
        for e in r.events:
            at = r.start_ms + e.offset_ms
            if e.kind == "interrupted":
                self.flush(at, f" [cut off after {e.detail} ms]")
            if e.kind in ("speech_started", "speech_stopped"):
                self.lines.append(f"{stamp(at)} caller {e.kind.replace('_', ' ')} (server VAD)")
            elif e.kind == "tool_call":
                self.lines.append(f"{stamp(at)} tool call: {e.detail} {json.dumps(arguments(r, e.item_id))}")
            if e.kind == "user_transcript":
                self.lines.append(f"{stamp(at)} caller: {e.detail}")
        if r.agent_transcript and not self.words:
            self.since = r.start_ms + (r.spans[0].offset * 1000 // 8000 if r.spans else 0)
        self.words += r.agent_transcript
        if self.words and r.carried_samples == 0 and r.agent_samples < len(r.agent_audio):
            self.flush(self.since, "")

    def flush(self, at: int, note: str) -> None:
        if self.words:
            self.lines.append(f"{stamp(self.since)} agent: {self.words.strip()}{note}")
            self.words = ""

    def text(self) -> str:
        """The lines in time order (an utterance is logged when it ends, stamped when it began)."""
        return "\n".join(sorted(self.lines, key=lambda line: line[:11])) + "\n"


def arguments(r: TickResult, item_id: str) -> dict:
    return next((dict(c.parsed_arguments) for c in r.tool_calls if c.item_id == item_id), {})


def write_stereo(path: Path, caller: list[np.ndarray], agent: list[np.ndarray]) -> None:
    left = codec.ulaw_decode(np.concatenate(caller))
    right = codec.ulaw_decode(np.concatenate(agent))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())


def main(args: argparse.Namespace) -> None:
    session = rtedge.SessionConfig(
        instructions="You control the lights of a house over the phone.",
        input_format=rtedge.AudioFormat.pcmu(), output_format=rtedge.AudioFormat.pcmu(),
        transcription=rtedge.Transcription(model="gpt-4o-mini-transcribe"),
        turn_detection=rtedge.ServerVad(silence_duration_ms=500))  # the caller's comma is not a turn end
    server = RealtimeServer(realtime=args.realtime, seed=1, responder=responder(),
                            input_transcript="Turn on the kitchen lights, please.",
                            tool_arguments='{"room": "kitchen", "on": true}')
    caller_audio, agent_audio, log = [], [], Log()
    with server, TickSession(TickSettings(url=server.url, session=session), tick_ms=args.tick_ms,
                             audio_format="ulaw8k", tools=[set_lights]) as ticks:
        caller = Caller(caller_phrase(), ticks.samples_per_tick)
        last: TickResult | None = None
        max_ticks = int(args.max_seconds * 1000 / args.tick_ms)
        while len(caller_audio) < max_ticks and (audio := caller.next_tick(last)) is not None:
            last = ticks.run_tick(audio)
            caller_audio.append(audio)
            agent_audio.append(np.frombuffer(last.agent_audio, dtype=np.uint8))
            log.tick(last)
        stats = ticks.stats
    out = Path(args.out)
    write_stereo(out, caller_audio, agent_audio)
    out.with_suffix(".txt").write_text(log.text())
    print(log.text())
    seconds = len(caller_audio) * args.tick_ms / 1000
    print(f"\n{len(caller_audio)} ticks ({seconds:.1f} s) -> {out} (caller left, agent right) and "
          f"{out.with_suffix('.txt')}; agent audio played {stats.played_samples / 8000:.2f} s, "
          f"dropped by barge-in {stats.dropped_samples / 8000:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sim.wav",
                        help="the stereo WAV to write (the transcript goes next to it)")
    parser.add_argument("--tick-ms", type=int, default=200, help="tick length (default 200)")
    parser.add_argument("--realtime", action="store_true", help="pace the local server at real time")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop the call after this long")
    try:
        main(parser.parse_args())
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
