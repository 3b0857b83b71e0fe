"""Turn the README's Raspberry Pi guide into the shell script the ARM stage runs (README on stdin).

Every indented code block of the "Raspberry Pi guide" section runs, in order, except a block preceded by
an ``<!-- ci: skip ... -->`` comment (commands that need a booted system: ``systemctl status``,
``journalctl -f``).  Usage: ``python3 readme_pi.py c|nocc [all|head|tail] < README.md > guide.sh``:
``head`` is what comes before the first ``# optional`` line (the same for both variants, so the stage runs it
once per architecture), ``tail`` the rest.

* ``nocc`` drops the lines marked ``# optional`` (the compiler packages), as on a Pi without gcc.
* The line that reads the API key from the terminal (``cat > ...``) gets a placeholder key on stdin;
  every other line reads /dev/null.
* ``systemctl`` lines run with ``SYSTEMD_OFFLINE=1`` (as root, without sudo, which would drop it): no
  systemd runs in the root, so ``daemon-reload`` is a no-op and ``enable --now`` becomes ``enable`` (nothing
  can start there).
* ``rtedge doctor`` reports problems the root cannot fix (no sound card, no route to the provider) with
  exit 1: its lines must print the doctor's verdict, not a traceback.
"""

from __future__ import annotations

import re
import shlex
import sys

SECTION = "### Raspberry Pi guide"
KEY = "sk-ci-placeholder-not-a-key"


def blocks(text: str) -> list[list[str]]:
    lines = text.splitlines()
    try:
        start = lines.index(SECTION)
    except ValueError:
        sys.exit(f"readme_pi: no '{SECTION}' section in the README")
    out: list[list[str]] = []
    skip = False
    i = start + 1
    while i < len(lines) and not lines[i].startswith(("## ", "### ")):
        line = lines[i]
        if "<!-- ci: skip" in line:
            skip = True
        # an indented code block inside a list item: 7+ spaces (3 for the item, 4 for the code)
        if re.match(r"^ {7,}\S", line) and (i == 0 or not lines[i - 1].strip()):
            block = []
            while i < len(lines) and (re.match(r"^ {7,}\S", lines[i])):
                block.append(lines[i].strip())
                i += 1
            if not skip:
                out.append(block)
            skip = False
            continue
        i += 1
    return out


def command(line: str) -> str:
    """The shell command of one guide line (its trailing comment removed)."""
    # a comment starts at '#' preceded by whitespace, outside quotes
    for m in re.finditer(r"\s#", line):
        head = line[: m.start()]
        try:
            shlex.split(head)
        except ValueError:
            continue  # inside a quoted string
        return head.rstrip()
    return line


def script(variant: str, part: str, text: str) -> str:
    out = ["# generated from the README's Raspberry Pi guide by .ci/readme_pi.py", "set -x"]
    lines = [line for block in blocks(text) for line in block]
    split = next((i for i, line in enumerate(lines) if "# optional" in line), len(lines))
    if part == "head":
        lines = lines[:split]
    elif part == "tail":
        lines = lines[split:]
    for line in lines:
        if variant == "nocc" and "# optional" in line:
            out.append(f": 'skipped without a compiler: {line}'")
            continue
        cmd = command(line)
        if re.search(r"\bcat > ", cmd):
            out.append(f"{cmd} <<< {shlex.quote(KEY)}")
        elif re.search(r"\bsystemctl\b", cmd):
            # no systemd runs in the root: offline, daemon-reload is a no-op and enable --now only enables
            offline = re.sub(r"^sudo\s+", "", cmd).replace(" --now", "")
            out.append(f"SYSTEMD_OFFLINE=1 {offline} </dev/null")
        elif re.search(r"\brtedge doctor\b", cmd):
            out.append(f"{{ {cmd} </dev/null || true; }} 2>&1 | tee /tmp/doctor.out")
            out.append("grep -Eq 'problem\\(s\\) to fix|all good' /tmp/doctor.out")
            out.append("if grep -q Traceback /tmp/doctor.out; then exit 1; fi")
        else:
            out.append(f"{cmd} </dev/null")
    if len(out) < 4:
        sys.exit("readme_pi: the Raspberry Pi guide has almost no commands; is the section intact?")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    args = sys.argv[1:] + ["c", "all"][len(sys.argv) - 1 :]
    sys.stdout.write(script(args[0], args[1], sys.stdin.read()))
