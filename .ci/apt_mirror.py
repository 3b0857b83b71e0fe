"""Print the Debian archive this machine's apt uses for bookworm ``main``, to build the ARM roots from.

Reads /etc/apt/sources.list and /etc/apt/sources.list.d/ (one-line ``*.list`` and deb822 ``*.sources``)
and prints the first ``deb`` URI serving a ``bookworm`` suite with component ``main`` (security and
updates suites are not the archive itself).  Exits 1 with a message when there is none.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

SUITE = sys.argv[1] if len(sys.argv) > 1 else "bookworm"
APT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/etc/apt")


def one_line(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(uri, suite, components) of each ``deb`` line of a sources.list file."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "deb":
            if words[1].startswith("["):  # options: deb [arch=amd64 signed-by=...] uri suite comps
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = ["deb", *words[1:]]
            if len(words) >= 4:
                yield words[1], words[2], words[3:]


def deb822(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(uri, suite, components) of each enabled ``Types: deb`` stanza of a .sources file."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield uri, suite, fields.get("components", "").split()


def sources() -> Iterator[tuple[str, str, list[str]]]:
    main = APT / "sources.list"
    if main.is_file():
        yield from one_line(main.read_text(errors="replace"))
    folder = APT / "sources.list.d"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.suffix == ".list":
            yield from one_line(path.read_text(errors="replace"))
        elif path.suffix == ".sources":
            yield from deb822(path.read_text(errors="replace"))


def main() -> int:
    for uri, suite, components in sources():
        if suite == SUITE and "main" in components and not uri.startswith(("file:", "cdrom:")):
            print(uri.rstrip("/"))
            return 0
    print(f"no apt source for '{SUITE} main' in {APT}/sources.list(.d)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
