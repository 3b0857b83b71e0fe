"""Start-up cost probes for ``client_overhead.py``: each runs in a fresh interpreter.

* :func:`probe`: interpreter start, the client's imports and its first connect (``session.update`` ->
  ``session.updated`` included) to the loopback server; CPU (user+sys, all threads) and peak RSS at
  that point.  The probe is a ``python -c`` program, so the harness's own imports are not counted.
* :func:`import_costs`: CPU of importing one module (cumulative: everything it pulls in) on top of a
  bare interpreter, and whether numpy came along.

Both run with bytecode caches, as an installed package does (pip writes them; a service restarts
warm): the probes read and write them under a private ``PYTHONPYCACHEPREFIX`` (so the source tree is
left alone, and ``PYTHONDONTWRITEBYTECODE`` in the caller's environment cannot make every start
compile rtedge from source), and an untimed run of each probe fills it first.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

_CPU = ("import resource, sys, json\n"
        "def cpu():\n"
        "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    return r.ru_utime + r.ru_stime\n"
        "t0 = cpu()\n")

_FMT = '{"type": "audio/pcm", "rate": 24000}'

PROBES = {
    # websocket-client with the UTF-8 check off, JSON by hand: the same imports the plain driver needs
    "plain": _CPU + (
        "import base64, websocket\n"
        "t1 = cpu()\n"
        "ws = websocket.create_connection(sys.argv[1], skip_utf8_validation=True)\n"
        "assert json.loads(ws.recv())['type'] == 'session.created'\n"
        "ws.send(json.dumps({'type': 'session.update', 'session': {'type': 'realtime', "
        "'output_modalities': ['audio'], 'audio': {'input': {'format': " + _FMT + ", "
        "'turn_detection': {'type': 'server_vad'}}, 'output': {'format': " + _FMT + ", 'voice': 'alloy'}}}}))\n"
        "while json.loads(ws.recv())['type'] != 'session.updated':\n"
        "    pass\n"
        "t2 = cpu()\n"
        "ws.close()\n"),
    # rtedge as the README shows it: connect with a session config (connect waits for session.updated)
    "rtedge": _CPU + (
        "import rtedge\n"
        "t1 = cpu()\n"
        "session = rtedge.SessionConfig(output_modalities=('audio',), voice='alloy', "
        "turn_detection=rtedge.ServerVad(), input_format=rtedge.AudioFormat.pcm(24000), "
        "output_format=rtedge.AudioFormat.pcm(24000))\n"
        "client = rtedge.connect('openai', url=sys.argv[1], session=session, ping_interval=0)\n"
        "t2 = cpu()\n"
        "client.close()\n"),
}
_REPORT = ("rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
           "print('RESULT ' + json.dumps({'ok': True, 'interpreter': t0, 'imports': t1 - t0, "
           "'connect': t2 - t1, 'total': t2, 'rss_mb': rss, 'numpy': 'numpy' in sys.modules}))\n")

#: modules whose import cost is reported (each cumulative, in a fresh interpreter)
MODULES = ("rtedge", "rtedge.protocol.events", "rtedge.protocol.wire", "rtedge.audio.convert",
           "rtedge.audio.codec", "rtedge.transport.client", "websocket", "numpy")


_ENV: dict[str, str] = {}


def _env() -> dict[str, str]:
    """The probes' environment: a private bytecode cache, writable."""
    if not _ENV:
        prefix = tempfile.mkdtemp(prefix="rtedge-bench-pycache-")
        atexit.register(shutil.rmtree, prefix, True)
        _ENV.update({k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        _ENV["PYTHONPYCACHEPREFIX"] = prefix
    return _ENV


def _run(code: str, *args: str) -> dict:  # type: ignore[type-arg]
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                              env=_env())
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "probe timed out"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"ok": False, "error": f"probe exited {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return json.loads(lines[-1][7:])  # type: ignore[no-any-return]


_WARM: set[str] = set()


def probe(driver: str, url: str) -> dict:  # type: ignore[type-arg]
    """One start-up measurement of ``driver`` ("plain" or "rtedge"; others fall back to plain); the first
    call per driver first runs the probe once untimed, to fill the bytecode cache."""
    code = PROBES.get(driver, PROBES["plain"]) + _REPORT
    if driver not in _WARM:
        _WARM.add(driver)
        _run(code, url)
    return _run(code, url)


def import_costs(reps: int) -> list[str]:
    """Markdown table: median CPU ms of importing each of :data:`MODULES` in a fresh interpreter."""
    code = (_CPU + "import importlib\nimportlib.import_module(sys.argv[1])\n"
            "print('RESULT ' + json.dumps({'ok': True, 'ms': (cpu() - t0) * 1000, "
            "'numpy': 'numpy' in sys.modules}))\n")
    runs: dict[str, list[dict]] = {m: [] for m in MODULES}  # type: ignore[type-arg]
    for m in MODULES:  # fill the bytecode cache
        _run(code, m)
    for _ in range(reps):
        for m in MODULES:  # interleaved, like everything else
            runs[m].append(_run(code, m))
    out = [f"### import cost per module (CPU ms on top of a bare interpreter, cumulative, bytecode cached, "
           f"median of {reps})", "",
           "| module | CPU ms | min–max | pulls in numpy |", "|---|---|---|---|"]
    for m in MODULES:
        ok = [r for r in runs[m] if r.get("ok")]
        if not ok:
            out.append(f"| `{m}` | failed: {runs[m][-1].get('error')} | | |")
            continue
        ms = [r["ms"] for r in ok]
        out.append(f"| `{m}` | {statistics.median(ms):.0f} | {min(ms):.0f}–{max(ms):.0f} |"
                   f" {'yes' if ok[0]['numpy'] else 'no'} |")
    return out
