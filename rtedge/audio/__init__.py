"""Audio for rtedge: codecs and resampling (``rtedge.audio.codec``).

Owns: the sample rates the codec converts between (here, so that settings can check them without numpy).
Must not: import numpy at import time.
"""

#: Sample rates the resampler accepts (Hz); ``rtedge.audio.codec.SUPPORTED_RATES`` is this tuple.
SUPPORTED_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: the same, as messages print it
RATES_TEXT = ", ".join(str(rate) for rate in SUPPORTED_RATES) + " Hz"


def file_rate_problem(path: object, rate: int) -> str:
    """What to say about a WAV file at a rate the resampler does not take, and what to do."""
    return (f"{path}: {rate} Hz is not a rate rtedge converts; resample it to one of {RATES_TEXT} "
            f"(e.g. sox {path} -r 16000 out.wav)")
