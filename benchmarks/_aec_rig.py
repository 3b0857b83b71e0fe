"""What the two echo benchmarks (aec.py: the canceller alone; aec_agent.py: through VoiceAgent) share: their
common options and the check that the canceller and the speech tools are here.

Owns: nothing but those two helpers.  Must not: measure anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rtedge.audio import aec as aec_mod
from rtedge.testing import speech

#: the shared speech fixtures (a checkout next to ``../shared``)
SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=100, help="double-talk trials per condition")
    parser.add_argument("--seconds", type=float, default=60.0, help="own playback for false barge-ins")


def missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if not aec_mod.available():
        return "the rtedge.audio._aec extension is not built (install libspeexdsp-dev, reinstall rtedge)"
    if not speech.available() or not SPEECH.is_dir():
        return "needs espeak-ng, sox and ../shared/fixtures/speech"
    return None
