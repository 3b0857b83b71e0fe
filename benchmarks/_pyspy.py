"""py-spy sampling of one driver run for ``client_overhead.py --pyspy MODE``.

py-spy (``pip install py-spy``) samples the driver process from outside (``--nonblocking``: the process
is never paused) at 250 Hz, only the thread holding the GIL (Python work, not waits or GIL-free C), and
writes collapsed stacks.  The driver starts the :class:`Sampler` on itself when its stream phase starts
and stops it when it ends, so start-up and connect are not in the profile.  :func:`report` prints where the samples fell: by thread, by function where
the sample was taken (self), and by function anywhere on the stack (inclusive).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time

RATE_HZ = 250


def executable() -> str:
    """py-spy's path (raises SystemExit when it is not installed)."""
    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        raise SystemExit("--pyspy needs py-spy: pip install py-spy")
    return exe


class Sampler:
    """py-spy recording this process from construction until :meth:`stop`."""

    def __init__(self, out_path: str) -> None:
        self.out_path = out_path
        self._proc = subprocess.Popen(
            [executable(), "record", "--nonblocking", "--gil", "--threads", "--format", "raw", "-r", str(RATE_HZ),
             "-o", out_path, "--pid", str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach before the measured phase starts

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        self._proc.wait(30)


def _frame(frame: str) -> str:
    """``work (spytest.py:5)`` -> ``work (spytest.py)``: functions, not lines."""
    name, _, where = frame.partition(" (")
    return f"{name} ({os.path.basename(where.rsplit(':', 1)[0])})" if where else name


def report(path: str, mode: str, res: dict, top: int = 25) -> None:  # type: ignore[type-arg]
    by_thread: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            thread = frames[0].partition(": ")[2] or frames[0]
            funcs = [_frame(fr) for fr in frames[1:]] or ["(native)"]
            by_thread[thread] += n
            own[funcs[-1]] += n
            for fn in set(funcs):
                incl[fn] += n
    total = sum(by_thread.values()) or 1
    print(f"\n### rtedge driver under py-spy ({mode}, stream phase only, {RATE_HZ} Hz, GIL holder only)\n")
    print(f"{total} samples ({total / RATE_HZ:.2f} s on CPU seen); run stream CPU {res.get('stream_cpu', 0):.3f} s;"
          f" threads: " + ", ".join(f"{t} {100 * n / total:.1f} %" for t, n in by_thread.most_common()) + "\n")
    for title, counter in (("self (where the sample was taken)", own), ("inclusive (anywhere on the stack)", incl)):
        print(f"| {title} | % of samples |\n|---|---|")
        for fn, n in counter.most_common(top):
            print(f"| `{fn}` | {100 * n / total:.1f} |")
        print()
